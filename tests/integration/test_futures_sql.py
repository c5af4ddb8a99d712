"""The analysts' SQL of the futures markets (migration 0180), read as ``exmeta_reader``:
the real USD-M snapshots and the documented COIN-M shape replayed into the database, and
every answer compared with what the documents say, computed in the tests from the files."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from tests.builders import exchange_info, record_exchange_info, symbol
from tests.futures_replay import (
    COINM_AT,
    USDM_AT,
    USDM_FILES,
    entities,
    expected_changes,
    pivoted,
    record_coinm,
    record_usdm_replay,
    row_validity,
)
from tests.reader_role import reader_connection
from tests.reads import rows_scanned

PIVOTED = (
    "symbol, status, delivery_date, tick_size, min_price, max_price, min_qty, max_qty,"
    " step_size, market_min_qty, market_max_qty, min_notional, multiplier_up,"
    " multiplier_down, multiplier_decimal"
)
CHANGE = "changed_at, entity, key, field, old, new"
FEED_ORDER = 'ORDER BY changed_at, entity, key COLLATE "C", field COLLATE "C"'


def test_futures_symbols_as_of_answers_each_replayed_file(engine: Engine) -> None:
    docs = record_usdm_replay(engine)
    tables = [entities(doc) for doc in docs]
    with reader_connection(engine) as conn:
        query = f"SELECT {PIVOTED}, valid_from, valid_to FROM futures_symbols_as_of(%s, %s)"
        for i, doc in enumerate(docs):
            between = USDM_AT[i] + timedelta(hours=1)  # after the poll, before the next
            rows = conn.execute(query + ' ORDER BY symbol COLLATE "C"', ("usdm", between))
            expected = [
                (*pivoted(s), *row_validity(tables, USDM_AT, i, s["symbol"]))
                for s in sorted(doc["symbols"], key=lambda s: str(s["symbol"]))
            ]
            assert rows.fetchall() == expected, USDM_FILES[i].name
        before = conn.execute(query, ("usdm", USDM_AT[0] - timedelta(seconds=1))).fetchall()
        assert before == []
        current = conn.execute(
            f'SELECT market, {PIVOTED} FROM futures_symbols_current ORDER BY symbol COLLATE "C"'
        ).fetchall()
        last = sorted(docs[-1]["symbols"], key=lambda s: str(s["symbol"]))
        assert current == [("usdm", *pivoted(s)) for s in last]
        assert conn.execute(
            "SELECT count(*) FROM futures_symbols_as_of('coinm', now())"
        ).fetchall() == [(0,)]


def test_futures_symbol_as_of_reads_a_contracts_lifecycle(engine: Engine) -> None:
    docs = record_usdm_replay(engine)
    settled = {s["symbol"] for s in docs[-1]["symbols"] if s["status"] == "SETTLING"}
    earlier = {s["symbol"]: s["status"] for s in docs[1]["symbols"]}
    # A contract trading in 2024 and settling by 2025, as the files say.
    name = min(s for s in settled if earlier.get(s) == "TRADING")
    with reader_connection(engine) as conn:

        def status(when: datetime) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT market, symbol, status FROM futures_symbol_as_of('usdm', %s, %s)",
                (name, when),
            ).fetchall()

        assert status(USDM_AT[1]) == [("usdm", name, "TRADING")]
        assert status(USDM_AT[3]) == [("usdm", name, "SETTLING")]
        assert status(USDM_AT[1] - timedelta(days=1)) == [
            ("usdm", name, s["status"]) for s in docs[0]["symbols"] if s["symbol"] == name
        ]


def test_coinm_contracts_read_with_their_contract_status(engine: Engine) -> None:
    docs = record_coinm(engine)
    record_usdm_replay(engine)
    with reader_connection(engine) as conn:
        query = f'SELECT {PIVOTED} FROM futures_symbols_as_of(%s, %s) ORDER BY symbol COLLATE "C"'
        for doc, when in zip(docs, COINM_AT, strict=True):
            rows = conn.execute(query, ("coinm", when)).fetchall()
            assert rows == [pivoted(s) for s in sorted(doc["symbols"], key=lambda s: s["symbol"])]
        one = conn.execute(
            "SELECT status, tick_size FROM futures_symbol_as_of('coinm', 'BTCUSD_PERP', %s)",
            (COINM_AT[1],),
        ).fetchall()
        assert one == [("TRADING", Decimal("0.2"))]
        markets = conn.execute(
            "SELECT market, count(*) FROM futures_symbols_current GROUP BY market ORDER BY market"
        ).fetchall()
        assert markets == [("coinm", len(docs[-1]["symbols"])), ("usdm", 625)]


@pytest.mark.parametrize(
    ("statement", "word"),
    [
        ("SELECT * FROM futures_symbols_as_of('spot', now())", "'spot'"),
        ("SELECT * FROM futures_symbol_as_of('USDM', 'BTCUSDT', now())", "'USDM'"),
        ("SELECT * FROM rate_limits_as_of('usd-m', now())", "'usd-m'"),
        ("SELECT * FROM futures_symbols_as_of(NULL, now())", "NULL"),
    ],
)
def test_a_market_word_the_function_does_not_know_is_an_error(
    engine: Engine, statement: str, word: str
) -> None:
    with (
        reader_connection(engine) as conn,
        pytest.raises(psycopg.errors.InvalidParameterValue) as caught,
    ):
        conn.execute(statement)
    assert str(caught.value).startswith(f"unknown market {word}: one of ")


def test_rate_limits_by_market_leave_spots_as_they_were(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), COINM_AT[0])
    usdm = record_usdm_replay(engine)[-1]
    coinm = record_coinm(engine)
    limit = "rate_limit_type, interval, interval_num, limit_value, valid_from, valid_to, raw"
    order = "ORDER BY rate_limit_type, interval, interval_num"
    with reader_connection(engine) as conn:

        def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        for when in (COINM_AT[0], COINM_AT[1] + timedelta(hours=1)):
            spot = rows(f"SELECT {limit} FROM rate_limits_as_of(%s) {order}", when)
            assert len(spot) == 2
            assert rows(f"SELECT {limit} FROM rate_limits_as_of('spot', %s) {order}", when) == spot
        by_market = {
            market: [(r["rateLimitType"], r["interval"], r["intervalNum"], r["limit"]) for r in doc]
            for market, doc in (
                ("usdm", usdm["rateLimits"]),
                ("coinm", coinm[0]["rateLimits"]),
            )
        }
        for market, expected in by_market.items():
            found = rows(
                f"SELECT rate_limit_type, interval, interval_num, limit_value"
                f" FROM rate_limits_as_of(%s, %s) {order}",
                market,
                COINM_AT[0],
            )
            assert found == sorted(expected)
        assert rows("SELECT limit_value FROM rate_limits_as_of('coinm', %s)", COINM_AT[1]) == [
            (2400,)
        ]
        current = rows(
            "SELECT market, count(*) FROM market_rate_limits_current GROUP BY market"
            " ORDER BY market"
        )
        assert current == [("coinm", 1), ("spot", 2), ("usdm", 3)]
        assert rows(f"SELECT {limit} FROM rate_limits_current {order}") == spot


def view_changes(conn: psycopg.Connection[Any], market: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {CHANGE} FROM changes WHERE market = %s {FEED_ORDER}", (market,)
    ).fetchall()


def test_the_changes_view_lists_the_usdm_replay_as_the_files_differ(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), USDM_AT[0])
    docs = record_usdm_replay(engine)
    expected = expected_changes(docs, USDM_AT)
    with reader_connection(engine) as conn:
        assert view_changes(conn, "usdm") == expected
        streams = conn.execute(
            "SELECT market, stream, changed_at, observed_before, count(*) FROM changes"
            " GROUP BY 1, 2, 3, 4 ORDER BY 3, 1"
        ).fetchall()
    # 2024-10-20 differs from 10-19 in serverTime alone: no change is dated by it.
    usdm = [(USDM_AT[0], None), (USDM_AT[1], USDM_AT[0]), (USDM_AT[3], USDM_AT[2])]
    assert [r[:4] for r in streams] == [
        ("spot", "exchange_info", USDM_AT[0], None),
        *(("usdm", "usdm_exchange_info", *dated) for dated in usdm),
    ]
    fields = {(r[1], r[3]) for r in expected}
    # What the files truly show: settlePlan gone, POSITION_RISK_CONTROL come, statuses move.
    assert ("symbol", "settlePlan") in fields
    assert ("symbol", "filters.POSITION_RISK_CONTROL.positionControlSide") in fields
    assert ("symbol", "status") in fields
    assert {r[1] for r in expected} == {"symbol", "rate_limit", "asset"}


def test_the_changes_view_lists_coinm_changes_under_its_stream(engine: Engine) -> None:
    docs = record_coinm(engine)
    with reader_connection(engine) as conn:
        rows = view_changes(conn, "coinm")
        assert rows == expected_changes(docs, COINM_AT, "coinm")
        streams = conn.execute("SELECT DISTINCT stream, market FROM changes").fetchall()
    assert streams == [("coinm_exchange_info", "coinm")]
    later = [r[1:4] for r in rows if r[0] == COINM_AT[1]]
    assert later == [
        ("exchange_filter", "EXCHANGE_MAX_NUM_ORDERS", "listed"),
        ("rate_limit", "REQUEST_WEIGHT:MINUTE:1", "limit"),
        ("symbol", "BTCUSD_250926", "listed"),
        ("symbol", "BTCUSD_PERP", "filters.PRICE_FILTER.tickSize"),
        ("symbol", "ETHUSD_260327", "contractStatus"),
    ]


def test_asking_one_market_reads_no_other_markets_tables(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), COINM_AT[0])
    record_usdm_replay(engine)
    record_coinm(engine)
    when = {"t": COINM_AT[1]}
    for statement, read, unread in (
        (
            "SELECT * FROM futures_symbols_as_of('usdm', %(t)s)",
            "usdm_symbol_versions",
            "coinm_symbol_versions",
        ),
        (
            "SELECT * FROM futures_symbol_as_of('coinm', 'BTCUSD_PERP', %(t)s)",
            "coinm_symbol_versions",
            "usdm_symbol_filter_versions",
        ),
        (
            "SELECT * FROM futures_symbols_current WHERE market = 'coinm'",
            "coinm_symbol_versions",
            "usdm_symbol_versions",
        ),
        (
            "SELECT * FROM rate_limits_as_of('spot', %(t)s)",
            "rate_limit_versions",
            "usdm_rate_limit_versions",
        ),
        (
            "SELECT * FROM changes WHERE market = 'coinm'",
            "coinm_symbol_versions",
            "symbol_versions",
        ),
        (
            "SELECT * FROM changes WHERE stream = 'usdm_exchange_info'",
            "usdm_symbol_versions",
            "coinm_symbol_versions",
        ),
    ):
        sent = [(statement, when)]
        assert rows_scanned(engine, sent, read) > 0, statement
        assert rows_scanned(engine, sent, unread) == 0, statement


def test_each_new_object_is_described_and_granted_to_the_reader_and_the_api(
    engine: Engine,
) -> None:
    views = ("futures_symbols_current", "market_rate_limits_current", "changes")
    functions = (
        "futures_symbols_as_of(text, timestamptz)",
        "futures_symbol_as_of(text, text, timestamptz)",
        "rate_limits_as_of(text, timestamptz)",
        "checked_market(text, text[])",
    )
    with engine.connect() as conn:
        for role in ("exmeta_reader", "exmeta_api"):
            for view in views:
                granted, described = conn.execute(
                    text(
                        "SELECT has_table_privilege(:role, :v, 'SELECT'),"
                        " obj_description(CAST(:v AS regclass), 'pg_class')"
                    ),
                    {"role": role, "v": view},
                ).one()
                assert granted, (role, view)
                assert described, view
            for function in functions:
                granted, described = conn.execute(
                    text(
                        "SELECT has_function_privilege(:role, :f, 'EXECUTE'),"
                        " obj_description(CAST(:f AS regprocedure), 'pg_proc')"
                    ),
                    {"role": role, "f": function},
                ).one()
                assert granted, (role, function)
                assert described, function
        [changes_comment] = conn.execute(
            text("SELECT obj_description('changes'::regclass, 'pg_class')")
        ).one()
    assert "market" in changes_comment
