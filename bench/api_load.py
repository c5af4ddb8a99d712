"""P6a and P6b: one symbol as of an instant, through `exmeta serve`, at 20 and 100 connections.

A throwaway database gets an hour of real history (the 2023-09-08 snapshot, 2,292
symbols, polled every 10 s, with BTCUSDT and ETHUSDT changing five times); `exmeta serve`
runs on it with the production settings (gunicorn gthread, [api] workers = 2, threads = 8
by default); wrk then holds N keep-alive connections, for each N asked (20 and 100 by
default), against three targets: `/healthz` (the baseline: no database),
`/v1/symbols/BTCUSDT?as_of=<inside the history>` asked again and again (a version that is
no longer current: answered from the worker's memory, api.answers, after the first time),
and the same question about a new instant inside the history with every request (never
in memory: the database path, what an investigator actually sends). The order of the
targets alternates from round to round.

Every figure is the median of all rounds, never the fastest: each run is printed with
the load average of the machine when it started and the share of the server's CPU its
busiest worker took (0.5 with two workers sharing the work evenly; 1.0 when every
connection piled on one worker, which the server's ``reuse_port`` listening sockets
prevent: see api.server).

Needs wrk (`apt-get install wrk`). Why not a Python load generator: on this 2-core machine
the client shares the CPU with the server, and a Python client spends more CPU per
request than the server's own Flask handler, most of all for /healthz, which would cap
the baseline and flatter the ratio. wrk runs one epoll thread in C; its CPU share is
measured and printed.

    python bench/api_load.py [--seconds 10] [--rounds 3] [--connections 20,100] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_engine, fixture
from bench._procs import (
    BenchError,
    Children,
    exmeta_env,
    free_port,
    request,
    run,
    sigterm_as_interrupt,
    wait_http,
)
from core.bodies import blank_server_time
from core.ingest import Fetched, StreamWriter
from core.timeparse import format_instant
from poller.parse import parse_exchange_info

SNAPSHOT = "2023-09-08_2292.json"
SYMBOL = "BTCUSDT"
HISTORY_START = datetime(2023, 9, 8, tzinfo=UTC)
POLL_EVERY = timedelta(seconds=10)
POLLS = 360  # one hour
AS_OF = HISTORY_START + timedelta(minutes=25)  # BTCUSDT in BREAK, tick size changed: not current
P99_TARGET_MS = 20.0  # P6a
NEW_RATIO_TARGET = 0.50  # P6a: a new instant each request, 20 connections
REPEATED_RATIO_TARGET = 0.60  # P6b: the same instant again, 100 connections

# wrk's own summary, as one JSON line: its default text rounds and mixes units.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f, '
    .. '"socket_errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""

# A new instant inside the history for every request: none can be answered from memory
# (api.answers), so this is the cost of the database path under the same load.
WRK_EACH_NEW = """
request = function()
  return wrk.format("GET", "/v1/symbols/BTCUSDT?as_of=" .. ({start_ms} + math.random(0, 3599999)))
end
""" + WRK_REPORT.replace("{", "{{").replace("}", "}}")
AS_OF_TARGET = f"{SYMBOL} as_of"
NEW_INSTANTS = f"{SYMBOL} as_of, new instants"


def _with_changes(document: dict[str, Any], minute: int) -> dict[str, Any]:
    """The snapshot as it stood ``minute`` minutes into the history: a few real-looking edits."""
    changed = json.loads(json.dumps(document))
    by_name = {s["symbol"]: s for s in changed["symbols"]}
    btc, eth = by_name[SYMBOL], by_name["ETHUSDT"]
    if minute >= 10:
        _set_filter(btc, "PRICE_FILTER", tickSize="0.10000000")
    if 20 <= minute < 30:
        btc["status"] = "BREAK"
    if minute >= 40:
        _set_filter(btc, "LOT_SIZE", minQty="0.00010000")
    if minute >= 50:
        eth["status"] = "HALT"
    if minute >= 20:
        _set_filter(eth, "PRICE_FILTER", tickSize="0.10000000")
    return changed


def _set_filter(symbol: dict[str, Any], filter_type: str, **values: str) -> None:
    for f in symbol["filters"]:
        if f["filterType"] == filter_type:
            f.update(values)


def load_history(writer: StreamWriter, raw: bytes) -> int:
    """Record POLLS polls of the snapshot, each minute's edits applied; the changes seen."""
    document = json.loads(raw)
    bodies: dict[int, bytes] = {}
    changes = 0
    for poll in range(POLLS):
        at = HISTORY_START + poll * POLL_EVERY
        minute = (poll * POLL_EVERY) // timedelta(minutes=10) * 10
        if minute not in bodies:
            bodies[minute] = blank_server_time(
                json.dumps(_with_changes(document, minute)).encode()
            )[0]
        fetched = Fetched("exchange_info", "bench", at, 0, 200, 20, bodies[minute], at)
        changes += writer.record(fetched, parse_exchange_info).outcome == "changed"
    return changes


