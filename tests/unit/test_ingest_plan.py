"""What a changed body's plan builds: only the symbols whose objects changed."""

from dataclasses import replace
from typing import Any

import orjson
import pytest

from core.ingest import (
    CurrentState,
    Entity,
    InvalidPayloadError,
    Key,
    KindSnapshot,
    Snapshot,
    _plan,
)
from poller.archive import Document, is_valid
from poller.parse import parse_exchange_info
from tests.builders import at, exchange_info, symbol

BEFORE = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
AFTER = exchange_info(symbol("BTCUSDT", market_max_qty="9.00000000"), symbol("ETHUSDT"))


def refusing(snapshot: Snapshot, name: str, tables: set[str] | None = None) -> Snapshot:
    """``snapshot`` with every group of symbol ``name`` (in ``tables``, else in any table)
    failing the test if it is built."""

    def refuse() -> dict[Key, Entity]:
        raise AssertionError(f"{name} was built again")

    def refused(kind: KindSnapshot) -> KindSnapshot:
        if (name,) not in kind.groups or (tables is not None and kind.table not in tables):
            return kind
        groups = {**kind.groups, (name,): replace(kind.groups[(name,)], build=refuse)}
        return replace(kind, groups=groups)

    return [refused(kind) for kind in snapshot]


def test_a_symbol_whose_object_is_unchanged_is_not_built_and_keeps_its_versions() -> None:
    first = _plan(parse_exchange_info(orjson.dumps(BEFORE)), CurrentState())
    state = CurrentState(1, first.hashes, first.digests)

    plan = _plan(refusing(parse_exchange_info(orjson.dumps(AFTER)), "ETHUSDT"), state)

    assert plan.close["symbol_versions"] == []
    assert plan.close["symbol_filter_versions"] == [("BTCUSDT", "MARKET_LOT_SIZE")]
    assert [key for key, _, _ in plan.insert["symbol_filter_versions"]] == [
        ("BTCUSDT", "MARKET_LOT_SIZE")
    ]
    # ...and the state it leaves is the one a plan building everything would.
    assert plan.hashes == _plan(parse_exchange_info(orjson.dumps(AFTER)), CurrentState()).hashes


@pytest.mark.parametrize(
    ("after", "unbuilt", "closed"),
    [
        # A day's usual change: a filter moved, the symbol's own fields as they were.
        (AFTER, "symbol_versions", {"symbol_filter_versions": [("BTCUSDT", "MARKET_LOT_SIZE")]}),
        # A halt: the status moved, the filters as they were.
        (
            exchange_info(symbol("BTCUSDT", status="HALT"), symbol("ETHUSDT")),
            "symbol_filter_versions",
            {"symbol_versions": [("BTCUSDT",)]},
        ),
    ],
)
def test_a_symbol_builds_again_only_the_part_of_it_that_changed(
    after: dict[str, object], unbuilt: str, closed: dict[str, list[Key]]
) -> None:
    first = _plan(parse_exchange_info(orjson.dumps(BEFORE)), CurrentState())
    state = CurrentState(1, first.hashes, first.digests)

    plan = _plan(refusing(parse_exchange_info(orjson.dumps(after)), "BTCUSDT", {unbuilt}), state)

    assert {t: keys for t, keys in plan.close.items() if keys} == closed
    assert plan.hashes == _plan(parse_exchange_info(orjson.dumps(after)), CurrentState()).hashes


def test_without_the_digests_of_its_state_every_symbol_is_built() -> None:
    first = _plan(parse_exchange_info(orjson.dumps(BEFORE)), CurrentState())
    loaded = CurrentState(1, first.hashes)  # as read from the database: hashes alone

    plan = _plan(parse_exchange_info(orjson.dumps(AFTER)), loaded)

    assert plan.close["symbol_filter_versions"] == [("BTCUSDT", "MARKET_LOT_SIZE")]
    assert plan.close["symbol_versions"] == []


def test_a_changed_symbol_is_checked_when_built_and_refuses_the_whole_body() -> None:
    broken = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
    del broken["symbols"][1]["baseAsset"]
    first = _plan(parse_exchange_info(orjson.dumps(BEFORE)), CurrentState())
    state = CurrentState(1, first.hashes, first.digests)

    with pytest.raises(InvalidPayloadError, match="ETHUSDT"):
        _plan(parse_exchange_info(orjson.dumps(broken)), state)


def test_a_dry_run_counts_a_body_with_an_invalid_symbol_as_an_error() -> None:
    broken = exchange_info(symbol("BTCUSDT"))
    broken["symbols"][0]["status"] = 1
    document = Document(
        at("2024-01-01T00:00:00"), "broken.json", None, lambda: orjson.dumps(broken)
    )

    assert not is_valid(document, "exchange_info", parse_exchange_info)
    assert is_valid(
        replace(document, read=lambda: orjson.dumps(BEFORE)), "exchange_info", parse_exchange_info
    )


def _without_filter(sym: dict[str, Any], filter_type: str) -> dict[str, Any]:
    return {**sym, "filters": [f for f in sym["filters"] if f["filterType"] != filter_type]}


@pytest.mark.parametrize("held", ["digests", "hashes alone"])
def test_a_plan_closes_and_opens_what_a_symbol_and_its_filters_lost_and_gained(held: str) -> None:
    """A symbol delisted, one listed, a filter dropped from one and added to another:
    what closes and opens, from a state this process built or one read from the database."""
    eth = symbol("ETHUSDT")
    before = exchange_info(
        _without_filter(symbol("BTCUSDT"), "MARKET_LOT_SIZE"), eth, symbol("XRPUSDT")
    )
    after = exchange_info(symbol("BTCUSDT"), _without_filter(eth, "LOT_SIZE"), symbol("ADAUSDT"))
    first = _plan(parse_exchange_info(orjson.dumps(before)), CurrentState())
    state = CurrentState(1, first.hashes, first.digests if held == "digests" else {})
    if held == "digests":
        state.members = first.members

    plan = _plan(parse_exchange_info(orjson.dumps(after)), state)

    xrp = {k for k in first.hashes["symbol_filter_versions"] if k[0] == "XRPUSDT"}
    ada = {k for k in plan.hashes["symbol_filter_versions"] if k[0] == "ADAUSDT"}
    assert xrp
    assert ada
    assert set(plan.close["symbol_versions"]) == {("XRPUSDT",)}
    assert {k for k, _, _ in plan.insert["symbol_versions"]} == {("ADAUSDT",)}
    assert set(plan.close["symbol_filter_versions"]) == xrp | {("ETHUSDT", "LOT_SIZE")}
    assert {k for k, _, _ in plan.insert["symbol_filter_versions"]} == ada | {
        ("BTCUSDT", "MARKET_LOT_SIZE")
    }
    fresh = _plan(parse_exchange_info(orjson.dumps(after)), CurrentState())
    assert plan.hashes == fresh.hashes
    assert {t: {g: sorted(keys) for g, keys in m.items()} for t, m in plan.members.items()} == {
        t: {g: sorted(keys) for g, keys in m.items()} for t, m in fresh.members.items()
    }
