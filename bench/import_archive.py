"""P12 (import): `exmeta import` of real-size snapshots with the fixtures' churn.

Two ways to synthesise the snapshots (`--churn`):

- `day` (the default): from the real 2022-11-28 body, each snapshot changes as many symbols
  as the real day 11-28 -> 11-29 changed (1,423), picked at random, by moving their
  MARKET_LOT_SIZE maxQty (the filter Binance moves most, bench P5); a serverTime an hour
  apart. A day's churn every snapshot: the heaviest reading of "the fixtures' churn".
- `fixtures`: the seven real snapshots' own history, 2022-01-02 to 2023-09-08, spread over
  the snapshots: each pair of neighbouring real snapshots gets snapshots in proportion to
  the time between them (at least one); every symbol that differs between the two is
  replaced by its later real object (listed, changed or delisted) at one of them, in a
  random order; the last of them is the later real snapshot itself, and the serverTimes
  are spaced evenly between the two. Every symbol object is a real one, and the history
  holds every change the seven show, no more.

The files are imported as the command does (read, date, sort, check against the history,
write through the stream's writer), into a new database each run. The baseline is
`json.loads` of the same bodies, measured in the same run, the parse alone (each tree is
freed after the clock stops). Target: >= 20 snapshots/s and <= 3x `json.loads`.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import backends, measured_apart
from bench._db import TEST_FIXTURES, bench_engine, fixture
from bench.poll_processing import parse_alone
from core.ingest import Recorded
from poller.archive import plan_import, read_documents, write_documents
from poller.parse import parse_exchange_info

SOURCE = "https://api.binance.com:443"


def churn(day1: dict[str, Any], day2: dict[str, Any]) -> int:
    """Symbols whose object differs between two real days."""
    before = {s["symbol"]: s for s in day1["symbols"]}
    return sum(before.get(s["symbol"]) != s for s in day2["symbols"])


def synthesise(base: dict[str, Any], count: int, changed: int, into: Path) -> list[Path]:
    rng = random.Random(12)
    start_ms = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    paths = []
    for i in range(count):
        for sym in rng.sample(base["symbols"], changed):
            for f in sym["filters"]:
                if f["filterType"] == "MARKET_LOT_SIZE":
                    f["maxQty"] = f"{rng.randint(1, 10**6)}.00000000"
        base["serverTime"] = start_ms + i * 3_600_000
        paths.append(_written(base, into / f"{i:04d}.json"))
    return paths


def real_snapshots() -> list[Path]:
    """The seven real spot snapshots, oldest first: the two days, and the five the
    tests keep gzipped (tests/fixtures/archive)."""
    days = [fixture("2022-11-28_2124.json"), fixture("2022-11-29_2124.json")]
    return sorted([*days, *(TEST_FIXTURES / "archive").glob("spot_*.json.gz")], key=_day)


def _day(path: Path) -> str:
    return path.name.removeprefix("spot_")[:10]


def _load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    doc: dict[str, Any] = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    return doc


def spread(count: int, into: Path) -> tuple[list[Path], int]:
    """``count`` snapshots walking the real snapshots' history (see ``--churn fixtures``),
    and how many symbol changes they hold."""
    real = real_snapshots()
    times = [_load(p)["serverTime"] for p in real]
    shares = _shares(count - 1, [b - a for a, b in itertools.pairwise(times)])
    rng = random.Random(12)
    older = _load(real[0])
    paths = [_written(older, into / "0000.json")]
    changes = 0
    for path, share in zip(real[1:], shares, strict=True):
        newer = _load(path)
        now = {s["symbol"]: s for s in older["symbols"]}
        then = {s["symbol"]: s for s in newer["symbols"]}
        moved = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
        rng.shuffle(moved)
        changes += len(moved)
        for j in range(share):
            name = into / f"{len(paths):04d}.json"
            if j == share - 1:
                paths.append(_written(newer, name))
                break
            for symbol in moved[j * len(moved) // share : (j + 1) * len(moved) // share]:
                if symbol in then:
                    now[symbol] = then[symbol]
                else:
                    del now[symbol]
            step = (newer["serverTime"] - older["serverTime"]) * (j + 1) // share
            doc = {**older, "serverTime": older["serverTime"] + step, "symbols": [*now.values()]}
            paths.append(_written(doc, name))
        older = newer
    return paths, changes


def _shares(count: int, spans: list[int]) -> list[int]:
    """``count`` split over ``spans`` in proportion, at least one each (largest remainder)."""
    whole = sum(spans)
    exact = [max(1.0, count * span / whole) for span in spans]
    shares = [int(e) for e in exact]
    by_remainder = sorted(range(len(spans)), key=lambda i: shares[i] - exact[i])
    for i in by_remainder[: count - sum(shares)]:
        shares[i] += 1
    return shares


def _written(doc: dict[str, Any], path: Path) -> Path:
    path.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
    return path


def measured(into: Path) -> tuple[float, float, float, list[str]]:
    """One import of the files in ``into`` into a new database: wall, own CPU, the
    backend's CPU and the outcomes."""
    with bench_engine() as engine:
        pids = backends(engine)
        outcomes: list[str] = []

        def imported() -> None:
            documents = read_documents([into], None, stream="exchange_info")
            with engine.connect() as conn:
                plan = plan_import(conn, "exchange_info", SOURCE, documents)
            written = write_documents(engine, "exchange_info", parse_exchange_info, SOURCE, plan)
            outcomes.extend(r.outcome for r in written if isinstance(r, Recorded))

        took, own, backend = measured_apart(imported, pids)
        if backends(engine) != pids:
            raise SystemExit("the pool opened another connection: its backend's CPU is uncounted")
    return took, own, backend, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--churn", choices=["day", "fixtures"], default="day")
    parser.add_argument("--runs", type=int, default=3, help="imports, each into a new database")
    args = parser.parse_args()
    if args.snapshots < 20 or args.runs < 1:
        parser.error("--snapshots must be 20 or more, and --runs 1 or more")
    with tempfile.TemporaryDirectory(prefix="exmeta-import-") as tmp:
        if args.churn == "day":
            day1 = json.loads(fixture("2022-11-28_2124.json").read_bytes())
            changed = churn(day1, json.loads(fixture("2022-11-29_2124.json").read_bytes()))
            paths = synthesise(day1, args.snapshots, changed, Path(tmp))
            del day1
            what = f"{changed} symbols changed each (the real 11-28 -> 11-29 churn)"
        else:
            paths, changes = spread(args.snapshots, Path(tmp))
            what = (
                f"{changes} symbol changes in all, {changes / (len(paths) - 1):.0f} a snapshot"
                " on average (the seven real snapshots' history, 2022-01-02 to 2023-09-08)"
            )
        runs = []
        for _ in range(args.runs):  # the import, then its baseline, in turn
            took, own, backend, outcomes = measured(Path(tmp))
            parsed = [parse_alone(path.read_bytes()) for path in paths]
            runs.append((took, own, backend, sum(w for w, _ in parsed), sum(c for _, c in parsed)))
        size = sum(path.stat().st_size for path in paths) / len(paths)
    took, own, backend, loads, loads_cpu = (statistics.median(r[i] for r in runs) for i in range(5))
    rate = len(paths) / took
    print(f"{len(paths)} snapshots of {size / 1e6:.1f} MB on average, {what}")
    print(f"outcomes: {sorted(set(outcomes))}; medians of {len(runs)} runs follow")
    print(f"import: {took:.1f} s, {rate:.1f} snapshots/s (target >= 20)")
    print(f"json.loads of the same bodies: {loads:.2f} s; ratio {took / loads:.1f}x (target <= 3x)")
    cpu = own + backend
    print(
        f"CPU, bench process + database backends: import {cpu:.1f} s, json.loads"
        f" {loads_cpu:.2f} s; ratio {cpu / loads_cpu:.1f}x"
    )
    each = backend / len(paths)
    print(
        f"of which the database backend: {backend:.1f} s, {each * 1000:.0f} ms a snapshot"
        f" ({backend / loads_cpu:.1f}x json.loads' CPU): one connection's statements run one"
        f" after another, so this alone caps the import at {1 / each:.1f} snapshots/s"
    )
    print("runs (import s, json.loads s): " + ", ".join(f"{r[0]:.1f}/{r[3]:.2f}" for r in runs))
    verdict = "meets" if rate >= 20 and took <= 3 * loads else "misses"
    print(f"verdict: {verdict}")


if __name__ == "__main__":
    main()
