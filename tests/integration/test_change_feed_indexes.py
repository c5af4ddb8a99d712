"""The change feed finds openings and closings through the indexes of migration 0071."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from core import changes
from core.streams import CATALOGUE, feed_streams
from tests.scripts import NOW, T0, record_script

# Every version table the feed reads: all but balances, which it leaves out on purpose,
# and the documents' shape, a table of a few hundred rows per stream that grows only when
# Binance changes its API (whose 49 rows, all opened by the script's first poll, the
# planner rightly reads by the primary key).
# The tables the streams declare to the feed (the shape is read by primary key: small).
FEED_TABLES = sorted({f.table for s in CATALOGUE for f in s.feed})
MARKET_OF = {f.table: s.market for s in CATALOGUE for f in s.feed}


def feed_plans(engine: Engine, market: str = "spot", symbol: str | None = None) -> list[str]:
    """The plans (text) of the statements the feed sent to read the market's version tables."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "_versions" in statement:
            sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            streams = feed_streams(market, private=True)
            changes.changes(conn, T0, NOW, streams=streams, symbol=symbol, limit=1000)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:  # type: ignore[attr-defined]
            # The test tables are tiny: a scan of them would win; ask whether an index serves.
            cur.execute("SET enable_seqscan = off")
            for statement, params in sent:
                cur.execute(f"EXPLAIN {statement}", params)
                plans.append("\n".join(row[0] for row in cur.fetchall()))
    finally:
        dbapi.close()
    return plans


def analysed_plans(engine: Engine, market: str = "spot") -> list[str]:
    record_script(engine)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return feed_plans(engine, market)


@pytest.mark.parametrize("table", FEED_TABLES)
def test_the_feed_finds_a_pages_events_by_the_open_and_close_indexes(
    engine: Engine, table: str
) -> None:
    events, *_ = analysed_plans(engine, MARKET_OF[table])
    assert f"ix_{table}_valid_from" in events
    assert f"ix_{table}_valid_to" in events
    assert "Seq Scan" not in events


@pytest.mark.parametrize(
    "table", ["symbol_versions", "symbol_filter_versions", "rate_limit_versions"]
)
def test_the_feed_reads_a_pages_versions_by_the_same_indexes(engine: Engine, table: str) -> None:
    _, *versions = analysed_plans(engine)  # the script changes these tables only
    [read] = [p for p in versions if f" on {table} " in p]
    assert f"ix_{table}_valid_from" in read
    assert f"ix_{table}_valid_to" in read
    assert "Seq Scan" not in read


def test_the_closing_index_leaves_current_versions_out(engine: Engine) -> None:
    with engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_symbol_versions_valid_to'")
        ).scalar_one()
    assert definition.endswith("WHERE (valid_to IS NOT NULL)")


@pytest.mark.parametrize(
    "table",
    ["symbol_versions", "symbol_filter_versions", "commission_versions", "delisting_versions"],
)
def test_per_symbol_tables_are_indexed_in_the_feeds_byte_order(engine: Engine, table: str) -> None:
    with engine.connect() as conn:
        definitions = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname IN (:a, :b)"),
            {"a": f"ix_{table}_valid_from", "b": f"ix_{table}_valid_to"},
        ).scalars()
        assert [d.split("USING btree ")[1].split(")")[0] for d in sorted(definitions)] == [
            '(valid_from, symbol COLLATE "C"',
            '(valid_to, symbol COLLATE "C"',
        ]
