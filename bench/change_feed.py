"""The change feed on a large synthetic history, with and without the open/close indexes.

The feed (core.changes.changes, behind GET /v1/changes and `exmeta changes`) asks each
version table for the versions that open or close in a window. Migration 0071 indexes
``valid_from`` and ``valid_to``; this loads the synthetic history
(bench/synthetic_history.py), times first pages of the feed over three windows, then drops
those indexes, and times them again. It prints the medians, and the plans and database
times (EXPLAIN ANALYZE) of the feed's own statements on the largest table, captured as
the feed runs them.

    python bench/change_feed.py [--days 700] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, event, text

from bench._db import bench_engine
from bench._procs import run
from bench.synthetic_history import START, load
from core import changes

PAGE = 1000
LARGEST = "symbol_filter_versions"


def windows(days: int) -> dict[str, tuple[datetime, datetime]]:
    last = START + timedelta(days=days - 1)  # the day's changes are at its 00:00
    return {
        "the hour of a day's changes": (last, last + timedelta(hours=1)),
        "a quiet hour": (last + timedelta(hours=5), last + timedelta(hours=6)),
        "a week": (last - timedelta(days=6), last + timedelta(days=1)),
    }


def page_ms(engine: Engine, start: datetime, end: datetime, runs: int) -> tuple[float, int]:
    times = []
    found = 0
    for _ in range(runs):
        with engine.connect() as conn:
            began = time.perf_counter()
            found = len(changes.changes(conn, start, end, limit=PAGE).changes)
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), found


def feed_statements(engine: Engine, start: datetime, end: datetime) -> list[tuple[str, Any]]:
    """The statements the feed sends for this window that read the largest table."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if f"FROM {LARGEST}" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            changes.changes(conn, start, end, limit=PAGE)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def plan(engine: Engine, start: datetime, end: datetime) -> tuple[float, list[str]]:
    """Database time (ms) and the scan nodes of the feed's query on the largest table."""
    [(statement, params)] = feed_statements(engine, start, end)
    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
            [[doc]] = cur.fetchall()
    finally:
        dbapi.close()
    scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Scan" in node["Node Type"]:
            scans.append(f"{node['Node Type']} {node.get('Index Name', node.get('Relation Name'))}")
        for child in node.get("Plans", []):
            walk(child)

    walk(doc[0]["Plan"])
    return float(doc[0]["Execution Time"]), scans


def measure(engine: Engine, days: int, runs: int) -> dict[str, dict[str, Any]]:
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    found = {}
    for name, (start, end) in windows(days).items():
        median, count = page_ms(engine, start, end, runs)
        db_ms, scans = plan(engine, start, end)
        found[name] = {"page_ms": median, "changes": count, "db_ms": db_ms, "scans": scans}
    return found


def drop_indexes(engine: Engine, column: str) -> None:
    with engine.begin() as conn:
        names = conn.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
                " AND indexname ~ :pattern"
            ),
            {"pattern": f"^ix_.*_{column}$"},
        ).scalars()
        for name in list(names):
            conn.execute(text(f"DROP INDEX {name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=700)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with bench_engine() as engine:
        loaded = load(engine, args.days)
        print(
            f"loaded {loaded['symbol_versions']:,} symbol and"
            f" {loaded['symbol_filter_versions']:,} filter versions over {args.days} days"
            f" in {loaded['build_seconds'] + loaded['load_seconds']:.0f} s"
        )
        results = {"both indexes": measure(engine, args.days, args.runs)}
        drop_indexes(engine, "valid_from")
        results["valid_to only"] = measure(engine, args.days, args.runs)
        drop_indexes(engine, "valid_to")
        results["neither (before 0071)"] = measure(engine, args.days, args.runs)
    print(f"median of {args.runs} first pages (limit {PAGE}), Python included; then the")
    print(f"database time (EXPLAIN ANALYZE) of the feed's {LARGEST} query and its scans:")
    for window in windows(args.days):
        print(f"  {window}:")
        for config, found in results.items():
            w = found[window]
            print(
                f"    {config:<22} page {w['page_ms']:7.1f} ms ({w['changes']} changes),"
                f" query {w['db_ms']:7.2f} ms: {', '.join(w['scans'])}"
            )


if __name__ == "__main__":
    run(main)
