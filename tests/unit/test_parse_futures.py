"""Futures exchangeInfo parsing, on the real USD-M snapshots and the docs-shaped COIN-M one."""

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from binance_sim.state import Market, default_fixture
from core.ingest import InvalidPayloadError, KindSnapshot
from core.models import Base
from poller.parse_futures import (
    COINM,
    USDM,
    FuturesMarket,
    futures_filter_row,
    futures_symbol_row,
    parse_futures_exchange_info,
)
from tests.conftest import FIXTURES

USDM_FILES = FIXTURES / "futures_usdm"
PERPETUAL_DELIVERY = datetime(2100, 12, 25, 8, tzinfo=UTC)


def real(name: str) -> bytes:
    return (USDM_FILES / name).read_bytes()


def coinm_body() -> bytes:
    return default_fixture(Market.COINM)


def kinds(body: bytes, market: FuturesMarket = USDM) -> dict[str, KindSnapshot]:
    return {kind.table: kind for kind in parse_futures_exchange_info(body, market)}


def rows(kind: KindSnapshot) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {key: kind.to_row(entity.source) for key, entity in kind.entities.items()}


def walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in walk(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in walk(item)]
    return [value]


def test_a_real_usdm_body_splits_into_contracts_filters_assets_and_limits() -> None:
    doc = orjson.loads(real("2025-10-30_625.json"))
    parsed = kinds(real("2025-10-30_625.json"))

    assert set(parsed) == {
        "usdm_symbol_versions",
        "usdm_symbol_filter_versions",
        "usdm_rate_limit_versions",
        "usdm_exchange_filter_versions",
        "usdm_asset_versions",
    }
    assert len(parsed["usdm_symbol_versions"].entities) == len(doc["symbols"]) == 625
    assert len(parsed["usdm_symbol_filter_versions"].entities) == sum(
        len(s["filters"]) for s in doc["symbols"]
    )
    assert set(parsed["usdm_asset_versions"].entities) == {(a["asset"],) for a in doc["assets"]}
    assert set(parsed["usdm_rate_limit_versions"].entities) == {
        ("REQUEST_WEIGHT", "MINUTE", 1),
        ("ORDERS", "MINUTE", 1),
        ("ORDERS", "SECOND", 10),
    }


def test_a_perpetual_reads_back_typed_with_decimals_and_aware_times() -> None:
    row = rows(kinds(real("2025-10-30_625.json"))["usdm_symbol_versions"])[("BTCUSDT",)]

    assert row == {
        "status": "TRADING",
        "pair": "BTCUSDT",
        "contract_type": "PERPETUAL",
        "delivery_date": PERPETUAL_DELIVERY,
        "onboard_date": datetime(2019, 9, 25, 8, tzinfo=UTC),
        "contract_size": None,
        "margin_asset": "USDT",
        "base_asset": "BTC",
        "quote_asset": "USDT",
        "underlying_type": "COIN",
        "underlying_sub_type": ["PoW"],
        "price_precision": 2,
        "quantity_precision": 3,
        "base_asset_precision": 8,
        "quote_precision": 8,
        "equal_qty_precision": None,
        "trigger_protect": Decimal("0.0500"),
        "liquidation_fee": Decimal("0.012500"),
        "market_take_bound": Decimal("0.05"),
        "maint_margin_percent": Decimal("2.5000"),
        "required_margin_percent": Decimal("5.0000"),
        "max_move_order_limit": 10000,
        "order_types": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "time_in_force": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permission_sets": ["GRID", "COPY", "DCA"],
    }


@pytest.mark.parametrize(
    "name", ["2021-09-06_133.json", "2024-10-19_347.json", "2025-10-30_625.json"]
)
def test_no_typed_value_of_any_real_body_is_a_float(name: str) -> None:
    leaves = [leaf for kind in kinds(real(name)).values() for leaf in walk(rows(kind))]

    assert leaves
    assert not [leaf for leaf in leaves if isinstance(leaf, float)]


