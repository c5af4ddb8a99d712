"""P12 (import): `exmeta import` of real-size snapshots with the fixtures' churn.

The snapshots are synthesised from the real 2022-11-28 body: each one changes as many
symbols as the real day 11-28 -> 11-29 changed (the fixtures' churn), picked at random,
by moving their MARKET_LOT_SIZE maxQty (the filter Binance moves most, bench P5). They are
written as files with a serverTime an hour apart, then imported as the command does
(read, date, sort, check against the history, write through the stream's writer). The
baseline is `json.loads` of the same bodies, measured in the same run, the parse alone (each
tree is freed after the clock stops). Target: >= 20 snapshots/s and <= 3x `json.loads`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import backends, measured_apart
from bench._db import bench_engine, fixture
from bench.poll_processing import parse_alone
from core.ingest import Recorded
from poller.archive import plan_import, read_documents, write_documents
from poller.parse import parse_exchange_info

SOURCE = "https://api.binance.com:443"


def churn(day1: dict[str, Any], day2: dict[str, Any]) -> int:
    """Symbols whose object differs between two real days."""
    before = {s["symbol"]: s for s in day1["symbols"]}
    return sum(before.get(s["symbol"]) != s for s in day2["symbols"])


def synthesise(base: dict[str, Any], count: int, changed: int, into: Path) -> list[bytes]:
    rng = random.Random(12)
    start_ms = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    bodies = []
    for i in range(count):
        for sym in rng.sample(base["symbols"], changed):
            for f in sym["filters"]:
                if f["filterType"] == "MARKET_LOT_SIZE":
                    f["maxQty"] = f"{rng.randint(1, 10**6)}.00000000"
        base["serverTime"] = start_ms + i * 3_600_000
        body = json.dumps(base, separators=(",", ":")).encode()
        (into / f"{i:04d}.json").write_bytes(body)
        bodies.append(body)
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=200)
    args = parser.parse_args()
    day1 = json.loads(fixture("2022-11-28_2124.json").read_bytes())
    changed = churn(day1, json.loads(fixture("2022-11-29_2124.json").read_bytes()))
    with tempfile.TemporaryDirectory(prefix="exmeta-import-") as tmp, bench_engine() as engine:
        bodies = synthesise(day1, args.snapshots, changed, Path(tmp))
        pids = backends(engine)
        outcomes: list[str] = []

        def imported() -> None:
            documents = read_documents([Path(tmp)], None, stream="exchange_info")
            with engine.connect() as conn:
                plan = plan_import(conn, "exchange_info", SOURCE, documents)
            written = write_documents(engine, "exchange_info", parse_exchange_info, SOURCE, plan)
            outcomes.extend(r.outcome for r in written if isinstance(r, Recorded))

        took, own, backend = measured_apart(imported, pids)
        if backends(engine) != pids:
            raise SystemExit("the pool opened another connection: its backend's CPU is uncounted")
        parsed = [parse_alone(body) for body in bodies]
        loads, loads_cpu = sum(w for w, _ in parsed), sum(c for _, c in parsed)
    size = sum(map(len, bodies)) / len(bodies)
    rate = len(bodies) / took
    print(
        f"{len(bodies)} snapshots of {size / 1e6:.1f} MB, {changed} symbols changed each"
        f" (the real 11-28 -> 11-29 churn); outcomes: {sorted(set(outcomes))}"
    )
    print(f"import: {took:.1f} s, {rate:.1f} snapshots/s (target >= 20)")
    print(f"json.loads of the same bodies: {loads:.2f} s; ratio {took / loads:.1f}x (target <= 3x)")
    cpu = own + backend
    print(
        f"CPU, bench process + database backends: import {cpu:.1f} s, json.loads"
        f" {loads_cpu:.2f} s; ratio {cpu / loads_cpu:.1f}x"
    )
    each = backend / len(bodies)
    print(
        f"of which the database backend: {backend:.1f} s, {each * 1000:.0f} ms a snapshot"
        f" ({backend / loads_cpu:.1f}x json.loads' CPU): one connection's statements run one"
        f" after another, so this alone caps the import at {1 / each:.1f} snapshots/s"
    )
    verdict = "meets" if rate >= 20 and took <= 3 * loads else "misses"
    print(f"verdict: {verdict}")


if __name__ == "__main__":
    main()
