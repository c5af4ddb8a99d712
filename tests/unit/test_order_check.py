"""The order check against a table of orders and the rules each one breaks."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from core.order_check import Order, check_order
from tests.builders import symbol

# tick 0.01, price 0.01..1000000, LOT_SIZE 0.001..9000 step 0.001,
# MARKET_LOT_SIZE max 1000, NOTIONAL 5..9000000 (min applies to MARKET, max does not).
BASE = symbol("BTCUSDT")


def rules(
    status: str = "TRADING", drop: str | None = None, **fields: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    sym = copy.deepcopy(BASE)
    sym["status"] = status
    filters = {f["filterType"]: f for f in sym.pop("filters")}
    if drop is not None:
        del filters[drop]
    for ftype, values in fields.items():
        filters.setdefault(ftype, {"filterType": ftype}).update(values)
    return sym, filters


def order(type_: str, qty: str, price: str | None = None, side: str = "BUY") -> Order:
    return Order(side, type_, Decimal(qty), Decimal(price) if price is not None else None)


CASES: list[tuple[str, Any, Order, list[str]]] = [
    ("a plain limit order", rules(), order("LIMIT", "0.1", "100.00"), []),
    ("a sell is held to the same rules", rules(), order("LIMIT", "0.1", "100.00", "SELL"), []),
    ("price off the tick", rules(), order("LIMIT", "0.1", "100.005"), ["PRICE_FILTER.tickSize"]),
    ("price on a coarser tick", rules(), order("LIMIT", "0.1", "100.10"), []),
    (
        "price below minPrice",
        rules(),
        order("LIMIT", "1000", "0.005"),
        ["PRICE_FILTER.minPrice", "PRICE_FILTER.tickSize"],
    ),
    ("price at minPrice", rules(), order("LIMIT", "1000", "0.01"), []),
    (
        "price above maxPrice",
        rules(),
        order("LIMIT", "0.001", "1000000.01"),
        ["PRICE_FILTER.maxPrice"],
    ),
    ("price at maxPrice", rules(), order("LIMIT", "0.001", "1000000.00"), []),
    (
        "tick 0 disables the tick rule",
        rules(PRICE_FILTER={"tickSize": "0"}),
        order("LIMIT", "0.1", "100.005"),
        [],
    ),
    (
        "maxPrice 0 disables the cap",
        rules(PRICE_FILTER={"maxPrice": "0.00000000"}),
        order("LIMIT", "0.001", "2000000"),
        [],
    ),
    (
        "quantity below minQty",
        rules(),
        order("LIMIT", "0.0005", "20000"),
        ["LOT_SIZE.minQty", "LOT_SIZE.stepSize"],
    ),
    ("quantity at minQty", rules(), order("LIMIT", "0.001", "20000"), []),
    ("quantity above maxQty", rules(), order("LIMIT", "9000.001", "1"), ["LOT_SIZE.maxQty"]),
    ("quantity off the step", rules(), order("LIMIT", "0.0015", "20000"), ["LOT_SIZE.stepSize"]),
    (
        "step 0 disables the step rule",
        rules(LOT_SIZE={"stepSize": "0"}),
        order("LIMIT", "0.0015", "20000"),
        [],
    ),
    (
        "notional below minNotional",
        rules(),
        order("LIMIT", "0.001", "100.00"),
        ["NOTIONAL.minNotional"],
    ),
    ("notional at minNotional", rules(), order("LIMIT", "0.05", "100.00"), []),
    (
        "notional above maxNotional",
        rules(),
        order("LIMIT", "9000", "1001.00"),
        ["NOTIONAL.maxNotional"],
    ),
    ("symbol in BREAK", rules("BREAK"), order("LIMIT", "0.1", "100.00"), ["status"]),
    (
        "symbol in HALT and the order off the tick",
        rules("HALT"),
        order("LIMIT", "0.1", "100.001"),
        ["status", "PRICE_FILTER.tickSize"],
    ),
    ("order type not allowed", rules(), order("STOP_LOSS_LIMIT", "0.1", "100.00"), ["orderTypes"]),
    ("limit order without a price", rules(), order("LIMIT", "0.01"), ["price"]),
    (
        "limit maker like a limit",
        rules(),
        order("LIMIT_MAKER", "0.1", "100.005"),
        ["PRICE_FILTER.tickSize"],
    ),
    ("market order without a reference price", rules(), order("MARKET", "0.01"), []),
    ("market order ignores the tick", rules(), order("MARKET", "0.1", "100.005"), []),
    (
        "market order above MARKET_LOT_SIZE.maxQty",
        rules(),
        order("MARKET", "1000.001", "10"),
        ["MARKET_LOT_SIZE.maxQty"],
    ),
    ("market order within both lot sizes", rules(), order("MARKET", "1000", "10"), []),
    (
        "market order below LOT_SIZE.minQty",
        rules(),
        order("MARKET", "0.0001", "100000"),
        ["LOT_SIZE.minQty", "LOT_SIZE.stepSize"],
    ),
    (
        "market order under minNotional (applies to market)",
        rules(),
        order("MARKET", "0.001", "100"),
        ["NOTIONAL.minNotional"],
    ),
    (
        "market order over maxNotional (not applied to market)",
        rules(),
        order("MARKET", "1000", "10000"),
        [],
    ),
    (
        "market min notional off for market",
        rules(NOTIONAL={"applyMinToMarket": False}),
        order("MARKET", "0.001", "100"),
        [],
    ),
    (
        "market max notional on for market",
        rules(NOTIONAL={"applyMaxToMarket": True}),
        order("MARKET", "1000", "10000"),
        ["NOTIONAL.maxNotional"],
    ),
    ("no MARKET_LOT_SIZE filter", rules(drop="MARKET_LOT_SIZE"), order("MARKET", "5000", "10"), []),
    (
        "legacy MIN_NOTIONAL",
        rules(drop="NOTIONAL", MIN_NOTIONAL={"minNotional": "10", "applyToMarket": True}),
        order("LIMIT", "0.05", "100"),
        ["MIN_NOTIONAL.minNotional"],
    ),
    (
        "legacy MIN_NOTIONAL on market",
        rules(drop="NOTIONAL", MIN_NOTIONAL={"minNotional": "10", "applyToMarket": False}),
        order("MARKET", "0.05", "100"),
        [],
    ),
    (
        "unpadded decimals from Binance",
        rules(PRICE_FILTER={"tickSize": "0.5"}),
        order("LIMIT", "0.1", "100.5"),
        [],
    ),
    (
        "unpadded tick, price off it",
        rules(PRICE_FILTER={"tickSize": "0.5"}),
        order("LIMIT", "0.1", "100.25"),
        ["PRICE_FILTER.tickSize"],
    ),
]


@pytest.mark.parametrize(
    ("name", "symbol_rules", "the_order", "broken"), CASES, ids=[c[0] for c in CASES]
)
def test_order_check(name: str, symbol_rules: Any, the_order: Order, broken: list[str]) -> None:
    sym, filters = symbol_rules
    assert [v.rule for v in check_order(sym, filters, the_order)] == broken


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
