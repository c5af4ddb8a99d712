"""The change feed's page cost, first page and deep into a long window (issue 18).

The feed (core.changes.changes, behind GET /v1/changes and `exmeta changes`) pages by
keyset: a page reads the next entities in the feed's order with a LIMIT, then their
versions. This loads the synthetic history (bench/synthetic_history.py: ~1,430 changes
at each day's first observation), opens one window over all of it, and times a page of
1,000 changes at the start and at cursors placed at the start of later days (the
cursor a client holds after paging that far; built directly, as paging there page by
page would take the old feed hours). It prints the median of the runs per depth and its
ratio to the first page: a page whose cost follows its size stays near 1.

    python bench/change_feed.py [--days 120] [--runs 7] [--whole]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine
from bench._procs import run
from bench.synthetic_history import START, load
from core import changes

PAGE = 1000


def page_ms(engine: Engine, days: int, depth_day: int, runs: int) -> tuple[float, int]:
    """Median time of one page from the start of day ``depth_day`` (0: the first page)."""
    start, end = START + timedelta(days=1), START + timedelta(days=days)
    cursor = None
    if depth_day > 0:
        # Before every change of that day: they are all later than (its instant, "symbol", "").
        cursor = changes.encode_cursor((START + timedelta(days=depth_day), "symbol", "", ""))
    times = []
    found = 0
    for _ in range(runs):
        with engine.connect() as conn:
            began = time.perf_counter()
            found = len(changes.changes(conn, start, end, limit=PAGE, cursor=cursor).changes)
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), found


def whole_window(engine: Engine, days: int) -> tuple[int, int, float]:
    """Pages, changes and seconds to read the whole window page by page, as a client does."""
    start, end = START + timedelta(days=1), START + timedelta(days=days)
    cursor: str | None = None
    pages = found = 0
    began = time.perf_counter()
    while True:
        with engine.connect() as conn:
            page = changes.changes(conn, start, end, limit=PAGE, cursor=cursor)
        pages += 1
        found += len(page.changes)
        if page.next_cursor is None:
            return pages, found, time.perf_counter() - began
        cursor = page.next_cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--whole", action="store_true", help="also page through the whole window once"
    )
    args = parser.parse_args()
    depths = [0, *(d for d in (args.days // 4, args.days // 2, args.days - 2) if d > 1)]
    with bench_engine() as engine:
        loaded = load(engine, args.days)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(
            f"loaded {loaded['symbol_versions']:,} symbol and"
            f" {loaded['symbol_filter_versions']:,} filter versions over {args.days} days"
        )
        results = {d: page_ms(engine, args.days, d, args.runs) for d in depths}
        whole = whole_window(engine, args.days) if args.whole else None
    first = results[0][0]
    print(f"one window over days 1..{args.days}; median of {args.runs} pages (limit {PAGE}):")
    for depth, (ms, found) in results.items():
        where = "first page" if depth == 0 else f"from day {depth}"
        print(f"  {where:<14} {ms:8.1f} ms ({found} changes), {ms / first:5.2f}x the first page")
    if whole is not None:
        pages, found, seconds = whole
        print(f"  the whole window: {pages} pages, {found:,} changes in {seconds:.1f} s")


if __name__ == "__main__":
    run(main)