def test_lifecycle_statuses_and_quarterly_delivery_dates_read_back() -> None:
    parsed = rows(kinds(real("2025-10-30_625.json"))["usdm_symbol_versions"])

    assert Counter(row["status"] for row in parsed.values()) == {
        "TRADING": 572,
        "SETTLING": 52,
        "PENDING_TRADING": 1,
    }
    quarterly = parsed[("BTCUSDT_251226",)]
    assert (quarterly["contract_type"], quarterly["delivery_date"]) == (
        "CURRENT_QUARTER",
        datetime(2025, 12, 26, 8, tzinfo=UTC),
    )
    assert parsed[("BTCSTUSDT",)]["status"] == "PENDING_TRADING"


def test_futures_filters_map_per_type_and_keep_their_raw_object() -> None:
    parsed = kinds(real("2025-10-30_625.json"))["usdm_symbol_filter_versions"]
    typed = rows(parsed)

    def non_null(filter_type: str) -> dict[str, Any]:
        row = typed[("BTCUSDT", filter_type)]
        return {column: value for column, value in row.items() if value is not None}

    assert non_null("PRICE_FILTER") == {
        "min_price": Decimal("556.80"),
        "max_price": Decimal("4529764"),
        "tick_size": Decimal("0.10"),
    }
    assert non_null("MARKET_LOT_SIZE") == {
        "min_qty": Decimal("0.001"),
        "max_qty": Decimal("120"),
        "step_size": Decimal("0.001"),
    }
    assert non_null("MIN_NOTIONAL") == {"notional": Decimal("100")}
    assert non_null("MAX_NUM_ORDERS") == {"max_num_orders": 200}
    assert non_null("MAX_NUM_ALGO_ORDERS") == {"max_num_algo_orders": 10}
    assert non_null("PERCENT_PRICE") == {
        "multiplier_up": Decimal("1.0500"),
        "multiplier_down": Decimal("0.9500"),
        "multiplier_decimal": 4,
    }
    assert non_null("POSITION_RISK_CONTROL") == {"position_control_side": "NONE"}
    assert parsed.entities[("BTCUSDT", "MIN_NOTIONAL")].source == {
        "filterType": "MIN_NOTIONAL",
        "notional": "100",
    }


def test_a_new_filter_type_is_kept_raw_with_no_typed_columns() -> None:
    doc = orjson.loads(coinm_body())
    new_filter = {"filterType": "NEW_SHINY_FILTER", "limit": 7, "minPrice": "1"}
    doc["symbols"][0]["filters"].append(new_filter)

    parsed = kinds(orjson.dumps(doc), COINM)["coinm_symbol_filter_versions"]
    key = (doc["symbols"][0]["symbol"], "NEW_SHINY_FILTER")

    assert parsed.entities[key].source == new_filter
    assert {c: v for c, v in parsed.to_row(new_filter).items() if v is not None} == {
        "min_price": Decimal("1")
    }


def test_fields_of_another_era_stay_in_raw() -> None:
    parsed = kinds(real("2021-09-06_133.json"))["usdm_symbol_versions"]
    btc = parsed.entities[("BTCUSDT",)]

    assert btc.source["settlePlan"] == 0
    assert "filters" not in btc.source
    row = parsed.to_row(btc.source)
    assert (row["max_move_order_limit"], row["permission_sets"]) == (None, None)
    assert rows(parsed)[("BTCSTUSDT",)]["contract_type"] == ""


def test_the_nothing_changed_pair_hashes_alike_entity_for_entity() -> None:
    first = kinds(real("2024-10-19_347.json"))
    second = kinds(real("2024-10-20_347.json"))

    assert {t: k.entities for t, k in first.items()} == {t: k.entities for t, k in second.items()}


