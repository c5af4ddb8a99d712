"""P9: resident memory of `exmeta poll` polling the largest real snapshot every second.

`exmeta sim` serves the 2023-09-08 snapshot (3.7 MB, 2,292 symbols); `exmeta poll` runs
against it with [poller] exchange_info_interval = 1 and a throwaway database (the futures
streams, on by default, poll the sim's USD-M and COIN-M every 10 s beside it). Its VmRSS
(/proc/<pid>/status) is sampled every second; every few seconds the sim's state changes
(a status flip, a flip back, a filter change) so the changed path runs too, not only the
unchanged fast path. The steady state is everything after the warm-up. Its peak is the
kernel's own high-water mark, VmHWM, reset at the end of the warm-up (/proc/<pid>/
clear_refs): a sample a second would miss a peak between two samples (a changed poll's
parsed document lives for a fraction of a second). The peak is held against the target;
the samples' median and drift (last ten against the first ten) are printed to show
whether memory keeps growing.

    python bench/poller_memory.py [--seconds 60] [--warmup 10] [--change-every 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench._db import bench_engine, fixture
from bench._procs import (
    BenchError,
    Children,
    exmeta_env,
    request,
    run,
    sigterm_as_interrupt,
    start_sim,
)

SNAPSHOT = "2023-09-08_2292.json"
TARGET_MB = 150.0


def status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/<pid>/status (VmRSS: now; VmHWM: the peak since the reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field} for pid {pid}")


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def sim_changes(sim: str) -> list[tuple[str, Callable[[], None]]]:
    """The edits made during the run, in turn: status flips and a filter change."""

    def patch(symbol: str, body: dict[str, object]) -> None:
        status, answer = request("PATCH", f"{sim}/_sim/symbols/{symbol}", body)
        if status != 200:
            raise BenchError(f"sim refused the change to {symbol} ({status}): {answer}")

    def status(symbol: str, value: str) -> Callable[[], None]:
        return lambda: patch(symbol, {"fields": {"status": value}})

    def tick_size(symbol: str) -> None:
        _, current = request("GET", f"{sim}/_sim/symbols/{symbol}")
        price = next(f for f in current["filters"] if f["filterType"] == "PRICE_FILTER")
        price["tickSize"] = str(Decimal(price["tickSize"]) * 10)
        patch(symbol, {"filters": [price]})

    return [
        ("BTCUSDT HALT", status("BTCUSDT", "HALT")),
        ("ETHUSDT PRICE_FILTER tickSize x10", lambda: tick_size("ETHUSDT")),
        ("BTCUSDT TRADING", status("BTCUSDT", "TRADING")),
        ("BNBUSDT BREAK", status("BNBUSDT", "BREAK")),
        ("BNBUSDT TRADING", status("BNBUSDT", "TRADING")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="sampling time (default 60)")
    parser.add_argument(
        "--warmup", type=int, default=10, help="seconds left out of the steady state"
    )
    parser.add_argument("--change-every", type=int, default=7, help="seconds between sim changes")
    args = parser.parse_args()
    if args.seconds < args.warmup + 20:
        raise BenchError("--seconds must leave at least 20 s of steady state after --warmup")

    samples: list[float] = []
    warmup_peak = 0.0
    made: list[str] = []
    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="exmeta-bench-mem-") as tmp,
        bench_engine() as engine,
        Children(Path(tmp)) as children,
    ):
        sim = start_sim(children, fixture(SNAPSHOT))
        env = exmeta_env(
            engine.url.render_as_string(hide_password=False),
            binance__base_url=sim,
            binance__usdm_base_url=sim,
            binance__coinm_base_url=sim,
            poller__exchange_info_interval=1,
        )
        poller = children.exmeta("poll", ["poll", "--replica-id", "bench-memory"], env)
        changes = sim_changes(sim)
        print(f"sampling exmeta poll (pid {poller.pid}) RSS every second for {args.seconds} s ...")
        started = time.monotonic()
        for second in range(args.seconds):
            time.sleep(max(0.0, started + second + 1 - time.monotonic()))
            children.check()
            samples.append(status_mb(poller.pid, "VmRSS"))
            if second + 1 == args.warmup:
                warmup_peak = status_mb(poller.pid, "VmHWM")
                reset_peak(poller.pid)
            if second >= args.warmup // 2 and second % args.change_every == 0:
                name, change = changes[len(made) % len(changes)]
                change()
                made.append(name)
        children.check()
        steady_peak = status_mb(poller.pid, "VmHWM")
        with engine.connect() as conn:
            outcomes = dict(
                conn.execute(
                    text(
                        "SELECT outcome, count(*) FROM observations"
                        " WHERE stream = 'exchange_info' GROUP BY outcome"
                    )
                ).all()
            )

    steady = samples[args.warmup :]
    drift = statistics.median(steady[-10:]) - statistics.median(steady[:10])
    polls = sum(outcomes.values())
    print()
    print(
        f"P9 poller memory: exmeta poll every 1 s on {SNAPSHOT} (3.7 MB, 2,292 symbols), "
        f"{args.seconds} s, {len(made)} sim changes"
    )
    print(
        f"polls recorded: {polls} ({polls / args.seconds:.2f}/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    )
    print("RSS MB every 5 s: " + " ".join(f"{s:.0f}" for s in samples[4::5]))
    print(f"warm-up (first {args.warmup} s) peak (VmHWM) {warmup_peak:6.1f} MB")
    print(f"steady state median             {statistics.median(steady):6.1f} MB")
    print(f"steady state drift (last 10 s - first 10 s) {drift:+6.1f} MB")
    print(f"steady state max of the samples {max(steady):6.1f} MB")
    verdict = "meets" if steady_peak <= TARGET_MB else "misses"
    print(
        f"steady state peak (VmHWM)       {steady_peak:6.1f} MB   target <= {TARGET_MB:g} MB:"
        f" {verdict}"
    )
    if outcomes.get("error") or not outcomes.get("changed"):
        print(
            "warning: polls failed or no change was recorded; the figure may not be representative"
        )


if __name__ == "__main__":
    run(main)
