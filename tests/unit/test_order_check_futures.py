"""The order check on futures contracts, with the real USD-M snapshots' contracts and the
docs-shaped COIN-M fixture's (binance_sim/data/coinm_exchange_info_from_docs.json)."""

from __future__ import annotations

import copy
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
import pytest

from binance_sim.state import Market, default_fixture
from core.order_check import NEEDS_MARK, Order, UnsupportedOrderError, check_futures_order
from tests.conftest import FIXTURES

Rules = tuple[dict[str, Any], dict[str, dict[str, Any]]]


@cache
def _contracts(source: str) -> dict[str, dict[str, Any]]:
    body = (
        default_fixture(Market.COINM)
        if source == "coinm"
        else (FIXTURES / "futures_usdm" / f"{source}.json").read_bytes()
    )
    return {s["symbol"]: s for s in orjson.loads(body)["symbols"]}


def contract(source: str, name: str, **fields: dict[str, Any]) -> Rules:
    """A contract as Binance sent it in ``source`` (a USD-M snapshot, or "coinm"), its
    filters by type, each overridden by ``fields``."""
    sym = copy.deepcopy(_contracts(source)[name])
    filters = {f["filterType"]: f for f in sym.pop("filters")}
    for ftype, values in fields.items():
        filters.setdefault(ftype, {"filterType": ftype}).update(values)
    return sym, filters


# 2024-10-19 BTCUSDT: price 556.80..4529764 tick 0.10; LOT_SIZE 0.001..1000 step 0.001;
# MARKET_LOT_SIZE 0.001..120; MIN_NOTIONAL 100; PERCENT_PRICE 0.95..1.05.
BTC = contract("2024-10-19_347", "BTCUSDT")
# GTCUSDT, the same day: LOT_SIZE max 100000 but MARKET_LOT_SIZE max 150000.
GTC = contract("2024-10-19_347", "GTCUSDT")
WAVES_SETTLING = contract("2024-10-19_347", "WAVESUSDT")
# BTCSTUSDT, PENDING_TRADING, PERCENT_PRICE sent as 11500 / 8500 (multiplierDecimal 4).
BTCST_PENDING = contract("2024-10-19_347", "BTCSTUSDT")
# 2025-10-30 BTCUSDT: as above plus POSITION_RISK_CONTROL NONE and permissionSets.
BTC_2025 = contract("2025-10-30_625", "BTCUSDT")
# COIN-M BTCUSD_PERP: price 1000..4520958 tick 0.1; LOT_SIZE 1..1000000 contracts step 1;
# MARKET_LOT_SIZE 1..60000; PERCENT_PRICE 0.95..1.05; no MIN_NOTIONAL; contractSize 100.
BTCUSD = contract("coinm", "BTCUSD_PERP")

# What a futures check can never know; the table below leaves them out.
STANDING = {"account", "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS", "POSITION_RISK_CONTROL"}


def futures(
    type_: str, qty: str, price: str | None = None, side: str = "BUY", *, ref: str | None = None
) -> Order:
    return Order(
        side,
        type_,
        Decimal(qty),
        None if price is None else Decimal(price),
        None if ref is None else Decimal(ref),
    )