def test_coinm_reads_contract_status_and_contract_size_and_has_no_assets() -> None:
    parsed = kinds(coinm_body(), COINM)

    assert "coinm_asset_versions" not in parsed
    typed = rows(parsed["coinm_symbol_versions"])
    perp = typed[("BTCUSD_PERP",)]
    assert (perp["status"], perp["contract_size"], perp["equal_qty_precision"]) == (
        "TRADING",
        Decimal(100),
        4,
    )
    assert typed[("ETHUSD_260327",)]["status"] == "PENDING_TRADING"
    assert typed[("BTCUSD_250926",)]["status"] == "DELIVERING"
    percent = rows(parsed["coinm_symbol_filter_versions"])[("BTCUSD_PERP", "PERCENT_PRICE")]
    assert percent["multiplier_decimal"] == 4


def test_each_market_insists_on_its_own_status_key() -> None:
    coinm_shaped = coinm_body()
    usdm_shaped = real("2021-09-06_133.json")

    with pytest.raises(InvalidPayloadError, match="status"):
        parse_futures_exchange_info(coinm_shaped, USDM)
    with pytest.raises(InvalidPayloadError, match="contractStatus"):
        parse_futures_exchange_info(usdm_shaped, COINM)


def _without(key: str) -> bytes:
    doc = orjson.loads(real("2021-09-06_133.json"))
    del doc[key]
    return orjson.dumps(doc)


def _symbol_without(key: str) -> bytes:
    doc = orjson.loads(real("2021-09-06_133.json"))
    del doc["symbols"][5][key]
    return orjson.dumps(doc)


def _duplicate_symbol() -> bytes:
    doc = orjson.loads(real("2021-09-06_133.json"))
    doc["symbols"].append(doc["symbols"][0])
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (real("2021-09-06_133.json")[:5000], "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"code":-1003,"msg":"Too many requests"}', "code=-1003"),
        (_without("symbols"), "'symbols'"),
        (_without("rateLimits"), "'rateLimits'"),
        (_without("exchangeFilters"), "'exchangeFilters'"),
        (_without("assets"), "'assets'"),
        (_symbol_without("deliveryDate"), "deliveryDate"),
        (_symbol_without("filters"), "'filters'"),
        (_symbol_without("symbol"), "without a name"),
        (_duplicate_symbol(), "duplicate"),
    ],
)
def test_incomplete_or_invalid_usdm_bodies_are_rejected_whole(body: bytes, error: str) -> None:
    with pytest.raises(InvalidPayloadError, match=error):
        parse_futures_exchange_info(body, USDM)


def test_a_malformed_typed_value_is_invalid_never_a_float() -> None:
    with pytest.raises(InvalidPayloadError, match="liquidationFee"):
        futures_symbol_row(USDM)({"symbol": "X", "status": "TRADING", "liquidationFee": 0.01})
    with pytest.raises(InvalidPayloadError, match="notional"):
        futures_filter_row({"filterType": "MIN_NOTIONAL", "notional": 5.0})
    with pytest.raises(InvalidPayloadError, match="deliveryDate"):
        futures_symbol_row(USDM)({"symbol": "X", "status": "TRADING", "deliveryDate": "soon"})


@pytest.mark.parametrize(("market", "body"), [(USDM, "2025-10-30_625.json"), (COINM, None)])
def test_every_row_fills_exactly_its_tables_typed_columns(
    market: FuturesMarket, body: str | None
) -> None:
    parsed = parse_futures_exchange_info(coinm_body() if body is None else real(body), market)

    for kind in parsed:
        model = Base.metadata.tables[kind.table]
        bookkeeping = {"valid_from", "valid_to", "content_hash", "opened_by", "closed_by", "raw"}
        key_columns = [c.name for c in model.primary_key.columns if c.name != "valid_from"]
        typed = {c.name for c in model.columns} - bookkeeping - set(key_columns)
        # Real exchangeFilters are always []: a made-up one stands in for them.
        sources = [e.source for e in kind.entities.values()] or [{"filterType": "ANY"}]
        assert all(len(key) == len(key_columns) for key in kind.entities), kind.table
        assert all(set(kind.to_row(source)) == typed for source in sources), kind.table
