"""P13: a BREAK seen within a second and a half while exchangeInfo is polled every 10 s.

`exmeta sim` serves the 2023-09-08 snapshot (3.7 MB, 2,292 symbols) and its WebSocket
streams: every symbol trades once a second (so `!miniTicker@arr` lists them all), the
flipped ones every 100 ms on `<symbol>@trade`. First the baseline: `exmeta poll` at a 1 s
exchangeInfo interval without listeners, its spot weight counted by the sim over
--baseline-seconds. Then the realtime replica: a 10 s interval with `[realtime]` on and the
flipped symbols followed by trade, with `exmeta serve` answering. Each flip PATCHes one
symbol into BREAK or back to TRADING (in turn, over a few symbols); the clock starts when
the sim has acknowledged it and stops when GET /v1/symbols/{symbol}, probed every
--probe-ms, shows it (bench.detection_latency's machinery, as P10). Random pauses of
--min-pause to --max-pause seconds separate flips. The realtime replica's spot weight is
counted over the whole flipping phase, slot polls and immediate ones together.

    python bench/realtime_latency.py [--flips 50] [--baseline-seconds 60] [--seed 7]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine, fixture
from bench._procs import (
    BenchError,
    Children,
    exmeta_env,
    free_port,
    request,
    run,
    sigterm_as_interrupt,
    start_sim,
    wait_http,
)
from bench.detection_latency import GIVE_UP_SECONDS, SNAPSHOT, api_status, percentile, wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "LTCUSDT")
INTERVAL_SECONDS = 10.0
BASELINE_INTERVAL_SECONDS = 1.0
TRADE_CADENCE_SECONDS = 0.1
TARGET_P99_SECONDS = 1.5
TARGET_WEIGHT_SHARE = 0.25


def spot_weight(sim: str) -> int:
    code, answer = request("GET", f"{sim}/_sim/weight")
    if code != 200:
        raise BenchError(f"sim weight: {code} {answer}")
    total: int = answer["total"]
    return total


def clear_weight(sim: str) -> None:
    request("DELETE", f"{sim}/_sim/weight")


def wait_rows(engine: Engine, query: str, children: Children, timeout: float = 120) -> None:
    """Wait until ``query`` (a SELECT of one boolean) is true, failing early if a child dies."""
    deadline = time.monotonic() + timeout
    while True:
        children.check()
        with engine.connect() as conn:
            if conn.execute(text(query)).scalar():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"not true within {timeout:.0f}s: {query}")
        time.sleep(0.2)


def baseline_weight_per_minute(
    engine: Engine, sim: str, tmp: Path, seconds: float, database_url: str
) -> float:
    """Spot weight per minute of a replica polling exchangeInfo every second."""
    with Children(tmp / "baseline") as children:
        (tmp / "baseline").mkdir(exist_ok=True)
        env = exmeta_env(
            database_url,
            binance__base_url=sim,
            binance__usdm_base_url=sim,
            binance__coinm_base_url=sim,
            poller__exchange_info_interval=BASELINE_INTERVAL_SECONDS,
            log__level="WARNING",
        )
        children.exmeta("poll", ["poll", "--replica-id", "bench-baseline"], env)
        wait_rows(
            engine,
            "SELECT count(*) > 2 FROM observations WHERE stream = 'exchange_info'"
            " AND replica_id = 'bench-baseline'",
            children,
        )
        clear_weight(sim)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            children.check()
            time.sleep(0.5)
        weight = spot_weight(sim)
        elapsed = time.monotonic() - started
    return weight * 60 / elapsed


def time_flips(
    children: Children,
    sim: str,
    port: int,
    args: argparse.Namespace,
    latencies: dict[str, list[float]],
) -> None:
    """Flip the symbols in turn into BREAK and back, timing each until the API shows it."""
    pauses = random.Random(args.seed)
    probe = args.probe_ms / 1000
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
        status = {s: api_status(conn, s) for s in SYMBOLS}
    if None in status.values():
        raise BenchError(f"the API does not answer for every symbol: {status}")
    print(f"timing {args.flips} flips at a {INTERVAL_SECONDS:g} s interval, listener on ...")
    for flip in range(args.flips):
        symbol = SYMBOLS[(flip // 2) % len(SYMBOLS)]
        new = "BREAK" if status[symbol] == "TRADING" else "TRADING"
        # A connection of its own per flip: the server closes one idle for the pause.
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
            api_status(conn, symbol)  # connected before the clock starts
            code, answer = request(
                "PATCH", f"{sim}/_sim/symbols/{symbol}", {"fields": {"status": new}}
            )
            if code != 200:
                raise BenchError(f"sim refused the flip of {symbol} ({code}): {answer}")
            latencies[new].append(wait_for(conn, symbol, new, probe, time.monotonic()))
        status[symbol] = new
        if flip % 10 == 9:
            print(f"  {flip + 1} flips done")
        children.check()
        time.sleep(pauses.uniform(args.min_pause, args.max_pause))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=50, help="status flips to time (default 50)")
    parser.add_argument("--probe-ms", type=float, default=20, help="API probe period (default 20)")
    parser.add_argument("--min-pause", type=float, default=5, help="seconds (default 5)")
    parser.add_argument("--max-pause", type=float, default=15, help="seconds (default 15)")
    parser.add_argument(
        "--baseline-seconds", type=float, default=60, help="1 s polling measured (default 60)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the pauses between flips")
    args = parser.parse_args()
    latencies: dict[str, list[float]] = {"BREAK": [], "TRADING": []}

    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="exmeta-bench-realtime-") as tmp,
        bench_engine() as engine,
        Children(Path(tmp)) as children,
    ):
        database_url = engine.url.render_as_string(hide_password=False)
        sim = start_sim(children, fixture(SNAPSHOT))
        for symbol in SYMBOLS:
            code, answer = request(
                "PUT", f"{sim}/_sim/streams/cadences/{symbol}", {"seconds": TRADE_CADENCE_SECONDS}
            )
            if code != 200:
                raise BenchError(f"sim refused the cadence of {symbol} ({code}): {answer}")
        print(
            f"baseline: polling every {BASELINE_INTERVAL_SECONDS:g} s for {args.baseline_seconds:g} s ..."
        )
        baseline = baseline_weight_per_minute(
            engine, sim, Path(tmp), args.baseline_seconds, database_url
        )
        _, streams = request("GET", f"{sim}/_sim/streams")
        port = free_port()
        env = exmeta_env(
            database_url,
            binance__base_url=sim,
            binance__usdm_base_url=sim,
            binance__coinm_base_url=sim,
            poller__exchange_info_interval=INTERVAL_SECONDS,
            realtime__enabled="true",
            realtime__spot_stream_url=streams["urls"]["spot"],
            realtime__usdm_stream_url=streams["urls"]["usdm"],
            realtime__coinm_stream_url=streams["urls"]["coinm"],
            realtime__spot_symbols=",".join(SYMBOLS),
            api__port=port,
            log__level="WARNING",
        )
        children.exmeta("poll", ["poll", "--replica-id", "bench-realtime"], env)
        children.exmeta("serve", ["serve"], env)
        wait_http(children, f"http://127.0.0.1:{port}/v1/symbols/{SYMBOLS[0]}")
        wait_rows(
            engine,
            "SELECT count(*) = 3 FROM stream_listeners WHERE connected"
            " AND replica_id = 'bench-realtime'",
            children,
        )
        time.sleep(5)  # every symbol's cadence learnt (listener.MIN_GAPS gaps of 1 s)
        clear_weight(sim)
        started = time.monotonic()
        time_flips(children, sim, port, args, latencies)
        weight = spot_weight(sim)
        minutes = (time.monotonic() - started) / 60
        with engine.connect() as db:
            signals = db.execute(
                text(
                    "SELECT kind, count(*) FILTER (WHERE confirmed), count(*) FROM stream_signals"
                    " WHERE stream = 'exchange_info' GROUP BY kind ORDER BY kind"
                )
            ).all()
            slot_polls = db.execute(
                text(
                    "SELECT count(*) FROM observations WHERE stream = 'exchange_info'"
                    " AND replica_id = 'bench-realtime'"
                )
            ).scalar_one()
        load = Path("/proc/loadavg").read_text().split()[:3]

    every = [v for values in latencies.values() for v in values]
    missed = sum(math.isinf(v) for v in every)
    realtime = weight / minutes
    print()
    print(
        f"P13 realtime latency: {len(every)} flips ({len(latencies['BREAK'])} into BREAK,"
        f" {len(latencies['TRADING'])} back), exchangeInfo every {INTERVAL_SECONDS:g} s with"
        f" the listener on, {SNAPSHOT} (2,292 symbols), API via exmeta serve;"
        f" loadavg {' '.join(load)}"
    )
    for new, values in latencies.items():
        print(
            f"into {new}: "
            + "  ".join(f"p{p} {percentile(values, p):.2f}" for p in (50, 95, 99))
            + f"  max {max(values):.2f}  mean {statistics.fmean(values):.2f} s"
        )
    if missed:
        print(f"{missed} flip(s) never seen within {GIVE_UP_SECONDS:g} s")
    print(
        "signals: "
        + ", ".join(f"{kind} {confirmed}/{total} confirmed" for kind, confirmed, total in signals)
        + f"; exchangeInfo polls in all {slot_polls} over {minutes:.1f} min"
    )
    share = realtime / baseline
    print(
        f"spot weight per minute: {realtime:.0f} (10 s + listener) vs {baseline:.0f}"
        f" (1 s polling, same run): {share:.0%}"
    )
    p99 = percentile(every, 99)
    latency_verdict = "meets" if p99 <= TARGET_P99_SECONDS else "misses"
    weight_verdict = "meets" if share <= TARGET_WEIGHT_SHARE else "misses"
    print(f"p99 {p99:.2f} s   target <= {TARGET_P99_SECONDS:g} s: {latency_verdict}")
    print(f"weight {share:.0%}   target <= {TARGET_WEIGHT_SHARE:.0%}: {weight_verdict}")


if __name__ == "__main__":
    run(main)
