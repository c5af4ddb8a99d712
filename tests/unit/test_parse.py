import copy
from typing import Any

import orjson
import pytest

from core.bodies import blank_server_time, restore_server_time
from core.diff import FieldChange, diff_objects
from core.ingest import InvalidPayloadError, KindSnapshot
from poller.binance import binance_error
from poller.parse import filter_row, parse_exchange_info, symbol_row
from tests.builders import exchange_info, symbol
from tests.conftest import FIXTURES


def kinds(doc: dict[str, Any]) -> dict[str, KindSnapshot]:
    return {k.table: k for k in parse_exchange_info(orjson.dumps(doc))}


def test_symbols_filters_and_rate_limits_are_split_into_keyed_entities() -> None:
    parsed = kinds(exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT")))
    assert set(parsed["symbol_versions"].every_entity()) == {("BTCUSDT",), ("ETHUSDT",)}
    assert ("BTCUSDT", "MARKET_LOT_SIZE") in parsed["symbol_filter_versions"].every_entity()
    assert ("REQUEST_WEIGHT", "MINUTE", 1) in parsed["rate_limit_versions"].every_entity()
    assert "filters" not in parsed["symbol_versions"].every_entity()[("BTCUSDT",)].source


def test_reordered_filters_hash_alike_and_a_changed_filter_does_not() -> None:
    a = symbol("BTCUSDT")
    b = copy.deepcopy(a)
    b["filters"].reverse()
    c = symbol("BTCUSDT", market_max_qty="999.00000000")
    ha, hb, hc = (
        kinds(exchange_info(s))["symbol_filter_versions"].every_entity() for s in (a, b, c)
    )
    assert ha == hb
    assert ha[("BTCUSDT", "PRICE_FILTER")] == hc[("BTCUSDT", "PRICE_FILTER")]
    assert ha[("BTCUSDT", "MARKET_LOT_SIZE")] != hc[("BTCUSDT", "MARKET_LOT_SIZE")]
    # ...and the symbol's own hash ignores its filters entirely.
    assert (
        kinds(exchange_info(a))["symbol_versions"].every_entity()
        == kinds(exchange_info(c))["symbol_versions"].every_entity()
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"timezone":"UTC","serverTime":',
        b"[]",
        b'{"code":0,"msg":"Service unavailable from a restricted location"}',
        b'{"rateLimits":[],"exchangeFilters":[]}',
        b'{"rateLimits":[],"exchangeFilters":[],"symbols":{}}',
        b'{"rateLimits":[],"exchangeFilters":[],"symbols":[{"status":"TRADING"}]}',
        b'{"symbols":[]}',
    ],
)
def test_incomplete_or_invalid_bodies_are_rejected_whole(body: bytes) -> None:
    with pytest.raises(InvalidPayloadError):
        parse_exchange_info(body)


def test_duplicate_symbols_are_invalid() -> None:
    with pytest.raises(InvalidPayloadError, match="duplicate"):
        parse_exchange_info(orjson.dumps(exchange_info(symbol("BTCUSDT"), symbol("BTCUSDT"))))


def test_geo_block_fixture_is_not_an_exchange() -> None:
    body = (FIXTURES / "restricted_location_2022-12-07.json").read_bytes()
    with pytest.raises(InvalidPayloadError, match="code=0"):
        parse_exchange_info(body)
    assert binance_error(body)[0] == 0


def test_typed_rows_keep_decimals_as_exact_strings() -> None:
    row = filter_row(
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.00000100",
            "maxPrice": "922327.00000000",
            "tickSize": "0.00000100",
        }
    )
    assert row["tick_size"] == "0.00000100"
    assert row["max_qty"] is None
    assert (
        filter_row({"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": True})[
            "apply_min_to_market"
        ]
        is True
    )


@pytest.mark.parametrize(
    "src",
    [
        {"filterType": "PRICE_FILTER", "tickSize": 0.01},
        {"filterType": "PRICE_FILTER", "tickSize": "1e-8"},
        {"filterType": "ICEBERG_PARTS", "limit": "10"},
        {"filterType": "NOTIONAL", "applyMinToMarket": "true"},
    ],
)
def test_typed_fields_of_the_wrong_type_are_invalid(src: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayloadError):
        filter_row(src)


def test_symbol_row_reads_permission_sets_and_leaves_absent_fields_null() -> None:
    row = symbol_row(
        {
            "symbol": "X",
            "status": "TRADING",
            "baseAsset": "A",
            "quoteAsset": "B",
            "permissionSets": [["SPOT", "MARGIN"], ["TRD_GRP_256"]],
        }
    )
    assert row["permission_sets"] == [["SPOT", "MARGIN"], ["TRD_GRP_256"]]
    assert row["oto_allowed"] is None


def test_server_time_is_blanked_and_restored_exactly() -> None:
    raw = (FIXTURES / "2022-11-28_2124.json").read_bytes()
    blanked, server_ms = blank_server_time(raw)
    assert server_ms == 1669597544331
    assert b'"serverTime":0,' in blanked[:100]
    assert restore_server_time(blanked, server_ms) == raw
    assert blank_server_time(b'{"a":1}') == (b'{"a":1}', None)


def test_diff_objects_lists_changed_added_and_removed_fields() -> None:
    assert diff_objects({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}, prefix="x.") == [
        FieldChange("x.b", 2, 3),
        FieldChange("x.c", None, 4),
    ]
    assert diff_objects({"a": 1}, None) == [FieldChange("a", 1, None)]
