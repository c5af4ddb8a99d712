"""P10: from a status flip at the exchange to the API answering with it, at a 1 s interval.

`exmeta sim` serves the 2023-09-08 snapshot (3.7 MB, 2,292 symbols); `exmeta poll` polls
it every second ([poller] exchange_info_interval = 1) into a throwaway database, and
`exmeta serve` (production settings) answers from that database. Each flip PATCHes one
symbol's status in the sim (HALT <-> TRADING, over a few symbols in turn); the clock
starts when the sim has acknowledged the change, and stops when GET /v1/symbols/{symbol},
asked every --probe-ms over one keep-alive connection, first shows the new status. A
random pause of up to one interval separates flips, so they land at every phase of the
poll cycle instead of always just after a poll. Percentiles are nearest-rank: with 50
flips p99 is the largest.

    python bench/detection_latency.py [--flips 50] [--probe-ms 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import http.client
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench._db import bench_engine, fixture
from bench._procs import (
    BenchError,
    Children,
    exchange,
    exmeta_env,
    free_port,
    request,
    run,
    sigterm_as_interrupt,
    start_sim,
    wait_http,
)

SNAPSHOT = "2023-09-08_2292.json"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "LTCUSDT")
INTERVAL_SECONDS = 1.0
TARGET_P99_SECONDS = 2.5
GIVE_UP_SECONDS = 15.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def api_status(conn: http.client.HTTPConnection, symbol: str) -> str | None:
    status, answer = exchange(conn, "GET", f"/v1/symbols/{symbol}")
    return answer.get("status") if status == 200 and answer else None


def wait_for(
    conn: http.client.HTTPConnection, symbol: str, expected: str, probe: float, since: float
) -> float:
    """Seconds from ``since`` until the API shows ``expected``; inf past GIVE_UP_SECONDS."""
    while time.monotonic() - since < GIVE_UP_SECONDS:
        if api_status(conn, symbol) == expected:
            return time.monotonic() - since
        time.sleep(probe)
    return math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=50, help="status flips to time (default 50)")
    parser.add_argument("--probe-ms", type=float, default=20, help="API probe period (default 20)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the pauses between flips")
    args = parser.parse_args()
    pauses = random.Random(args.seed)
    probe = args.probe_ms / 1000
    latencies: list[float] = []

    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="exmeta-bench-detect-") as tmp,
        bench_engine() as engine,
        Children(Path(tmp)) as children,
    ):
        sim = start_sim(children, fixture(SNAPSHOT))
        port = free_port()
        env = exmeta_env(
            engine.url.render_as_string(hide_password=False),
            binance__base_url=sim,
            binance__usdm_base_url=sim,
            binance__coinm_base_url=sim,
            poller__exchange_info_interval=INTERVAL_SECONDS,
            api__port=port,
            log__level="WARNING",
        )
        children.exmeta("poll", ["poll", "--replica-id", "bench-detect"], env)
        children.exmeta("serve", ["serve"], env)
        wait_http(children, f"http://127.0.0.1:{port}/v1/symbols/{SYMBOLS[0]}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status = {s: api_status(conn, s) for s in SYMBOLS}
        if None in status.values():
            raise BenchError(f"the API does not answer for every symbol: {status}")
        print(f"timing {args.flips} flips (the API probed every {args.probe_ms:g} ms) ...")
        try:
            for flip in range(args.flips):
                symbol = SYMBOLS[flip % len(SYMBOLS)]
                new = "HALT" if status[symbol] == "TRADING" else "TRADING"
                code, answer = request(
                    "PATCH", f"{sim}/_sim/symbols/{symbol}", {"fields": {"status": new}}
                )
                if code != 200:
                    raise BenchError(f"sim refused the flip of {symbol} ({code}): {answer}")
                latency = wait_for(conn, symbol, new, probe, time.monotonic())
                latencies.append(latency)
                status[symbol] = new
                if flip % 10 == 9:
                    recent = ", ".join(f"{v:.2f}" for v in latencies[-10:])
                    print(f"  flips {flip - 8}-{flip + 1}: {recent} s")
                children.check()
                time.sleep(pauses.uniform(0, INTERVAL_SECONDS))
        finally:
            conn.close()
        with engine.connect() as conn_db:
            periods = [
                r[0].total_seconds()
                for r in conn_db.execute(
                    text(
                        "SELECT requested_at - lag(requested_at) OVER (ORDER BY requested_at)"
                        " FROM observations WHERE stream = 'exchange_info'"
                        " ORDER BY requested_at OFFSET 1"
                    )
                )
                if isinstance(r[0], timedelta)
            ]
            fetch_ms = list(
                conn_db.scalars(
                    text("SELECT duration_ms FROM observations WHERE stream = 'exchange_info'")
                )
            )

    missed = sum(math.isinf(v) for v in latencies)
    p99 = percentile(latencies, 99)
    print()
    print(
        f"P10 detection latency: {len(latencies)} flips, exmeta poll every {INTERVAL_SECONDS:g} s"
        f" on {SNAPSHOT} (3.7 MB, 2,292 symbols), API via exmeta serve"
    )
    long = [f"#{i + 1} {v:.2f} s" for i, v in enumerate(periods) if v > 1.5 * INTERVAL_SECONDS]
    print(
        f"poll period (start to start) median {statistics.median(periods):.2f} s,"
        f" max {max(periods):.2f} s; fetch median {statistics.median(fetch_ms):.0f} ms;"
        f" {len(periods)} periods, {len(long)} over 1.5x the interval{': ' if long else ''}"
        + ", ".join(long)
    )
    print(
        "latency s: "
        + "  ".join(f"p{p} {percentile(latencies, p):.2f}" for p in (50, 95, 99))
        + f"  max {max(latencies):.2f}  mean {statistics.fmean(latencies):.2f}"
        + (f"  ({missed} never seen within {GIVE_UP_SECONDS:g} s)" if missed else "")
    )
    verdict = "meets" if p99 <= TARGET_P99_SECONDS else "misses"
    print(f"p99 {p99:.2f} s   target <= {TARGET_P99_SECONDS:g} s: {verdict}")


if __name__ == "__main__":
    run(main)