@dataclass(frozen=True)
class Run:
    target: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    client_cpu: float  # wrk's CPU seconds per wall second
    loadavg: str  # /proc/loadavg's 1, 5 and 15 minute averages as the run started
    busiest_worker: float  # the busiest worker's share of the workers' CPU time


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def worker_pids(master: int) -> list[int]:
    """gunicorn's workers: the children of `exmeta serve`, which runs gunicorn's master."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def cpu_ticks(pids: list[int]) -> list[int]:
    """Each process's user + system CPU time so far, in clock ticks."""
    ticks = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks.append(int(fields[11]) + int(fields[12]))  # utime, stime
    return ticks


def wrk(url: str, script: Path, connections: int, seconds: float, workers: list[int]) -> Run:
    load = loadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks_before = cpu_ticks(workers)
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    used = [b - a for a, b in zip(ticks_before, cpu_ticks(workers), strict=True)]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK ")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(f"wrk failed on {url}: {(result.stderr or result.stdout).strip()[-300:]}")
    report = json.loads(line[4:])
    if report["non_2xx"]:
        raise BenchError(f"{url} answered {report['non_2xx']} requests with non-2xx statuses")
    duration = report["duration_us"] / 1e6
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(
        target=url,
        requests_per_second=report["requests"] / duration,
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        max_ms=report["max_us"] / 1000,
        socket_errors=report["socket_errors"],
        client_cpu=cpu / duration,
        loadavg=load,
        busiest_worker=max(used) / max(1, sum(used)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every target (default 3)")
    parser.add_argument(
        "--connections",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[20, 100],
        help="concurrent connections, comma-separated (default 20,100)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (production: 2)")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads per worker (production default: 8)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise BenchError("needs wrk on PATH (Debian: apt-get install wrk)")
    raw = fixture(SNAPSHOT).read_bytes()

    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="exmeta-bench-api-") as tmp,
        bench_engine() as engine,
        Children(Path(tmp)) as children,
    ):
        print(f"loading history: {SNAPSHOT}, {POLLS} polls every {POLL_EVERY.seconds} s ...")
        changes = load_history(StreamWriter(engine, "exchange_info"), raw)
        port = free_port()
        env = exmeta_env(
            engine.url.render_as_string(hide_password=False),
            api__port=port,
            api__workers=args.workers,
            api__threads=args.threads,
            log__level="WARNING",
        )
        server = children.exmeta("serve", ["serve"], env)
        base = f"http://127.0.0.1:{port}"
        wait_http(children, f"{base}/healthz")
        workers = worker_pids(server.pid)
        if len(workers) != args.workers:
            raise BenchError(f"expected {args.workers} gunicorn workers, found {workers}")
        report_lua = Path(tmp) / "report.lua"
        report_lua.write_text(WRK_REPORT)
        each_new = Path(tmp) / "each_new.lua"
        each_new.write_text(WRK_EACH_NEW.format(start_ms=int(HISTORY_START.timestamp() * 1000)))
        targets = {
            "/healthz": (f"{base}/healthz", report_lua),
            AS_OF_TARGET: (f"{base}/v1/symbols/{SYMBOL}?as_of={format_instant(AS_OF)}", report_lua),
            NEW_INSTANTS: (base, each_new),
        }
        status, answer = request("GET", targets[AS_OF_TARGET][0])
        if status != 200 or answer.get("status") != "BREAK":
            raise BenchError(f"unexpected as_of answer ({status}): {str(answer)[:200]}")

        for url, script in targets.values():  # warm-up: connections, pools; not counted
            wrk(url, script, max(args.connections), 2, workers)
        # Context for the p99: with a closed loop of N connections, latency is N / throughput
        # (Little's law), so the service time of one request alone is printed too.
        alone = {name: wrk(url, script, 1, 3, workers) for name, (url, script) in targets.items()}
        runs: dict[tuple[int, str], list[Run]] = {
            (n, name): [] for n in args.connections for name in targets
        }
        for round_no in range(args.rounds):
            order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
            for n in args.connections:
                for name in order:
                    result = wrk(*targets[name], n, args.seconds, workers)
                    runs[n, name].append(result)
                    print(
                        f"  round {round_no + 1} {n:>3} conns {name:<28}"
                        f" {result.requests_per_second:7.0f} req/s  p50 {result.p50_ms:5.1f} ms"
                        f"  p99 {result.p99_ms:6.1f} ms  busiest worker"
                        f" {result.busiest_worker:4.0%}  loadavg {result.loadavg}"
                        f"  socket errors {result.socket_errors}"
                    )
                children.check()

    report(args, runs, alone, changes)


