"""What a changed body's plan builds: only the symbols whose objects changed."""

from dataclasses import replace

import orjson

from core.ingest import CurrentState, Entity, Key, KindSnapshot, Snapshot, _plan
from poller.parse import parse_exchange_info
from tests.builders import exchange_info, symbol

BEFORE = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
AFTER = exchange_info(symbol("BTCUSDT", market_max_qty="9.00000000"), symbol("ETHUSDT"))


def refusing(snapshot: Snapshot, name: str) -> Snapshot:
    """``snapshot`` with every group of symbol ``name`` failing the test if it is built."""

    def refuse() -> dict[Key, Entity]:
        raise AssertionError(f"{name} was built again")

    def refused(kind: KindSnapshot) -> KindSnapshot:
        if (name,) not in kind.groups:
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


def test_without_the_digests_of_its_state_every_symbol_is_built() -> None:
    first = _plan(parse_exchange_info(orjson.dumps(BEFORE)), CurrentState())
    loaded = CurrentState(1, first.hashes)  # as read from the database: hashes alone

    plan = _plan(parse_exchange_info(orjson.dumps(AFTER)), loaded)

    assert plan.close["symbol_filter_versions"] == [("BTCUSDT", "MARKET_LOT_SIZE")]
    assert plan.close["symbol_versions"] == []
