"""The scripts several test files record and check: an exchangeInfo history with one change
of each kind (tick size, status, listing, delisting, rate limit), what the change feed
must answer for it, what the diff between two of its instants must be (computed from the
documents, independently of the code under test), and the system-status documents."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from core.timeparse import format_instant
from tests.builders import at, exchange_info, record_exchange_info, symbol

T0 = at("2024-05-01T00:00:00")
T_QUIET = T0 + timedelta(seconds=5)  # an unchanged poll: the evidence before T1
T1 = T0 + timedelta(seconds=10)
T2 = T0 + timedelta(seconds=20)
T3 = T0 + timedelta(seconds=30)
T4 = T0 + timedelta(seconds=40)
T5 = T0 + timedelta(seconds=50)
NOW = T0 + timedelta(minutes=1)


BTC = symbol("BTCUSDT")
ETH = symbol("ETHUSDT")
BNB = symbol("BNBUSDT")


BTC_TICK = symbol("BTCUSDT", tick_size="0.10000000")
ETH_BREAK = symbol("ETHUSDT", status="BREAK")
BTC_MARKET = symbol("BTCUSDT", tick_size="0.10000000", market_max_qty="2000.00000000")
SCRIPT = [
    (T0, exchange_info(BTC, ETH)),
    (T_QUIET, exchange_info(BTC, ETH)),
    (T1, exchange_info(BTC_TICK, ETH)),
    (T2, exchange_info(BTC_TICK, ETH_BREAK)),
    (T3, exchange_info(BTC_TICK, ETH_BREAK, BNB)),
    (T4, exchange_info(BTC_TICK, BNB)),
    (T5, exchange_info(BTC_MARKET, BNB, weight_limit=5000)),
]


def record_script(engine: Engine) -> None:
    """A tick size change, a status flip, a listing, a delisting, a rate-limit change."""
    for when, document in SCRIPT:
        record_exchange_info(engine, document, when)


def listed_object(sym: dict[str, Any]) -> dict[str, Any]:
    return {**sym, "filters": sorted(sym["filters"], key=lambda f: f["filterType"])}


EXPECTED = [
    (T1, "symbol", "BTCUSDT", "filters.PRICE_FILTER.tickSize", "0.01000000", "0.10000000"),
    (T2, "symbol", "ETHUSDT", "status", "TRADING", "BREAK"),
    (T3, "symbol", "BNBUSDT", "listed", None, listed_object(BNB)),
    (T4, "symbol", "ETHUSDT", "listed", listed_object(symbol("ETHUSDT", status="BREAK")), None),
    (T5, "rate_limit", "REQUEST_WEIGHT:MINUTE:1", "limit", 6000, 5000),
    (
        T5,
        "symbol",
        "BTCUSDT",
        "filters.MARKET_LOT_SIZE.maxQty",
        "1000.00000000",
        "2000.00000000",
    ),
]


def summary(changes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (c["changed_at"], c["entity"], c["key"], c["field"], c["old"], c["new"]) for c in changes
    ]


def expected(*rows: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [(format_instant(r[0]), *r[1:]) for r in rows]


def document_at(when: datetime) -> dict[str, Any]:
    """The recorded document in force at ``when``: the last one at or before it."""
    return [doc for at, doc in SCRIPT if at <= when][-1]


def field_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    return [
        {"field": prefix + name, "old": old.get(name), "new": new.get(name)}
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


def expected_entities(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], differ: Any
) -> dict[str, Any]:
    common = sorted(set(before) & set(after))
    changed = [{"key": k, "changes": differ(before[k], after[k])} for k in common]
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": [c for c in changed if c["changes"]],
    }


def symbol_diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    own = field_diff(
        {k: v for k, v in old.items() if k != "filters"},
        {k: v for k, v in new.items() if k != "filters"},
    )
    old_filters = {f["filterType"]: f for f in old["filters"]}
    new_filters = {f["filterType"]: f for f in new["filters"]}
    for ftype in sorted(set(old_filters) | set(new_filters)):
        own += field_diff(
            old_filters.get(ftype, {}), new_filters.get(ftype, {}), prefix=f"filters.{ftype}."
        )
    return own


def expected_diff(start: datetime, end: datetime) -> dict[str, Any]:
    a, b = document_at(start), document_at(end)

    def limits(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            f"{r['rateLimitType']}:{r['interval']}:{r['intervalNum']}": r for r in doc["rateLimits"]
        }

    return {
        "symbols": expected_entities(
            {s["symbol"]: s for s in a["symbols"]},
            {s["symbol"]: s for s in b["symbols"]},
            symbol_diff,
        ),
        "rate_limits": expected_entities(limits(a), limits(b), field_diff),
        "exchange_filters": expected_entities(
            {f["filterType"]: f for f in a["exchangeFilters"]},
            {f["filterType"]: f for f in b["exchangeFilters"]},
            field_diff,
        ),
    }


NORMAL = {"status": 0, "msg": "normal"}
MAINTENANCE = {"status": 1, "msg": "system_maintenance"}
