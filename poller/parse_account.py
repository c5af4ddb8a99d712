"""Account, commission, system-status and delist-schedule bodies to snapshots (pure: no I/O).

As with exchangeInfo, a body is accepted only whole: an asset, symbol or delisting missing
from a response closes its version, so a response that is not the complete document must
never get that far.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from core.ingest import Entity, InvalidPayloadError, KindSnapshot, Snapshot, canonical_entity
from core.models import ACCOUNT_KEY, SYSTEM_STATUS_KEY
from poller.parse import check_field, ms_to_datetime

Key = tuple[Any, ...]

# Binance account field -> typed column of account_versions, and its kind.
ACCOUNT_FIELDS: dict[str, tuple[str, str]] = {
    "uid": ("uid", "int"),
    "accountType": ("account_type", "str"),
    "makerCommission": ("maker_commission", "int"),
    "takerCommission": ("taker_commission", "int"),
    "buyerCommission": ("buyer_commission", "int"),
    "sellerCommission": ("seller_commission", "int"),
    "canTrade": ("can_trade", "bool"),
    "canWithdraw": ("can_withdraw", "bool"),
    "canDeposit": ("can_deposit", "bool"),
    "brokered": ("brokered", "bool"),
    "requireSelfTradePrevention": ("require_self_trade_prevention", "bool"),
    "preventSor": ("prevent_sor", "bool"),
    "permissions": ("permissions", "strlist"),
}
RATE_SIDES = ("maker", "taker", "buyer", "seller")
# Fields that change without anything in force changing; kept in the stored body only.
VOLATILE_ACCOUNT_FIELDS = frozenset({"updateTime", "balances"})

COMMISSION_GROUPS = {
    "standardCommission": "standard",
    "specialCommission": "special",
    "taxCommission": "tax",
}


def _document(body: bytes, what: str) -> Any:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayloadError(f"{what} body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "code" in doc and "msg" in doc:
        raise InvalidPayloadError(
            f"Binance error body: code={doc.get('code')!r} msg={doc.get('msg')!r:.200}"
        )
    return doc


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPayloadError(f"{what} is not a JSON object")
    return value


def _rates(src: Mapping[str, Any], name: str, prefix: str) -> dict[str, Any]:
    """A ``{maker, taker, buyer, seller}`` object as ``<prefix>_<side>`` decimal columns."""
    group = src.get(name)
    if group is None:
        return {f"{prefix}_{side}": None for side in RATE_SIDES}
    group = _object(group, name)
    return {
        f"{prefix}_{side}": Decimal(check_field(group.get(side), "decimal", f"{name}.{side}"))
        for side in RATE_SIDES
    }


def account_row(src: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(column for column, _ in ACCOUNT_FIELDS.values())
    for name, (column, kind) in ACCOUNT_FIELDS.items():
        if name in src:
            row[column] = check_field(src[name], kind, f"account {name}")
    row.update(_rates(src, "commissionRates", "commission_rate"))
    return row


def balance_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {"free": Decimal(src["free"]), "locked": Decimal(src["locked"])}


def parse_account(body: bytes) -> Snapshot:
    """The account (without balances and updateTime) and one entity per non-zero balance.

    A zero balance and a missing one are the same fact (``omitZeroBalances``), so zero
    rows are dropped here too: an asset going to zero closes its version either way.
    """
    doc = _object(_document(body, "account"), "account body")
    balances = doc.get("balances")
    if not isinstance(balances, list):
        raise InvalidPayloadError("account body without a 'balances' list")
    account = {k: v for k, v in doc.items() if k not in VOLATILE_ACCOUNT_FIELDS}
    account_row(account)  # validate now: a bad field must fail the poll, not the write
    entities: dict[Key, Entity] = {}
    for item in balances:
        balance = _object(item, "balance")
        asset = check_field(balance.get("asset"), "str", "balance asset")
        free = check_field(balance.get("free"), "decimal", f"balance {asset!r} free")
        locked = check_field(balance.get("locked"), "decimal", f"balance {asset!r} locked")
        if Decimal(free) == 0 and Decimal(locked) == 0:
            continue
        if (asset,) in entities:
            raise InvalidPayloadError(f"duplicate balance {asset!r}")
        entities[(asset,)] = canonical_entity(balance)
    return [
        KindSnapshot("account_versions", {(ACCOUNT_KEY,): canonical_entity(account)}, account_row),
        KindSnapshot("balance_versions", entities, balance_row),
    ]


def commission_row(src: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, prefix in COMMISSION_GROUPS.items():
        row.update(_rates(src, name, prefix))
    discount = src.get("discount")
    discount = _object(discount, "discount") if discount is not None else {}
    row["discount_enabled_for_account"] = discount.get("enabledForAccount")
    row["discount_enabled_for_symbol"] = discount.get("enabledForSymbol")
    row["discount_asset"] = discount.get("discountAsset")
    rate = discount.get("discount")
    row["discount"] = None if rate is None else Decimal(check_field(rate, "decimal", "discount"))
    return row


def parse_commissions(body: bytes) -> Snapshot:
    """A JSON list of ``account/commission`` answers, one per configured symbol."""
    doc = _document(body, "commission")
    if not isinstance(doc, list):
        raise InvalidPayloadError("commission body is not a list of answers")
    entities: dict[Key, Entity] = {}
    for item in doc:
        answer = _object(item, "commission answer")
        symbol = check_field(answer.get("symbol"), "str", "commission symbol")
        if "standardCommission" not in answer:
            raise InvalidPayloadError(f"commission of {symbol!r} without standardCommission")
        commission_row(answer)
        entities[(symbol,)] = canonical_entity(answer)
    return [KindSnapshot("commission_versions", entities, commission_row)]


def system_status_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": src["status"], "message": src.get("msg")}


def parse_system_status(body: bytes) -> Snapshot:
    doc = _object(_document(body, "system status"), "system status body")
    check_field(doc.get("status"), "int", "system status")
    return [
        KindSnapshot(
            "system_status_versions",
            {(SYSTEM_STATUS_KEY,): canonical_entity(doc)},
            system_status_row,
        )
    ]


def delisting_row(src: Mapping[str, Any]) -> dict[str, Any]:
    delist_time: datetime = ms_to_datetime(src["delistTime"])
    return {"delist_time": delist_time}


def parse_delist_schedule(body: bytes) -> Snapshot:
    """One entity per announced symbol: ``{symbol, delistTime}``.

    Keyed by symbol, so a postponed delisting is a new version of the same symbol's
    announcement, and the version's ``valid_from`` is when the announcement was first
    seen: "announced at A (valid_from), effective at B (delist_time)".
    """
    doc = _document(body, "delist schedule")
    if not isinstance(doc, list):
        raise InvalidPayloadError("delist schedule body is not a list")
    entities: dict[Key, Entity] = {}
    for item in doc:
        entry = _object(item, "delist schedule entry")
        delist_time = check_field(entry.get("delistTime"), "int", "delistTime")
        symbols = check_field(entry.get("symbols"), "strlist", "delist schedule symbols")
        for symbol in symbols:
            if (symbol,) in entities:
                raise InvalidPayloadError(f"{symbol!r} is scheduled for delisting twice")
            entities[(symbol,)] = canonical_entity({"symbol": symbol, "delistTime": delist_time})
    return [KindSnapshot("delisting_versions", entities, delisting_row)]
