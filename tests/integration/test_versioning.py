"""The versioned write against a real PostgreSQL: what an observation opens and closes."""

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from core.ingest import StreamWriter
from poller.parse import parse_exchange_info
from tests.builders import (
    at,
    exchange_info,
    exchange_info_answered,
    record_exchange_info,
    record_failure,
    symbol,
)
from tests.reads import statements_sent

T0 = at("2024-01-01T00:00:00")


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_unchanged_poll_adds_only_an_observation(engine: Engine) -> None:
    doc = exchange_info(symbol("BTCUSDT"))
    record_exchange_info(engine, doc, T0)
    before = count(engine, "SELECT count(*) FROM symbol_filter_versions") + count(
        engine, "SELECT count(*) FROM symbol_versions"
    )
    again = record_exchange_info(engine, doc, T0 + timedelta(seconds=10))
    assert again.outcome == "unchanged"
    after = count(engine, "SELECT count(*) FROM symbol_filter_versions") + count(
        engine, "SELECT count(*) FROM symbol_versions"
    )
    assert after == before
    assert count(engine, "SELECT count(*) FROM observations") == 2
    assert count(engine, "SELECT count(*) FROM raw_bodies") == 1


def test_change_closes_the_current_version_and_opens_one_at_the_observation_time(
    engine: Engine,
) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    t1 = T0 + timedelta(minutes=1)
    recorded = record_exchange_info(engine, exchange_info(symbol("BTCUSDT", status="HALT")), t1)
    assert recorded.opened == {"symbol_versions": 1}
    assert recorded.closed == {"symbol_versions": 1}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, valid_from, valid_to FROM symbol_versions ORDER BY valid_from")
        ).all()
    assert [(r.status, r.valid_from, r.valid_to) for r in rows] == [
        ("TRADING", T0, t1),
        ("HALT", t1, None),
    ]


def test_market_lot_churn_writes_one_filter_row_and_no_symbol_row(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    recorded = record_exchange_info(
        engine,
        exchange_info(symbol("BTCUSDT", market_max_qty="12.00000000")),
        T0 + timedelta(days=1),
    )
    assert recorded.opened == {"symbol_filter_versions": 1}
    assert count(engine, "SELECT count(*) FROM symbol_versions") == 1


def test_symbol_missing_from_a_complete_response_is_closed_with_its_filters(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT")), T0)
    t1 = T0 + timedelta(minutes=1)
    recorded = record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), t1)
    assert recorded.closed == {"symbol_versions": 1, "symbol_filter_versions": 4}
    assert (
        count(
            engine,
            "SELECT count(*) FROM symbol_filter_versions WHERE symbol = 'ETHUSDT' AND valid_to IS NULL",
        )
        == 0
    )
    # ...and it comes back as a new version, leaving the gap in its history.
    record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT")), t1 + timedelta(minutes=1)
    )
    assert count(engine, "SELECT count(*) FROM symbol_versions WHERE symbol = 'ETHUSDT'") == 2


def test_failures_close_nothing(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    failed = record_failure(engine, T0 + timedelta(seconds=10))
    invalid = record_exchange_info(
        engine, b'{"timezone":"UTC","serverTime":1', T0 + timedelta(seconds=20)
    )
    empty = record_exchange_info(
        engine, b'{"code":0,"msg":"restricted"}', T0 + timedelta(seconds=30)
    )
    assert (failed.outcome, invalid.outcome, empty.outcome) == ("error", "error", "error")
    assert count(engine, "SELECT count(*) FROM symbol_versions WHERE valid_to IS NULL") == 1
    with engine.connect() as conn:
        classes = (
            conn.execute(
                text("SELECT error_class FROM observations WHERE outcome = 'error' ORDER BY id")
            )
            .scalars()
            .all()
        )
    assert classes == ["http_error", "invalid_payload", "invalid_payload"]


def test_older_observation_is_stale_and_changes_nothing(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    late = record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT", status="HALT")), T0 - timedelta(seconds=1)
    )
    assert late.outcome == "stale"
    assert count(engine, "SELECT count(*) FROM symbol_versions") == 1


def test_a_writer_whose_cache_is_behind_reloads_current_versions(engine: Engine) -> None:
    a, b = StreamWriter(engine, "exchange_info"), StreamWriter(engine, "exchange_info")
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0, writer=a)
    record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT", status="HALT")), T0 + timedelta(seconds=1), writer=b
    )
    # `a` still remembers TRADING as current; it must notice `b`'s write, not re-open TRADING twice.
    recorded = record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT")), T0 + timedelta(seconds=2), writer=a
    )
    assert recorded.opened == {"symbol_versions": 1}
    assert count(engine, "SELECT count(*) FROM symbol_versions") == 3


