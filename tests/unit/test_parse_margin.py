"""The margin bodies: pairs per symbol with typed flags, the delist schedule per entry, and
the unit of ``delistTime`` read from its size."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.ingest import InvalidPayloadError, KindSnapshot
from poller.parse_margin import (
    delist_instant,
    parse_cross_pairs,
    parse_isolated_pairs,
    parse_margin_delist_schedule,
)

SIM_DATA = Path(__file__).parents[2] / "binance_sim" / "data"
CROSS = SIM_DATA / "margin_all_pairs_from_docs.json"
ISOLATED = SIM_DATA / "margin_isolated_all_pairs_from_docs.json"
SCHEDULE = SIM_DATA / "margin_delist_schedule_from_docs.json"
PAIR = {"symbol": "BNBBTC", "isMarginTrade": True, "isBuyAllowed": True, "isSellAllowed": True}


def rows(kind: KindSnapshot) -> dict[Any, dict[str, Any]]:
    return {key: kind.to_row(entity.source) for key, entity in kind.entities.items()}


def test_the_docs_example_delist_time_is_seconds_and_the_schedule_milliseconds() -> None:
    """allPairs' documented 1704973040 (10 digits) and the schedule's 1686161202000 (13)."""
    moment = datetime(2024, 1, 11, 11, 37, 20, tzinfo=UTC)
    assert delist_instant(1704973040, "t") == moment
    assert delist_instant(1704973040000, "t") == moment
    assert delist_instant(1686161202000, "t") == datetime(2023, 6, 7, 18, 6, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "read_as"),
    [
        (10**11 - 1, datetime.fromtimestamp(10**11 - 1, UTC)),  # seconds: year 5138
        (10**11, datetime.fromtimestamp(10**8, UTC)),  # milliseconds: 1973-03-03
    ],
)
def test_the_unit_changes_at_ten_to_the_eleventh(value: int, read_as: datetime) -> None:
    assert delist_instant(value, "t") == read_as


@pytest.mark.parametrize("value", [0, -5, "1704973040", 1.7e9, True])
def test_a_delist_time_that_is_not_a_positive_integer_is_refused(value: Any) -> None:
    with pytest.raises(InvalidPayloadError, match="delistTime"):
        parse_cross_pairs(orjson.dumps([{**PAIR, "delistTime": value}]))


def test_cross_pairs_of_the_docs_shape_are_typed_with_their_id_and_delist_time() -> None:
    [kind] = parse_cross_pairs(CROSS.read_bytes())
    found = rows(kind)
    assert kind.table == "margin_pair_versions"
    assert len(found) == len(orjson.loads(CROSS.read_bytes()))
    assert found[("TRXBTC",)] == {
        "pair_id": 351637923235429141,
        "base": "TRX",
        "quote": "BTC",
        "is_margin_trade": True,
        "is_buy_allowed": True,
        "is_sell_allowed": True,
        "delist_time": datetime(2024, 1, 11, 11, 37, 20, tzinfo=UTC),
    }
    assert found[("BNBBTC",)]["delist_time"] is None
    [null] = parse_cross_pairs(orjson.dumps([{**PAIR, "delistTime": None}]))
    assert rows(null)[("BNBBTC",)]["delist_time"] is None  # null: none announced
    assert kind.entities[("TRXBTC",)].source["delistTime"] == 1704973040  # raw as sent


def test_isolated_pairs_have_no_id() -> None:
    [kind] = parse_isolated_pairs(ISOLATED.read_bytes())
    assert kind.table == "margin_isolated_pair_versions"
    assert {r["pair_id"] for r in rows(kind).values()} == {None}
    assert rows(kind)[("BTCUSDT",)]["is_buy_allowed"] is True


def test_a_buy_switched_off_is_a_different_entity_content() -> None:
    on = parse_cross_pairs(orjson.dumps([PAIR]))[0].entities[("BNBBTC",)]
    off = parse_cross_pairs(orjson.dumps([{**PAIR, "isBuyAllowed": False}]))[0].entities[
        ("BNBBTC",)
    ]
    assert on.content_hash != off.content_hash


def test_the_schedule_is_one_entity_per_asset_and_symbol() -> None:
    [kind] = parse_margin_delist_schedule(SCHEDULE.read_bytes())
    assert kind.table == "margin_delisting_versions"
    june_7 = datetime(2023, 6, 7, 18, 6, 42, tzinfo=UTC)
    assert rows(kind) == {
        ("cross", "TRX"): {"delist_time": june_7},
        ("isolated", "ADAUSDT"): {"delist_time": june_7},
        ("isolated", "BNBUSDT"): {"delist_time": june_7},
        ("cross", "ADA"): {"delist_time": datetime(2023, 6, 8, 11, 3, 52, tzinfo=UTC)},
    }
    assert kind.entities[("cross", "ADA")].source == {
        "type": "cross",
        "name": "ADA",
        "delistTime": 1686222232000,
    }


def test_an_empty_schedule_announces_nothing() -> None:
    [kind] = parse_margin_delist_schedule(b"[]")
    assert kind.entities == {}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "no pair"),
        ({"pairs": []}, "not a list"),
        ([{**PAIR, "isBuyAllowed": "true"}], "isBuyAllowed"),
        ([{k: v for k, v in PAIR.items() if k != "isSellAllowed"}], "isSellAllowed"),
        ([PAIR, PAIR], "twice"),
        ([{**PAIR, "id": "1"}], "id"),
    ],
)
def test_anything_but_a_whole_list_of_pairs_is_refused(doc: Any, message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        parse_cross_pairs(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"delistTime": 1}, "not a list"),
        ([{"crossMarginAssets": ["BTC"]}], "delistTime"),
        ([{"delistTime": 1686161202000, "crossMarginAssets": "BTC"}], "crossMarginAssets"),
        (
            [
                {"delistTime": 1686161202000, "crossMarginAssets": ["BTC"]},
                {"delistTime": 1686222232000, "crossMarginAssets": ["BTC"]},
            ],
            "twice",
        ),
    ],
)
def test_a_schedule_that_is_not_whole_is_refused(doc: Any, message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        parse_margin_delist_schedule(orjson.dumps(doc))
