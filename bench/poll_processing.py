"""Processing cost of an exchangeInfo poll, next to ``json.loads`` of the same body.

Processing = blank serverTime, hash, compare with the current versions, parse and write
what changed, record the observation: everything but the network. Each figure is the
median of --runs runs; json.loads is timed in the same process on the same bytes, the parse
alone (the parsed tree is freed after the clock stops). P2's floor times its two database
statements alone (see database_floor).

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
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._cpu import backends, measured
from bench._db import bench_engine, fixture
from bench._procs import run
from core.bodies import blank_server_time
from core.ingest import CurrentState, Fetched, StreamWriter, _plan, _Versions
from core.models import VERSIONED_TABLES
from poller.parse import parse_exchange_info

LARGEST = "2023-09-08_2292.json"


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def parse_alone(body: bytes) -> tuple[float, float]:
    """``json.loads`` of ``body``, wall and CPU time: the parse alone, its tree freed after
    the clocks stop."""
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    tree = json.loads(body)
    took = time.perf_counter() - started, time.process_time() - cpu
    del tree
    return took


def fetched(raw: bytes, when: datetime, stream: str = "exchange_info") -> Fetched:
    body, _ = blank_server_time(raw)
    return Fetched(stream, "bench", when, 0, 200, 20, body, when)


def empty(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                f"TRUNCATE {', '.join(VERSIONED_TABLES)}, observations, observation_runs,"
                " raw_bodies, stream_heads"
            )
        )


def bare_copy(engine: Engine, raw: bytes) -> float:
    """COPY of the typed rows a first ingest writes, built beforehand: the P3 baseline."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    body, _ = blank_server_time(raw)
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    for kind in parse_exchange_info(body):
        if not kind.every_entity():
            continue
        rows = []
        for key, entity in kind.every_entity().items():
            typed = kind.to_row(entity.source)
            values = [
                json.dumps(v) if isinstance(v, list) and v and isinstance(v[0], list) else v
                for v in typed.values()
            ]
            rows.append([*key, at, entity.content_hash, 1, entity.canonical.decode(), *values])
        key_columns = list(VERSIONED_TABLES[kind.table].__key__)
        tables[kind.table] = (
            [*key_columns, "valid_from", "content_hash", "opened_by", "raw", *typed],
            rows,
        )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO observations (id, stream, replica_id, observed_at, requested_at, duration_ms, outcome)"
                " OVERRIDING SYSTEM VALUE VALUES (1, 'exchange_info', 'bench', :t, :t, 0, 'changed')"
            ),
            {"t": at},
        )
    gc.collect()
    started = time.perf_counter()
    with engine.begin() as conn:
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            for table, (columns, rows) in tables.items():
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    return time.perf_counter() - started


def p3(engine: Engine, runs: int) -> None:
    raw = fixture(LARGEST).read_bytes()
    ingest, baseline = [], []
    for i in range(runs):
        empty(engine)
        first = fetched(raw, datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i))
        writer = StreamWriter(engine, "exchange_info")
        ingest.append(timed(partial(writer.record, first, parse_exchange_info)))
        empty(engine)
        baseline.append(bare_copy(engine, raw))
    empty(engine)
    value, base = statistics.median(ingest) * 1000, statistics.median(baseline) * 1000
    ok = value <= 1000 and value <= 2 * base
    print(
        f"{'P3 first ingest, 2,292 symbols':<40} {value:8.1f} ms   bare COPY {base:6.1f} ms   ratio {value / base:5.2f}x"
        f"   target <= 1 s and <= 2x: {'meets' if ok else 'misses'}"
    )


def database_floor(engine: Engine, before: bytes, after: bytes, runs: int) -> float:
    """The database statements of P2 alone: the UPDATE that closes the changed versions, the
    COPY of their successors and their count in version_totals, exactly as the writer sends
    them, with everything parsed, hashed and built beforehand. Each run is rolled back (so the commit's WAL flush
    is left out too): a floor below what any processing of this change can cost while
    versions are closed in place."""
    old = {
        kind.table: {key: e.content_hash for key, e in kind.every_entity().items()}
        for kind in parse_exchange_info(blank_server_time(before)[0])
    }
    plan = _plan(parse_exchange_info(blank_server_time(after)[0]), CurrentState(None, old))
    close, insert = plan.close, plan.insert
    with engine.connect() as conn:
        obs_id, at = conn.execute(text("SELECT max(id), max(observed_at) FROM observations")).one()
    at += timedelta(seconds=1)
    times = []
    for _ in range(runs):
        versions = _Versions()
        versions.add(plan, at, obs_id)
        with engine.connect() as conn:
            transaction = conn.begin()
            gc.collect()
            started = time.perf_counter()
            versions.write(conn)
            times.append(time.perf_counter() - started)
            transaction.rollback()
    closed = sum(map(len, close.values()))
    print(
        f"P2's database statements alone: {closed:,} versions closed, {sum(map(len, insert.values())):,} opened"
    )
    return statistics.median(times)


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
        p3(engine, max(3, args.runs // 3))
        writer = StreamWriter(engine, "exchange_info")
        writer.record(fetched(day1, tick()), parse_exchange_info)

        unchanged, loads1, changed, loads2 = [], [], [], []
        changed_cpu, loads2_cpu = [], []
        pids = backends(engine)
        for _ in range(args.runs):
            unchanged.append(
                timed(lambda: writer.record(fetched(day1, tick()), parse_exchange_info))
            )
            loads1.append(parse_alone(day1)[0])
        for n in range(args.runs):
            # A body never stored before, as every real change's is: its raw-body write
            # (compression included) is paid on every run, not on the first alone. Trailing
            # blanks change the body's hash and nothing it holds.
            body = day2 + b" " * (n + 1)
            wall, cpu = measured(
                lambda body=body: writer.record(fetched(body, tick()), parse_exchange_info), pids
            )
            changed.append(wall)
            changed_cpu.append(cpu)
            loads2.append(parse_alone(day2)[0])
            loads2_cpu.append(parse_alone(day2)[1])
            writer.record(fetched(day1, tick()), parse_exchange_info)  # back to day 1, untimed
        floor = database_floor(engine, day1, day2, args.runs)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"snapshot 2022-11-28: {len(day1):,} bytes, 2124 symbols; {args.runs} runs, medians")
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
    print(
        f"{'P2 CPU, bench process + database backend':<40} {ms(changed_cpu):8.1f} ms"
        f"   json.loads CPU {ms(loads2_cpu):6.1f} ms   ratio {ms(changed_cpu) / ms(loads2_cpu):5.2f}x"
    )
    base = ms(loads2)
    print(
        f"{'P2 floor: its database statements':<40} {floor * 1000:8.1f} ms   json.loads {base:6.1f} ms"
        f"   ratio {floor * 1000 / base:5.2f}x   (the 3x target leaves {3 * base:.1f} ms for everything)"
    )


if __name__ == "__main__":
    run(main)
