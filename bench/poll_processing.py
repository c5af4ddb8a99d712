"""Processing cost of an exchangeInfo poll, next to ``json.loads`` of the same body.

Processing = blank serverTime, hash, compare with the current versions, parse and write
what changed, record the observation: everything but the network. Each figure is the
median of --runs runs; json.loads is timed in the same process on the same bytes.

    python bench/poll_processing.py [--runs 15]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_engine, fixture
from core.bodies import blank_server_time
from core.ingest import Fetched, StreamWriter
from poller.parse import parse_exchange_info


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def fetched(raw: bytes, when: datetime) -> Fetched:
    body, _ = blank_server_time(raw)
    return Fetched("exchange_info", "bench", when, 0, 200, 20, body, when)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    day1 = fixture("2022-11-28_2124.json").read_bytes()
    day2 = fixture("2022-11-29_2124.json").read_bytes()
    clock = datetime(2024, 1, 1, tzinfo=UTC)

    def tick() -> datetime:
        nonlocal clock
        clock += timedelta(seconds=1)
        return clock

    with bench_engine() as engine:
        writer = StreamWriter(engine, "exchange_info")
        first = timed(lambda: writer.record(fetched(day1, tick()), parse_exchange_info))

        unchanged, loads1, changed, loads2 = [], [], [], []
        for _ in range(args.runs):
            unchanged.append(
                timed(lambda: writer.record(fetched(day1, tick()), parse_exchange_info))
            )
            loads1.append(timed(lambda: json.loads(day1)))
        for _ in range(args.runs):
            changed.append(timed(lambda: writer.record(fetched(day2, tick()), parse_exchange_info)))
            loads2.append(timed(lambda: json.loads(day2)))
            writer.record(fetched(day1, tick()), parse_exchange_info)  # back to day 1, untimed

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"snapshot 2022-11-28: {len(day1):,} bytes, 2124 symbols; {args.runs} runs, medians")
    print(f"first ingest (everything new)           {first * 1000:8.1f} ms (one run)")
    rows = [
        ("P1 no-change poll", ms(unchanged), ms(loads1), 0.5),
        ("P2 day change 11-28 -> 11-29", ms(changed), ms(loads2), 3.0),
    ]
    for name, value, base, target in rows:
        ratio = value / base
        verdict = "meets" if ratio <= target else "misses"
        print(
            f"{name:<40} {value:8.1f} ms   json.loads {base:6.1f} ms   ratio {ratio:5.2f}x"
            f"   target <= {target}x: {verdict}"
        )


if __name__ == "__main__":
    main()
