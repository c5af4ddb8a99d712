"""Added cost per Binance request of the budget shared through the database (issue 4).

Before each request a replica runs one statement on ``request_budget``: a read, or (when
it has a used weight to pass on) an upsert returning the merged row. Both are timed here
as the poller runs them (``SharedBudget.check``: a pooled connection with its pre-ping,
autocommit), next to P1's no-change poll processing (~4 ms). Medians and p99 of --runs.

    python bench/shared_budget.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_engine
from bench._procs import run
from poller.retry import SharedBudget

BUDGET = 1500.0


def timings(runs: int, shared: SharedBudget, report: bool) -> list[float]:
    out = []
    for i in range(runs):
        if report:
            shared.note(i % 1000, BUDGET)  # within the budget: reported with the next check
        started = time.perf_counter()
        assert shared.check(BUDGET) is not None
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    with bench_engine() as engine:
        shared = SharedBudget(engine, "bench")
        timings(100, shared, report=True)  # warm the pool and the plan cache
        for label, report in (("read only", False), ("read + report", True)):
            ms = sorted(timings(args.runs, shared, report))
            p99 = ms[int(len(ms) * 0.99) - 1]
            print(f"{label:14} median {statistics.median(ms):.3f} ms  p99 {p99:.3f} ms")


if __name__ == "__main__":
    run(main)
