"""One replica polling spot, USD-M and COIN-M at the default intervals: CPU share and RSS.

`exmeta sim` serves the real 2023-09-08 spot snapshot (3.7 MB, 2,292 symbols), the real
USD-M snapshot of 2025-10-30 (625 contracts) and the packaged COIN-M document; one
`exmeta poll` runs against it with every interval at its default (exchangeInfo and both
futures every 10 s, the system status every 30 s) and a throwaway database. Every second
its VmRSS and its CPU time (utime + stime of /proc/<pid>/stat) are sampled; the CPU share
is the CPU time over the wall time of the steady state (after the warm-up, which holds
the first polls: every symbol's first version). Halfway through, one contract of each
futures market changes status, so each market's changed path runs too.

    python bench/markets_poll.py [--seconds 60] [--warmup 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench._db import TEST_FIXTURES, bench_engine, fixture
from bench._procs import (
    BenchError,
    Children,
    exmeta_env,
    request,
    run,
    sigterm_as_interrupt,
    start_sim,
)
from bench.poller_memory import SNAPSHOT, rss_mb

USDM_SNAPSHOT = TEST_FIXTURES / "futures_usdm" / "2025-10-30_625.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat, after the name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def flip(sim: str, market: str, symbol: str, status: str) -> None:
    answer_status, answer = request(
        "PATCH", f"{sim}/_sim/markets/{market}/symbols/{symbol}", {"status": status}
    )
    if answer_status != 200:
        raise BenchError(f"sim refused the change to {market} {symbol} ({answer_status}): {answer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="sampling time (default 60)")
    parser.add_argument("--warmup", type=int, default=15, help="seconds left out (default 15)")
    args = parser.parse_args()
    if args.seconds < args.warmup + 20:
        raise BenchError("--seconds must leave at least 20 s of steady state after --warmup")

    rss: list[float] = []
    cpu: list[float] = []
    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="exmeta-bench-markets-") as tmp,
        bench_engine() as engine,
        Children(Path(tmp)) as children,
    ):
        sim = start_sim(children, fixture(SNAPSHOT), extra=["--usdm-fixture", str(USDM_SNAPSHOT)])
        env = exmeta_env(
            engine.url.render_as_string(hide_password=False),
            binance__base_url=sim,
            binance__usdm_base_url=sim,
            binance__coinm_base_url=sim,
        )
        poller = children.exmeta("poll", ["poll", "--replica-id", "bench-markets"], env)
        print(f"sampling exmeta poll (pid {poller.pid}) every second for {args.seconds} s ...")
        started = time.monotonic()
        for second in range(args.seconds):
            time.sleep(max(0.0, started + second + 1 - time.monotonic()))
            children.check()
            rss.append(rss_mb(poller.pid))
            cpu.append(cpu_seconds(poller.pid))
            if second == args.warmup + (args.seconds - args.warmup) // 2:
                flip(sim, "usdm", "BTCUSDT", "SETTLING")
                flip(sim, "coinm", "BTCUSD_PERP", "PENDING_TRADING")
        with engine.connect() as conn:
            polls = conn.execute(
                text(
                    "SELECT stream, outcome, count(*), round(avg(duration_ms)) FROM observations"
                    " GROUP BY 1, 2 ORDER BY 1, 2"
                )
            ).all()

    steady_seconds = args.seconds - args.warmup
    share = (cpu[-1] - cpu[args.warmup - 1]) / steady_seconds
    steady = rss[args.warmup :]
    print()
    print(
        f"one replica, spot ({SNAPSHOT}) + USD-M ({USDM_SNAPSHOT.name}) + COIN-M (packaged),"
        f" default intervals, {args.seconds} s; load average {os.getloadavg()[0]:.2f}"
        f" on {os.cpu_count()} cores"
    )
    for stream, outcome, count, avg_ms in polls:
        print(f"  {stream:22} {outcome:10} {count:4} polls, mean {avg_ms} ms")
    print(f"CPU share, steady state (last {steady_seconds} s): {share:.1%} of one core")
    print(
        f"CPU seconds in all: {cpu[-1]:.2f} ({cpu[-1] / args.seconds:.1%} of one core over the"
        f" {args.seconds} s sampled, start-up and first polls included)"
    )
    print(f"CPU seconds, warm-up (first {args.warmup} s): {cpu[args.warmup - 1]:.2f}")
    print(f"RSS steady state median {statistics.median(steady):.1f} MB, max {max(steady):.1f} MB")


if __name__ == "__main__":
    run(main)