def test_overlapping_version_inserted_by_hand_is_refused(engine: Engine) -> None:
    recorded = record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    overlap = text(
        "INSERT INTO symbol_versions (symbol, valid_from, valid_to, status, base_asset, quote_asset,"
        " raw, content_hash, opened_by) VALUES ('BTCUSDT', :f, :t, 'HALT', 'BTC', 'USDT', '{}', '\\x00', :o)"
    )
    with (
        pytest.raises(IntegrityError, match="ex_symbol_versions_no_overlap"),
        engine.begin() as conn,
    ):
        conn.execute(
            overlap,
            {
                "f": T0 - timedelta(hours=1),
                "t": T0 + timedelta(hours=1),
                "o": recorded.observation_id,
            },
        )


def test_empty_validity_range_is_refused(engine: Engine) -> None:
    recorded = record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    empty = text(
        "INSERT INTO symbol_versions (symbol, valid_from, valid_to, status, base_asset, quote_asset,"
        " raw, content_hash, opened_by) VALUES ('ETHUSDT', :f, :f, 'HALT', 'ETH', 'USDT', '{}', '\\x00', :o)"
    )
    with pytest.raises(IntegrityError, match="nonempty"), engine.begin() as conn:
        conn.execute(empty, {"f": T0 - timedelta(hours=1), "o": recorded.observation_id})


def test_a_batch_writes_the_history_one_by_one_would_and_updates_no_version_it_opened(
    engine: Engine,
) -> None:
    """An import's batch (StreamWriter.record_many): the outcomes and versions of writing
    each document alone, but a version opened and closed within the batch is inserted
    closed; only the versions current before it are closed by an UPDATE."""
    eth = symbol("ETHUSDT")
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT", market_max_qty="1.0"), eth), T0)
    t1, t2, t3 = (T0 + timedelta(minutes=n) for n in (1, 2, 3))
    batch = [
        exchange_info_answered(exchange_info(symbol("BTCUSDT", market_max_qty="2.0"), eth), t1),
        exchange_info_answered(exchange_info(symbol("BTCUSDT", market_max_qty="3.0"), eth), t2),
        exchange_info_answered(exchange_info(symbol("BTCUSDT", market_max_qty="3.0")), t3),
    ]
    with statements_sent(engine) as sent:
        recorded = StreamWriter(engine, "exchange_info").record_many(batch, parse_exchange_info)

    assert [(r.outcome, r.opened, r.closed) for r in recorded] == [
        ("changed", {"symbol_filter_versions": 1}, {"symbol_filter_versions": 1}),
        ("changed", {"symbol_filter_versions": 1}, {"symbol_filter_versions": 1}),
        ("changed", {}, {"symbol_versions": 1, "symbol_filter_versions": 4}),
    ]
    with engine.connect() as conn:
        market_lot = conn.execute(
            text(
                "SELECT valid_from, valid_to, max_qty::text, opened_by, closed_by"
                " FROM symbol_filter_versions"
                " WHERE symbol = 'BTCUSDT' AND filter_type = 'MARKET_LOT_SIZE' ORDER BY valid_from"
            )
        ).all()
        eth_ends = conn.execute(
            text(
                "SELECT DISTINCT valid_to FROM symbol_filter_versions WHERE symbol = 'ETHUSDT'"
                " UNION SELECT valid_to FROM symbol_versions WHERE symbol = 'ETHUSDT'"
            )
        ).scalars()
    ids = [r.observation_id for r in recorded]
    assert [tuple(r)[:3] for r in market_lot] == [
        (T0, t1, "1.0"),
        (t1, t2, "2.0"),
        (t2, None, "3.0"),
    ]
    assert [tuple(r)[3:] for r in market_lot][1:] == [(ids[0], ids[1]), (ids[1], None)]
    assert set(eth_ends) == {t3}
    closed_by_update = [
        key
        for statement, params in sent
        if statement.startswith("UPDATE symbol_filter_versions")
        for key in zip(params["k0"], params["k1"], strict=True)
    ]
    # BTCUSDT's 1.0 and ETHUSDT's four filters were current before the batch; the 2.0
    # version was opened and closed within it.
    assert sorted(closed_by_update) == sorted(
        [("BTCUSDT", "MARKET_LOT_SIZE")] + [("ETHUSDT", f["filterType"]) for f in eth["filters"]]
    )