def report(
    args: argparse.Namespace,
    runs: dict[tuple[int, str], list[Run]],
    alone: dict[str, Run],
    changes: int,
) -> None:
    def med(n: int, name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[n, name])

    def ratio(n: int, name: str) -> float:
        return med(n, name, "requests_per_second") / med(n, "/healthz", "requests_per_second")

    client_cpu = statistics.median(r.client_cpu for rs in runs.values() for r in rs)
    loads = [float(r.loadavg.split()[0]) for rs in runs.values() for r in rs]
    print()
    print(
        f"P6 API under load: {args.seconds:g} s per run, {args.rounds} rounds (order"
        " alternates); every figure is the median of all rounds"
    )
    print(
        f"server: exmeta serve, {args.workers} workers x {args.threads} threads (gthread), "
        f"throwaway PostgreSQL; history {SNAPSHOT}, {POLLS} polls, {changes} changes; "
        f"as_of={format_instant(AS_OF)} (a non-current version)"
    )
    print(
        f"note: server, PostgreSQL and the load generator share this machine's CPUs; wrk -t1 "
        f"used {client_cpu:.0%} of one core (median); 1-minute load average at the runs'"
        f" starts {min(loads)}-{max(loads)}"
    )
    print(
        f"{'conns':>5} {'':<28} {'req/s':>7} {'(min-max)':>13} {'x healthz':>9} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'busiest':>8}   alone: p50 ms  p99 ms"
    )
    for (n, name), rs in runs.items():
        rates = [r.requests_per_second for r in rs]
        print(
            f"{n:>5} {name:<28} {med(n, name, 'requests_per_second'):7.0f}"
            f" {f'({min(rates):.0f}-{max(rates):.0f})':>13} {ratio(n, name):9.2f}"
            f" {med(n, name, 'p50_ms'):7.1f} {med(n, name, 'p99_ms'):7.1f}"
            f" {med(n, name, 'busiest_worker'):8.0%}"
            f"   {alone[name].p50_ms:13.1f} {alone[name].p99_ms:7.1f}"
        )
    if 20 in args.connections:
        new, p99 = ratio(20, NEW_INSTANTS), med(20, NEW_INSTANTS, "p99_ms")
        verdict = "meets" if new >= NEW_RATIO_TARGET and p99 <= P99_TARGET_MS else "misses"
        print(
            f"P6a new instant each request, 20 connections: {new:.2f}x healthz, p99 {p99:.1f} ms"
            f"   target >= {NEW_RATIO_TARGET:.2f}x, p99 <= {P99_TARGET_MS:g} ms: {verdict}"
        )
    if 100 in args.connections:
        repeated = ratio(100, AS_OF_TARGET)
        verdict = "meets" if repeated >= REPEATED_RATIO_TARGET else "misses"
        print(
            f"P6b repeated instant, 100 connections: {repeated:.2f}x healthz"
            f"   target >= {REPEATED_RATIO_TARGET:.2f}x: {verdict}"
        )


if __name__ == "__main__":
    run(main)
