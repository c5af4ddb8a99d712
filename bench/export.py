"""`exmeta export` of a year of synthetic history (issue 15, P12: ≤ 5 s).

Loads ``--days`` of bench/synthetic_history.py's history (the real 2,292-symbol snapshot
with the real daily change rates), then times, in the same run and on the same database:

- the baseline: the version tables' rows read out as they are (``COPY ... TO STDOUT``,
  text), what any export has to read at least;
- each part of the export as core.export reads it into Arrow tables (the rules
  stretches with the filter versions, which one read serves; the change feed), and the
  whole command, Parquet and CSV, files included.

    python bench/export.py [--days 365] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine

from bench._db import bench_engine
from bench._procs import run
from bench.synthetic_history import START, load
from core import export
from core.db import without_time_limits
from exmeta.cli import main as exmeta

WINDOW = export.Window(None, None, None)


def seconds(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median wall time of ``runs`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def copied_bytes(engine: Engine) -> int:
    """The baseline: every version row of the spot symbol tables, out as COPY text."""
    total = 0
    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SET statement_timeout = 0")
            for table in ("symbol_versions", "symbol_filter_versions"):
                with cur.copy(f"COPY {table} TO STDOUT") as copy:
                    total += sum(len(block) for block in copy)
    finally:
        dbapi.close()
    return total


def part(engine: Engine, read: Callable[[Any], Any]) -> Callable[[], int]:
    def work() -> int:
        with engine.connect() as conn, without_time_limits(conn):
            return sum(table.num_rows for table in read(conn))

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    export.use_system_allocator()  # the parts on the allocator `exmeta export` uses
    with bench_engine() as engine:
        loaded = load(engine, args.days)
        print(
            f"history: {args.days} days from {START:%Y-%m-%d}, {loaded['symbol_versions']:,}"
            f" symbol versions, {loaded['symbol_filter_versions']:,} filter versions"
        )
        os.environ["EXMETA_DATABASE__URL"] = engine.url.render_as_string(hide_password=False)
        baseline, size = seconds(lambda: copied_bytes(engine), args.runs)
        print(f"baseline COPY of both version tables: {baseline:.2f} s ({size / 1e6:.0f} MB text)")
        parts = {
            "rules stretches and filter versions": lambda c: export.history_tables(
                c, "spot", WINDOW
            ),
            "change feed": lambda c: [export.change_table(c, "spot", START, loaded["end"], None)],
        }
        for name, read in parts.items():
            took, rows = seconds(part(engine, read), args.runs)
            print(f"{name}: {rows:,} rows read in {took:.2f} s ({took / baseline:.1f}x baseline)")
        for fmt in ("parquet", "csv"):
            with tempfile.TemporaryDirectory(prefix="exmeta-export-") as out:
                took, status = seconds(
                    lambda out=out, fmt=fmt: exmeta(["export", "--format", fmt, "--out", out]),
                    args.runs,
                )
                if status != 0:
                    raise SystemExit(f"exmeta export --format {fmt} failed: exit {status}")
                size = sum(p.stat().st_size for p in Path(out).iterdir())
            print(
                f"exmeta export --format {fmt}: {took:.2f} s ({took / baseline:.1f}x baseline),"
                f" {size / 1e6:.0f} MB"
            )


if __name__ == "__main__":
    run(main)