# (name, market, rules, order, broken, not checked but the standing ones)
CASES: list[tuple[str, str, Rules, Order, list[str], list[str]]] = [
    ("a plain limit order", "usdm", BTC, futures("LIMIT", "0.01", "60000.0", ref="60000"), [], []),
    (
        "a limit order without the mark price",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "60000.0"),
        [],
        ["PERCENT_PRICE"],
    ),
    (
        "price off the tick",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "60000.05", ref="60000"),
        ["PRICE_FILTER.tickSize"],
        [],
    ),
    (
        "tick 0 disables the tick rule",
        "usdm",
        contract("2024-10-19_347", "BTCUSDT", PRICE_FILTER={"tickSize": "0"}),
        futures("LIMIT", "0.01", "60000.05", ref="60000"),
        [],
        [],
    ),
    (
        "price below minPrice",
        "usdm",
        BTC,
        futures("LIMIT", "1", "556.7", "SELL", ref="580"),
        ["PRICE_FILTER.minPrice"],
        [],
    ),
    ("price at minPrice", "usdm", BTC, futures("LIMIT", "1", "556.8", "SELL", ref="580"), [], []),
    (
        "price above maxPrice",
        "usdm",
        BTC,
        futures("LIMIT", "0.001", "4529764.1"),
        ["PRICE_FILTER.maxPrice"],
        ["PERCENT_PRICE"],
    ),
    (
        "quantity below minQty and off the step",
        "usdm",
        BTC,
        futures("LIMIT", "0.0005", "60000.0", ref="60000"),
        ["LOT_SIZE.minQty", "LOT_SIZE.stepSize", "MIN_NOTIONAL.notional"],
        [],
    ),
    (
        "limit quantity above LOT_SIZE.maxQty",
        "usdm",
        BTC,
        futures("LIMIT", "1000.001", "60000.0", ref="60000"),
        ["LOT_SIZE.maxQty"],
        [],
    ),
    (
        "a limit order is not held to MARKET_LOT_SIZE",
        "usdm",
        BTC,
        futures("LIMIT", "500", "60000.0", ref="60000"),
        [],
        [],
    ),
    (
        "market quantity above MARKET_LOT_SIZE.maxQty",
        "usdm",
        BTC,
        futures("MARKET", "120.001", ref="60000"),
        ["MARKET_LOT_SIZE.maxQty"],
        ["PERCENT_PRICE"],
    ),
    (
        "market quantity at MARKET_LOT_SIZE.maxQty",
        "usdm",
        BTC,
        futures("MARKET", "120", ref="60000"),
        [],
        ["PERCENT_PRICE"],
    ),
    (
        "a market order is not held to LOT_SIZE (GTCUSDT)",
        "usdm",
        GTC,
        futures("MARKET", "120000", ref="1.0"),
        [],
        ["PERCENT_PRICE"],
    ),
    (
        "a limit order of the same size is (GTCUSDT)",
        "usdm",
        GTC,
        futures("LIMIT", "120000", "1.000", ref="1.0"),
        ["LOT_SIZE.maxQty"],
        [],
    ),
    (
        "notional below MIN_NOTIONAL.notional",
        "usdm",
        BTC,
        futures("LIMIT", "0.001", "60000.0", ref="60000"),
        ["MIN_NOTIONAL.notional"],
        [],
    ),
    (
        "notional at MIN_NOTIONAL.notional",
        "usdm",
        BTC,
        futures("LIMIT", "0.002", "50000.0", ref="50000"),
        [],
        [],
    ),
    (
        "market notional valued at the mark price",
        "usdm",
        BTC,
        futures("MARKET", "0.001", ref="60000"),
        ["MIN_NOTIONAL.notional"],
        ["PERCENT_PRICE"],
    ),
    (
        "market notional without the mark price",
        "usdm",
        BTC,
        futures("MARKET", "0.001"),
        [],
        ["MIN_NOTIONAL.notional", "PERCENT_PRICE"],
    ),
    (
        "buy above mark * multiplierUp",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "63000.1", ref="60000"),
        ["PERCENT_PRICE.multiplierUp"],
        [],
    ),
    (
        "buy at mark * multiplierUp",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "63000.0", ref="60000"),
        [],
        [],
    ),
    (
        "a buy far below the mark has no floor",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "50000.0", ref="60000"),
        [],
        [],
    ),
    (
        "sell below mark * multiplierDown",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "56999.9", "SELL", ref="60000"),
        ["PERCENT_PRICE.multiplierDown"],
        [],
    ),
    (
        "a sell far above the mark has no cap",
        "usdm",
        BTC,
        futures("LIMIT", "0.01", "70000.0", "SELL", ref="60000"),
        [],
        [],
    ),
    (
        "a STOP order carries a price",
        "usdm",
        BTC,
        futures("STOP", "0.01", "60000.05", ref="60000"),
        ["PRICE_FILTER.tickSize"],
        ["stopPrice"],
    ),
    (
        "a STOP order without its price",
        "usdm",
        BTC,
        futures("STOP", "0.01"),
        ["price"],
        ["stopPrice"],
    ),
    (
        "a STOP_MARKET order: LOT_SIZE only, its trigger not given",
        "usdm",
        BTC,
        futures("STOP_MARKET", "500", ref="60000"),
        [],
        ["stopPrice", "PERCENT_PRICE", "MARKET_LOT_SIZE", "MIN_NOTIONAL.notional"],
    ),
    (
        "a TAKE_PROFIT_MARKET order above LOT_SIZE.maxQty",
        "usdm",
        BTC,
        futures("TAKE_PROFIT_MARKET", "1000.001"),
        ["LOT_SIZE.maxQty"],
        ["stopPrice", "PERCENT_PRICE", "MARKET_LOT_SIZE", "MIN_NOTIONAL.notional"],
    ),
    (
        "a trailing stop",
        "usdm",
        BTC,
        futures("TRAILING_STOP_MARKET", "0.01"),
        [],
        ["callbackRate", "PERCENT_PRICE", "MARKET_LOT_SIZE", "MIN_NOTIONAL.notional"],
    ),
    (
        "a spot order type",
        "usdm",
        BTC,
        futures("LIMIT_MAKER", "0.01", "60000.0"),
        ["orderTypes"],
        [],
    ),
    (
        "a SETTLING contract",
        "usdm",
        WAVES_SETTLING,
        futures("LIMIT", "100", "1.0000", ref="1"),
        ["status"],
        [],
    ),
    (
        "a PENDING_TRADING contract, its band unscaled",
        "usdm",
        BTCST_PENDING,
        futures("LIMIT", "10", "5.000", "SELL", ref="5"),
        ["status"],
        ["PERCENT_PRICE"],
    ),
    (
        "COIN-M: one contract at a valid price",
        "coinm",
        BTCUSD,
        futures("LIMIT", "1", "60000.0", ref="60000"),
        [],
        [],
    ),
    (
        "COIN-M: a fraction of a contract",
        "coinm",
        BTCUSD,
        futures("LIMIT", "0.5", "60000.0", ref="60000"),
        ["LOT_SIZE.minQty", "LOT_SIZE.stepSize"],
        [],
    ),
    (
        "COIN-M: market quantity above MARKET_LOT_SIZE.maxQty",
        "coinm",
        BTCUSD,
        futures("MARKET", "60001", ref="60000"),
        ["MARKET_LOT_SIZE.maxQty"],
        ["PERCENT_PRICE"],
    ),
    (
        "COIN-M: price below minPrice",
        "coinm",
        BTCUSD,
        futures("LIMIT", "1", "999.9"),
        ["PRICE_FILTER.minPrice"],
        ["PERCENT_PRICE"],
    ),
    (
        "COIN-M: a DELIVERING contract",
        "coinm",
        contract("coinm", "BTCUSD_250926"),
        futures("LIMIT", "1", "60000.0", ref="60000"),
        ["status"],
        [],
    ),
    (
        "COIN-M: a PENDING_TRADING contract",
        "coinm",
        contract("coinm", "ETHUSD_260327"),
        futures("LIMIT", "1", "3000.00", ref="3000"),
        ["status"],
        [],
    ),
    (
        "COIN-M: a MIN_NOTIONAL it never documented is not checked",
        "coinm",
        contract("coinm", "BTCUSD_PERP", MIN_NOTIONAL={"notional": "1000000"}),
        futures("LIMIT", "1", "60000.0", ref="60000"),
        [],
        ["MIN_NOTIONAL"],
    ),
]


