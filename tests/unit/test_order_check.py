"""The order check against a table of orders and the rules each one breaks."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.order_check import Order, check_order
from tests.builders import symbol
from tests.conftest import FIXTURES

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


def dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order(
    type_: str,
    qty: str,
    price: str | None = None,
    side: str = "BUY",
    *,
    ref: str | None = None,
    iceberg: str | None = None,
) -> Order:
    return Order(side, type_, Decimal(qty), dec(price), dec(ref), dec(iceberg))


def quote_order(quote: str, *, ref: str | None = None, side: str = "BUY") -> Order:
    """A MARKET order sized by what it spends (BUY) or receives (SELL) in the quote asset."""
    return Order(side, "MARKET", None, None, dec(ref), None, Decimal(quote))


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
    ("market order ignores the tick", rules(), order("MARKET", "0.1", ref="100.005"), []),
    (
        "market order above MARKET_LOT_SIZE.maxQty",
        rules(),
        order("MARKET", "1000.001", ref="10"),
        ["MARKET_LOT_SIZE.maxQty"],
    ),
    ("market order within both lot sizes", rules(), order("MARKET", "1000", ref="10"), []),
    (
        "market order below LOT_SIZE.minQty",
        rules(),
        order("MARKET", "0.0001", ref="100000"),
        ["LOT_SIZE.minQty", "LOT_SIZE.stepSize"],
    ),
    (
        "market order under minNotional (applies to market)",
        rules(),
        order("MARKET", "0.001", ref="100"),
        ["NOTIONAL.minNotional"],
    ),
    (
        "market order over maxNotional (not applied to market)",
        rules(),
        order("MARKET", "1000", ref="10000"),
        [],
    ),
    (
        "market min notional off for market",
        rules(NOTIONAL={"applyMinToMarket": False}),
        order("MARKET", "0.001", ref="100"),
        [],
    ),
    (
        "market max notional on for market",
        rules(NOTIONAL={"applyMaxToMarket": True}),
        order("MARKET", "1000", ref="10000"),
        ["NOTIONAL.maxNotional"],
    ),
    (
        "no MARKET_LOT_SIZE filter",
        rules(drop="MARKET_LOT_SIZE"),
        order("MARKET", "5000", ref="10"),
        [],
    ),
    (
        "legacy MIN_NOTIONAL",
        rules(drop="NOTIONAL", MIN_NOTIONAL={"minNotional": "10", "applyToMarket": True}),
        order("LIMIT", "0.05", "100"),
        ["MIN_NOTIONAL.minNotional"],
    ),
    (
        "legacy MIN_NOTIONAL on market",
        rules(drop="NOTIONAL", MIN_NOTIONAL={"minNotional": "10", "applyToMarket": False}),
        order("MARKET", "0.05", ref="100"),
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
    assert [v.rule for v in check_order(sym, filters, the_order).violations] == broken


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


# Real rows (tests/fixtures/order_check_symbols.json), keyed by snapshot then symbol:
# 2022-11-28 BTCUSDT: tick 0.01, step 0.00001, PERCENT_PRICE 0.2..5, MIN_NOTIONAL 10
#   (applies to MARKET), ICEBERG_PARTS 10, MARKET_LOT_SIZE max 269.21182993;
# BTCUPUSDT: permissions LEVERAGED only; DASHBNB: PERCENT_PRICE and ..._BY_SIDE 0.2..5;
# 2023-09-08 TUSDUSDT: PERCENT_PRICE_BY_SIDE 0.8..1.2, step 1; BTCUSDT: NOTIONAL 5;
# testnet 2024-09-08 BTCUSDT: permissionSets [["SPOT"]], permissions [].
REAL = orjson.loads((FIXTURES / "order_check_symbols.json").read_bytes())
SPOT_ACCOUNT = {"canTrade": True, "permissions": ["SPOT"]}


def real(snapshot: str, name: str, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    sym = copy.deepcopy(REAL[snapshot][name])
    filters = {f["filterType"]: f for f in sym.pop("filters")}
    for ftype, values in fields.items():
        filters[ftype].update(values)
    return sym, filters


def without_quote_orders(
    sym: dict[str, Any], filters: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    return {**sym, "quoteOrderQtyMarketAllowed": False}, filters


# (name, rules, order, account, broken, not checked)
REAL_CASES: list[tuple[str, Any, Order, dict[str, Any] | None, list[str], list[str]]] = [
    (
        "PERCENT_PRICE: inside the band",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "16000.00", ref="16500"),
        None,
        [],
        [],
    ),
    (
        "PERCENT_PRICE: above reference * multiplierUp",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "82500.01", "SELL", ref="16500"),
        None,
        ["PERCENT_PRICE.multiplierUp"],
        [],
    ),
    (
        "PERCENT_PRICE: at reference * multiplierUp",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "82500.00", "SELL", ref="16500"),
        None,
        [],
        [],
    ),
    (
        "PERCENT_PRICE: below reference * multiplierDown",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "3299.99", ref="16500"),
        None,
        ["PERCENT_PRICE.multiplierDown"],
        [],
    ),
    (
        "PERCENT_PRICE without a reference price is not checked",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "99999.99"),
        None,
        [],
        ["PERCENT_PRICE"],
    ),
    (
        "PERCENT_PRICE does not apply to MARKET orders",
        real("2022-11-28", "BTCUSDT"),
        order("MARKET", "0.01", ref="16500"),
        None,
        [],
        [],
    ),
    (
        "MIN_NOTIONAL of a MARKET order without a reference price is not checked",
        real("2022-11-28", "BTCUSDT"),
        order("MARKET", "0.0001"),
        None,
        [],
        ["MIN_NOTIONAL.minNotional"],
    ),
    (
        "MIN_NOTIONAL of a MARKET order at the reference price",
        real("2022-11-28", "BTCUSDT"),
        order("MARKET", "0.0006", ref="16000"),
        None,
        ["MIN_NOTIONAL.minNotional"],
        [],
    ),
    (
        "PERCENT_PRICE and PERCENT_PRICE_BY_SIDE both apply (sell above)",
        real("2022-11-28", "DASHBNB"),
        order("LIMIT", "1", "0.7501", "SELL", ref="0.15"),
        None,
        ["PERCENT_PRICE.multiplierUp", "PERCENT_PRICE_BY_SIDE.askMultiplierUp"],
        [],
    ),
    (
        "PERCENT_PRICE and PERCENT_PRICE_BY_SIDE both apply (buy below)",
        real("2022-11-28", "DASHBNB"),
        order("LIMIT", "2", "0.0299", ref="0.15"),
        None,
        ["PERCENT_PRICE.multiplierDown", "PERCENT_PRICE_BY_SIDE.bidMultiplierDown"],
        [],
    ),
    (
        "PERCENT_PRICE_BY_SIDE: a buy above reference * bidMultiplierUp",
        real("2023-09-08", "TUSDUSDT"),
        order("LIMIT", "10", "1.2001", ref="1"),
        None,
        ["PERCENT_PRICE_BY_SIDE.bidMultiplierUp"],
        [],
    ),
    (
        "PERCENT_PRICE_BY_SIDE: a sell below reference * askMultiplierDown",
        real("2023-09-08", "TUSDUSDT"),
        order("LIMIT", "10", "0.7999", "SELL", ref="1"),
        None,
        ["PERCENT_PRICE_BY_SIDE.askMultiplierDown"],
        [],
    ),
    (
        "PERCENT_PRICE_BY_SIDE: at both edges",
        real("2023-09-08", "TUSDUSDT"),
        order("LIMIT", "10", "0.8000", "SELL", ref="1"),
        None,
        [],
        [],
    ),
    (
        "PERCENT_PRICE_BY_SIDE without a reference price is not checked",
        real("2023-09-08", "TUSDUSDT"),
        order("LIMIT", "10", "5.0000"),
        None,
        [],
        ["PERCENT_PRICE_BY_SIDE"],
    ),
    (
        "PERCENT_PRICE_BY_SIDE: the sell band, not the buy band (bands made to differ)",
        real(
            "2023-09-08",
            "TUSDUSDT",
            PERCENT_PRICE_BY_SIDE={"askMultiplierUp": "1.05", "bidMultiplierDown": "0.95"},
        ),
        order("LIMIT", "10", "1.1000", "SELL", ref="1"),
        None,
        ["PERCENT_PRICE_BY_SIDE.askMultiplierUp"],
        [],
    ),
    (
        "PERCENT_PRICE_BY_SIDE: the buy band, not the sell band (bands made to differ)",
        real(
            "2023-09-08",
            "TUSDUSDT",
            PERCENT_PRICE_BY_SIDE={"askMultiplierUp": "1.05", "bidMultiplierDown": "0.95"},
        ),
        order("LIMIT", "10", "1.1000", "BUY", ref="1"),
        None,
        [],
        [],
    ),
    (
        "NOTIONAL of a MARKET order at the reference price",
        real("2023-09-08", "BTCUSDT"),
        order("MARKET", "0.0001", ref="26000"),
        None,
        ["NOTIONAL.minNotional"],
        [],
    ),
    (
        "ICEBERG_PARTS: exactly the limit of parts",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "1", "16000.00", ref="16000", iceberg="0.1"),
        None,
        [],
        [],
    ),
    (
        "ICEBERG_PARTS: ceil(1 / 0.09) = 12 parts",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "1", "16000.00", ref="16000", iceberg="0.09"),
        None,
        ["ICEBERG_PARTS.limit"],
        [],
    ),
    (
        "ICEBERG_PARTS: a part short of the limit rounds up past it",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "1", "16000.00", ref="16000", iceberg="0.09999"),
        None,
        ["ICEBERG_PARTS.limit"],
        [],
    ),
    (
        "ICEBERG: the visible quantity is held to LOT_SIZE",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "1", "16000.00", ref="16000", iceberg="0.100005"),
        None,
        ["LOT_SIZE.stepSize"],
        [],
    ),
    (
        "permissions: a LEVERAGED-only symbol allows no SPOT order",
        real("2022-11-28", "BTCUPUSDT"),
        order("LIMIT", "10", "1.000", ref="1"),
        None,
        ["permissions"],
        [],
    ),
    (
        "permissionSets [[SPOT]] and an account with SPOT",
        real("testnet-2024-09-08", "BTCUSDT"),
        order("LIMIT", "0.01", "60000.00", ref="60000"),
        SPOT_ACCOUNT,
        [],
        [],
    ),
    (
        "permissionSets [[SPOT]] and an account without SPOT",
        real("testnet-2024-09-08", "BTCUSDT"),
        order("LIMIT", "0.01", "60000.00", ref="60000"),
        {"canTrade": True, "permissions": ["MARGIN"]},
        ["account.permissions"],
        [],
    ),
    (
        "an account that cannot trade",
        real("testnet-2024-09-08", "BTCUSDT"),
        order("LIMIT", "0.01", "60000.00", ref="60000"),
        {"canTrade": False, "permissions": ["SPOT"]},
        ["account.canTrade"],
        [],
    ),
    (
        "flat permissions (any of them): an account with MARGIN only",
        real("2023-09-08", "BTCUSDT"),
        order("LIMIT", "0.01", "26000.00", ref="26000"),
        {"canTrade": True, "permissions": ["MARGIN"]},
        [],
        [],
    ),
    (
        "flat permissions: an account in none of them",
        real("2023-09-08", "BTCUSDT"),
        order("LIMIT", "0.01", "26000.00", ref="26000"),
        {"canTrade": True, "permissions": ["TRD_GRP_002"]},
        ["account.permissions"],
        [],
    ),
    (
        "quote quantity: the notional is checked, the lot bounds need a reference price",
        real("2022-11-28", "BTCUSDT"),
        quote_order("50"),
        None,
        [],
        ["LOT_SIZE", "MARKET_LOT_SIZE"],
    ),
    (
        "quote quantity below MIN_NOTIONAL (applyToMarket)",
        real("2022-11-28", "BTCUSDT"),
        quote_order("5", side="SELL"),
        None,
        ["MIN_NOTIONAL.minNotional"],
        ["LOT_SIZE", "MARKET_LOT_SIZE"],
    ),
    (
        "quote quantity with a reference price: 50 / 16000 = 0.003125, 0.00312 on the step",
        real("2022-11-28", "BTCUSDT"),
        quote_order("50", ref="16000"),
        None,
        [],
        [],
    ),
    (
        "quote quantity buying more than MARKET_LOT_SIZE's maxQty (312.5 > 269.21)",
        real("2022-11-28", "BTCUSDT"),
        quote_order("5000000", ref="16000"),
        None,
        ["MARKET_LOT_SIZE.maxQty"],
        [],
    ),
    (
        "quote quantity smaller than one step of LOT_SIZE (0.9 / 1.0001: 0 on a step of 1)",
        real("2023-09-08", "TUSDUSDT"),
        quote_order("0.9", ref="1.0001"),
        None,
        ["LOT_SIZE.minQty", "NOTIONAL.minNotional"],
        [],
    ),
    (
        "quote quantity on a symbol that does not allow it",
        without_quote_orders(*real("2023-09-08", "BTCUSDT")),
        quote_order("50", ref="26000"),
        None,
        ["quoteOrderQtyMarketAllowed"],
        [],
    ),
    (
        "a LEVERAGED-only symbol and a SPOT account",
        real("2022-11-28", "BTCUPUSDT"),
        order("LIMIT", "10", "1.000", ref="1"),
        SPOT_ACCOUNT,
        ["permissions", "account.permissions"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("name", "symbol_rules", "the_order", "account", "broken", "unchecked"),
    REAL_CASES,
    ids=[c[0] for c in REAL_CASES],
)
def test_order_check_on_real_rules(
    name: str,
    symbol_rules: Any,
    the_order: Order,
    account: dict[str, Any] | None,
    broken: list[str],
    unchecked: list[str],
) -> None:
    sym, filters = symbol_rules
    verdict = check_order(sym, filters, the_order, account)
    assert [v.rule for v in verdict.violations] == broken
    assert [u.rule for u in verdict.not_checked] == unchecked


def test_an_iceberg_on_a_symbol_that_forbids_it_breaks_icebergallowed() -> None:
    sym, filters = real("2022-11-28", "BTCUSDT")
    sym["icebergAllowed"] = False
    verdict = check_order(sym, filters, order("LIMIT", "1", "16000.00", ref="16000", iceberg="0.1"))
    assert [v.rule for v in verdict.violations] == ["icebergAllowed"]


def test_a_symbol_without_permissions_leaves_them_unchecked() -> None:
    sym, filters = real("testnet-2024-09-08", "BTCUSDT")
    sym["permissionSets"] = []  # as with showPermissionSets=false
    verdict = check_order(sym, filters, order("LIMIT", "0.01", "60000.00", ref="60000"))
    assert [u.rule for u in verdict.not_checked] == ["permissions"]


# (name, rules, order, nearest price, nearest quantity): BTCUSDT 2022-11-28 unless named.
NEAREST: list[tuple[str, Any, Order, str | None, str | None]] = [
    (
        "already valid",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "16000.01"),
        "16000.01000000",
        "0.01000000",
    ),
    (
        "off tick and step: the nearest multiples, half up",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.000015", "16000.005"),
        "16000.01000000",
        "0.00002000",
    ),
    (
        "off tick, just under half",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.0000149", "16000.0049"),
        "16000.00000000",
        "0.00001000",
    ),
    (
        "below minPrice and minQty: up to the first valid values",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.000001", "0.001"),
        "0.01000000",
        "0.00001000",
    ),
    (
        "above maxPrice and maxQty: down to the last valid values",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "9000.000006", "1000000.006"),
        "1000000.00000000",
        "9000.00000000",
    ),
    (
        "above the PERCENT_PRICE band: down to its cap",
        real("2022-11-28", "BTCUSDT"),
        order("LIMIT", "0.01", "90000.00", ref="16500.005"),
        "82500.02000000",
        "0.01000000",
    ),
    (
        "a MARKET order has no price; its quantity obeys MARKET_LOT_SIZE too",
        real("2022-11-28", "BTCUSDT"),
        order("MARKET", "300"),
        None,
        "269.21182000",
    ),
    (
        "a band wholly below minPrice: no valid price",
        real("2022-11-28", "DASHBNB"),
        order("LIMIT", "1", "0.0002", ref="0.00001"),
        None,
        "1.00000000",
    ),
    (
        "an unpadded step of 1",
        real("2023-09-08", "TUSDUSDT"),
        order("LIMIT", "10.5", "1.00005", "SELL"),
        "1.00010000",
        "11.00000000",
    ),
]


@pytest.mark.parametrize(
    ("name", "symbol_rules", "the_order", "price", "quantity"),
    NEAREST,
    ids=[c[0] for c in NEAREST],
)
def test_nearest_valid_price_and_quantity(
    name: str, symbol_rules: Any, the_order: Order, price: str | None, quantity: str | None
) -> None:
    sym, filters = symbol_rules
    verdict = check_order(sym, filters, the_order)
    assert verdict.nearest_price == (None if price is None else Decimal(price))
    assert verdict.nearest_quantity == (None if quantity is None else Decimal(quantity))
    rendered = [
        None if v is None else format(v, "f")
        for v in (verdict.nearest_price, verdict.nearest_quantity)
    ]
    assert rendered == [price, quantity]
    if verdict.nearest_price is not None and verdict.nearest_quantity is not None:
        fixed = replace(the_order, price=verdict.nearest_price, quantity=verdict.nearest_quantity)
        rules = [v.rule for v in check_order(sym, filters, fixed).violations]
        assert not [r for r in rules if r.startswith(("PRICE_FILTER", "PERCENT", "LOT_SIZE"))]


def test_huge_numbers_stay_exact() -> None:
    sym, filters = real("2022-11-28", "BTCUSDT")
    big = order("LIMIT", "0.000000000000000001", "999999999999.999999999999999999")
    verdict = check_order(sym, filters, big)
    assert [v.rule for v in verdict.violations] == [
        "PRICE_FILTER.maxPrice",
        "PRICE_FILTER.tickSize",
        "LOT_SIZE.minQty",
        "LOT_SIZE.stepSize",
        "MIN_NOTIONAL.minNotional",
    ]
    assert verdict.nearest_price == Decimal("1000000.00000000")
