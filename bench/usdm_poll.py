"""P11: a no-change USD-M exchangeInfo poll, next to ``json.loads`` of the same body.

Defined as P1 (bench/poll_processing.py) defines spot's no-change poll: everything but
the network. Here that is the whole poll as a replica runs it, the response already in
memory: the slot's lease (poller.runner.Replica.acquire, its own transaction), then the
stream's job (poller.job.StreamJob.run: the Binance-error check, blanking serverTime, the
writer's transaction, the log call). The writer's transaction locks the stream head,
dates the observation against the request's window, checks the lease, hashes the body
and, the body being the last one applied, records an ``unchanged`` observation and
advances the head. Left out, as from P1: the HTTP exchange and the shared weight
budget's statement around it (bench/shared_budget.py: 0.2-0.4 ms). Printed beside it:
the writer's ``record`` alone, exactly what P1 times.

The body is the largest real USD-M snapshot (2025-10-30, 625 contracts) in Binance's
compact wire format; before each run its serverTime is set to the current time, as
Binance's would be (a stale one would be dated by the database clock and counted as a
rejection: not the common path). Each figure is the median of --runs runs; json.loads is
timed in the same loop on the same bytes.

    python bench/usdm_poll.py [--runs 15] [--fixture PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench._cpu import backends, measured
from bench._db import TEST_FIXTURES, bench_engine
from bench._procs import BenchError, run
from bench.poll_processing import fetched
from core import streams as catalogue
from core.bodies import restore_server_time
from core.config import Settings
from core.ingest import StreamWriter
from core.leases import Lease
from poller.binance import Response
from poller.job import StreamJob, resolve_parser
from poller.runner import Replica, retrying_client

STREAM = "usdm_exchange_info"
LARGEST = TEST_FIXTURES / "futures_usdm" / "2025-10-30_625.json"
TARGET = 0.5


class Replayed(StreamJob):
    """The stream's job with the network left out: every poll is answered ``response``."""

    response = Response(status=None, body=None, duration_ms=0)

    def fetch(self) -> Response:
        return self.response


def now_stamped(raw: bytes) -> Response:
    """``raw`` as Binance would send it now: serverTime the current time."""
    body = restore_server_time(raw, int(time.time() * 1000))
    return Response(status=200, body=body, duration_ms=40, used_weight=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fixture", type=Path, default=LARGEST, help="a USD-M exchangeInfo body")
    args = parser.parse_args()
    raw = args.fixture.read_bytes()
    declared = catalogue.stream(STREAM)
    parse = resolve_parser(declared.parser)
    settings = Settings()

    with bench_engine() as engine:
        job = Replayed(
            declared.name,
            declared.path,
            parse,
            retrying_client(settings, threading.Event(), stream=STREAM),
            StreamWriter(engine, STREAM),
            "bench",
            rate_limit_table=catalogue.RATE_LIMIT_TABLES[declared.market],
        )
        replica = Replica(
            engine, "bench", settings.poller.lease_seconds, settings.poller.heartbeat_seconds
        )
        outcomes: list[str] = []

        def poll() -> None:
            # Interval 0: every slot is due at once, so each run takes the lease as a
            # replica does at its slot (renewing its own term).
            lease = replica.acquire(STREAM, 0)
            if not isinstance(lease, Lease):
                raise BenchError("the bench's replica could not take the USD-M lease")
            outcomes.append(job.run(lease).outcome)

        job.response = now_stamped(raw)
        poll()  # the first ingest: every contract's first version
        pids = backends(engine)
        # P1's measure, the writer's record alone, on a writer of its own: its observation
        # is dated 2 ms before it is made, after the poll before it (which takes longer)
        # and before the next one (serverTime is in milliseconds).
        writer = StreamWriter(engine, STREAM)

        def record() -> None:
            observation = fetched(raw, datetime.now(UTC) - timedelta(milliseconds=2), STREAM)
            outcomes.append(writer.record(observation, parse).outcome)

        samples: dict[str, list[tuple[float, float]]] = {"poll": [], "loads": [], "writer": []}
        for _ in range(args.runs):  # interleaved, so that the machine's load hits all three
            job.response = now_stamped(raw)
            samples["poll"].append(measured(poll, pids))
            samples["loads"].append(measured(lambda: json.loads(raw), pids))
            samples["writer"].append(measured(record, pids))
        if set(outcomes[1:]) != {"unchanged"}:
            raise BenchError(f"expected only unchanged polls after the first, got {outcomes}")
        if backends(engine) != pids:
            raise BenchError("the pool opened another connection during the runs")

    def ms(name: str, which: int) -> float:
        return statistics.median(s[which] for s in samples[name]) * 1000

    print(
        f"{args.fixture.name}: {len(raw):,} bytes; {args.runs} runs, medians;"
        f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    rows = [
        ("P11 no-change USD-M poll, wall", ms("poll", 0), ms("loads", 0)),
        ("  its CPU, here + database backend", ms("poll", 1), ms("loads", 1)),
        ("  the writer's record alone (as P1)", ms("writer", 0), ms("loads", 0)),
    ]
    if not pids:
        print("(the database's backends are not on this host: CPU is this process's alone)")
    for name, value, base in rows:
        ratio = value / base
        verdict = "meets" if ratio <= TARGET else "misses"
        print(
            f"{name:<40} {value:8.2f} ms   json.loads {base:6.2f} ms   ratio {ratio:5.2f}x"
            f"   target <= {TARGET}x: {verdict}"
        )


if __name__ == "__main__":
    run(main)