@pytest.mark.parametrize(
    ("name", "market", "rules", "the_order", "broken", "unchecked"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_futures_order_check(
    name: str, market: str, rules: Rules, the_order: Order, broken: list[str], unchecked: list[str]
) -> None:
    sym, filters = rules
    verdict = check_futures_order(sym, filters, the_order, market=market)
    assert [v.rule for v in verdict.violations] == broken
    assert sorted(u.rule for u in verdict.not_checked if u.rule not in STANDING) == sorted(
        unchecked
    )


def test_the_status_named_is_the_contracts() -> None:
    [settling] = check_futures_order(
        *WAVES_SETTLING, futures("LIMIT", "100", "1.0000"), market="usdm"
    ).violations
    [delivering] = check_futures_order(
        *contract("coinm", "BTCUSD_250926"), futures("LIMIT", "1", "60000.0"), market="coinm"
    ).violations
    assert "SETTLING" in settling.message
    assert "DELIVERING" in delivering.message  # COIN-M's contractStatus


@pytest.mark.parametrize(
    ("rules", "market", "standing"),
    [
        (BTC, "usdm", {"account", "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS"}),
        (
            BTC_2025,
            "usdm",
            {
                "account",
                "MAX_NUM_ORDERS",
                "MAX_NUM_ALGO_ORDERS",
                "POSITION_RISK_CONTROL",
                "permissionSets",
            },
        ),
        (BTCUSD, "coinm", {"account", "MAX_NUM_ORDERS"}),
    ],
    ids=["usdm-2024", "usdm-2025", "coinm"],
)
def test_what_depends_on_the_account_is_listed_never_passed(
    rules: Rules, market: str, standing: set[str]
) -> None:
    sym, filters = rules
    verdict = check_futures_order(
        sym, filters, futures("LIMIT", "1", "60000.0", ref="60000"), market=market
    )
    assert verdict.violations == []
    assert {u.rule for u in verdict.not_checked} == standing
    assert all(u.reason for u in verdict.not_checked)


def test_an_unknown_filter_type_is_listed_as_not_checked() -> None:
    sym, filters = contract("2025-10-30_625", "BTCUSDT", SOMETHING_NEW={"limit": 1})
    verdict = check_futures_order(
        sym, filters, futures("LIMIT", "0.01", "60000.0", ref="60000"), market="usdm"
    )
    [new] = [u for u in verdict.not_checked if u.rule == "SOMETHING_NEW"]
    assert "does not know" in new.reason


def test_a_priced_order_without_the_mark_says_it_needs_it() -> None:
    verdict = check_futures_order(*BTC, futures("LIMIT", "0.01", "60000.0"), market="usdm")
    assert [u.reason for u in verdict.not_checked if u.rule == "PERCENT_PRICE"] == [NEEDS_MARK]


# (rules, market, order, nearest price, nearest quantity)
NEAREST: list[tuple[Rules, str, Order, str | None, str | None]] = [
    (BTC, "usdm", futures("LIMIT", "0.0014", "60000.05", ref="60000"), "60000.10", "0.001"),
    (BTC, "usdm", futures("LIMIT", "0.01", "70000.0", ref="60000"), "63000.00", "0.010"),
    (BTC, "usdm", futures("LIMIT", "0.01", "50000.0", "SELL", ref="60000"), "57000.00", "0.010"),
    (BTC, "usdm", futures("LIMIT", "0.01", "50000.0", ref="60000"), "50000.00", "0.010"),
    (BTC, "usdm", futures("MARKET", "150", ref="60000"), None, "120.000"),
    (GTC, "usdm", futures("MARKET", "200000"), None, "150000.0"),
    (GTC, "usdm", futures("LIMIT", "200000", "1.000"), "1.000", "100000.0"),
    (BTCUSD, "coinm", futures("LIMIT", "2.5", "999"), "1000.0", "3"),
]


@pytest.mark.parametrize(("rules", "market", "the_order", "price", "quantity"), NEAREST)
def test_nearest_valid_values_on_the_contracts_tick_and_step(
    rules: Rules, market: str, the_order: Order, price: str | None, quantity: str | None
) -> None:
    verdict = check_futures_order(*rules, the_order, market=market)
    assert verdict.nearest_price == (None if price is None else Decimal(price))
    assert verdict.nearest_quantity == (None if quantity is None else Decimal(quantity))
    if verdict.nearest_price is not None:
        assert str(verdict.nearest_price) == price  # written to the tick's decimals


@pytest.mark.parametrize(
    "the_order",
    [
        Order("BUY", "MARKET", None, quote_quantity=Decimal("100")),
        Order("BUY", "LIMIT", Decimal("1"), Decimal("60000"), iceberg_quantity=Decimal("0.1")),
        Order("BUY", "LIMIT", None, Decimal("60000")),
    ],
    ids=["quote_quantity", "iceberg_quantity", "no quantity"],
)
@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_an_order_futures_do_not_have_is_refused(the_order: Order, market: str) -> None:
    with pytest.raises(UnsupportedOrderError, match=market):
        check_futures_order(*BTC, the_order, market=market)


def test_spot_is_not_a_futures_market() -> None:
    with pytest.raises(KeyError):
        check_futures_order(*BTC, futures("LIMIT", "0.01", "60000.0"), market="spot")
