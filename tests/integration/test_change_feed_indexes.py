"""The change feed finds openings and closings through the indexes of migration 0071."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from core import changes
from core.models import VERSIONED_TABLES
from tests.integration.test_changes import NOW, T0, record_script

# Every version table the feed reads: all but balances, which it leaves out on purpose.
FEED_TABLES = sorted(set(VERSIONED_TABLES) - {"balance_versions"})


def feed_plans(engine: Engine, symbol: str | None = None) -> dict[str, str]:
    """Each version table's plan (text) for the statement the feed sent it."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "valid_to >=" in statement:
            sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            changes.changes(conn, T0, NOW, streams=changes.STREAMS, symbol=symbol, limit=1000)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = {}
    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:  # type: ignore[attr-defined]
            # The test tables are tiny: a scan of them would win; ask whether an index serves.
            cur.execute("SET enable_seqscan = off")
            for statement, params in sent:
                table = next(t for t in FEED_TABLES if f"FROM {t} " in statement)
                cur.execute(f"EXPLAIN {statement}", params)
                plans[table] = "\n".join(row[0] for row in cur.fetchall())
    finally:
        dbapi.close()
    return plans


@pytest.mark.parametrize("table", FEED_TABLES)
def test_the_feed_reads_each_table_by_its_open_and_close_indexes(
    engine: Engine, table: str
) -> None:
    record_script(engine)
    with engine.begin() as conn:
        conn.execute(text(f"ANALYZE {table}"))
    plan = feed_plans(engine)[table]
    assert f"ix_{table}_valid_from" in plan
    assert f"ix_{table}_valid_to" in plan
    assert "Seq Scan" not in plan


def test_the_closing_index_leaves_current_versions_out(engine: Engine) -> None:
    with engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_symbol_versions_valid_to'")
        ).scalar_one()
    assert definition.endswith("WHERE (valid_to IS NOT NULL)")
