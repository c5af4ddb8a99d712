"""The capital config body (``GET /sapi/v1/capital/config/getall``) to a snapshot (pure).

One entity per coin (its wallet-wide switches) and one per ``(coin, network)``: a
withdrawal suspended on one network is a new version of that network alone. The body
the writer hands over has no balances already (core.wallet, applied by core.ingest);
the coin entity is cleaned again here all the same, so a body given to this parser by
any other path cannot put a balance into a version.

As with every stream, only a whole document is accepted: a coin or network missing from
the response closes its version, so an empty list (no coins at all, which Binance never
sends for a working account) is refused rather than read as every coin gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.ingest import Entity, InvalidPayloadError, KindSnapshot, Snapshot, canonical_entity
from core.wallet import NETWORKS, coin_without_balances
from poller.parse import check_field
from poller.parse_account import _document, _object

Key = tuple[Any, ...]

# Binance field -> typed column of wallet_coin_versions, and its kind.
COIN_FIELDS: dict[str, tuple[str, str]] = {
    "name": ("name", "str"),
    "depositAllEnable": ("deposit_all_enable", "bool"),
    "withdrawAllEnable": ("withdraw_all_enable", "bool"),
    "trading": ("trading", "bool"),
    "isLegalMoney": ("is_legal_money", "bool"),
}
# Binance field -> typed column of wallet_network_versions, and its kind.
NETWORK_FIELDS: dict[str, tuple[str, str]] = {
    "name": ("name", "str"),
    "isDefault": ("is_default", "bool"),
    "depositEnable": ("deposit_enable", "bool"),
    "withdrawEnable": ("withdraw_enable", "bool"),
    "withdrawFee": ("withdraw_fee", "decimal"),
    "withdrawMin": ("withdraw_min", "decimal"),
    "withdrawMax": ("withdraw_max", "decimal"),
    "withdrawIntegerMultiple": ("withdraw_integer_multiple", "decimal"),
    "withdrawInternalMin": ("withdraw_internal_min", "decimal"),
    "depositDust": ("deposit_dust", "decimal"),
    "minConfirm": ("min_confirm", "int"),
    "unLockConfirm": ("unlock_confirm", "int"),
    "busy": ("busy", "bool"),
    "depositDesc": ("deposit_desc", "str"),
    "withdrawDesc": ("withdraw_desc", "str"),
    "specialTips": ("special_tips", "str"),
    "specialWithdrawTips": ("special_withdraw_tips", "str"),
    "estimatedArrivalTime": ("estimated_arrival_time", "int"),
    "sameAddress": ("same_address", "bool"),
    "contractAddress": ("contract_address", "str"),
}
# Without these a network's answer says nothing of what the stream is for.
REQUIRED_NETWORK_FIELDS = ("depositEnable", "withdrawEnable")


def _row(
    src: Mapping[str, Any], fields: Mapping[str, tuple[str, str]], where: str
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(column for column, _ in fields.values())
    for name, (column, kind) in fields.items():
        value = src.get(name)
        if value is None:
            continue
        check_field(value, kind, f"{where} {name}")
        row[column] = Decimal(value) if kind == "decimal" else value
    return row


def coin_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return _row(src, COIN_FIELDS, f"coin {src.get('coin')!r}")


def network_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return _row(src, NETWORK_FIELDS, f"network {src.get('coin')!r}/{src.get('network')!r}")


def parse_capital_config(body: bytes) -> Snapshot:
    """Every coin (without balances and networks) and every network of every coin."""
    doc = _document(body, "capital config")
    if not isinstance(doc, list):
        raise InvalidPayloadError("capital config body is not a list of coins")
    if not doc:
        raise InvalidPayloadError("capital config body lists no coin")
    coins: dict[Key, Entity] = {}
    networks: dict[Key, Entity] = {}
    for item in doc:
        coin = coin_without_balances(_object(item, "coin"))
        name = check_field(coin.get("coin"), "str", "coin")
        if (name,) in coins:
            raise InvalidPayloadError(f"coin {name!r} is listed twice")
        listed = coin.pop(NETWORKS, None)
        if not isinstance(listed, list):
            raise InvalidPayloadError(f"coin {name!r} without a {NETWORKS!r} list")
        coin_row(coin)  # validate now: a bad field must fail the poll, not the write
        coins[(name,)] = canonical_entity(coin)
        for raw in listed:
            network = _object(raw, f"network of {name!r}")
            key = (name, check_field(network.get("network"), "str", f"network of {name!r}"))
            if key in networks:
                raise InvalidPayloadError(f"network {key[1]!r} of {name!r} is listed twice")
            for field in REQUIRED_NETWORK_FIELDS:
                check_field(network.get(field), "bool", f"network {name}/{key[1]} {field}")
            network_row(network)
            networks[key] = canonical_entity(network)
    return [
        KindSnapshot("wallet_coin_versions", coins, coin_row),
        KindSnapshot("wallet_network_versions", networks, network_row),
    ]
