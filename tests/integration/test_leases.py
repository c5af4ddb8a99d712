"""Per-stream leases: one replica polls each slot, and a write under a lost lease is fenced."""

import threading
import time

from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from core import leases
from core.ingest import Recorded, StreamWriter
from core.leases import Lease, Refused
from core.verify import verify_history
from poller.job import StreamJob
from poller.runner import Poller, Replica, ScheduledJob
from tests.builders import client_for, exchange_info_job
from tests.e2e.processes import wait_for
from tests.sim_client import add_fault

STREAM = "exchange_info"


def acquire(
    engine: Engine, holder: str, interval: float = 60, lease: float = 60
) -> Lease | Refused:
    with engine.begin() as conn:
        return leases.acquire(conn, STREAM, holder, interval, lease)


def job_for(engine: Engine, sim: SimServer, replica_id: str) -> StreamJob:
    return exchange_info_job(client_for(sim.url), StreamWriter(engine, STREAM), replica_id)


def replica(
    engine: Engine, sim: SimServer, replica_id: str, interval: float, lease: float
) -> Poller:
    job = job_for(engine, sim, replica_id)
    return Poller([ScheduledJob(job, interval)], replica=Replica(engine, replica_id, lease))


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_a_lease_is_taken_once_per_slot_and_kept_by_its_holder(engine: Engine) -> None:
    first = acquire(engine, "a", interval=0.3)
    assert first == Lease(STREAM, "a", 1)
    assert acquire(engine, "a", interval=0.3) == Refused()  # not due yet
    assert acquire(engine, "b", interval=0.3) == Refused()  # held
    time.sleep(0.35)
    late = acquire(engine, "b", interval=0.3)  # due, but still a's: a is late, by 0.05 s
    assert isinstance(late, Refused)
    assert late.lapses_in is not None
    assert 59 < late.lapses_in < 60.3  # a's lease lasts 60 s past the slot a missed
    assert acquire(engine, "a", interval=0.3) == Lease(STREAM, "a", 1)  # renewed, same term


def test_a_released_lease_passes_to_another_replica_under_a_new_term(engine: Engine) -> None:
    assert acquire(engine, "a", interval=0.2) == Lease(STREAM, "a", 1)
    with engine.begin() as conn:
        assert leases.release(conn, [STREAM], "a") == 1
    assert acquire(engine, "b", interval=0.2) == Refused()  # released, but the slot is not due
    time.sleep(0.25)
    assert acquire(engine, "b", interval=0.2) == Lease(STREAM, "b", 2)


def test_three_replicas_poll_once_per_interval_in_total(engine: Engine, sim: SimServer) -> None:
    interval, seconds = 0.5, 3.0
    replicas = [replica(engine, sim, f"r{i}", interval, lease=5) for i in range(3)]
    sim.state.clear_requests()
    for poller in replicas:
        poller.start()
    time.sleep(seconds)
    # All stop polling before any hands its leases over: a replica still running would
    # rightly take over a stream the first one released, and that is not this test's point.
    for poller in replicas:
        poller.stop.set()
    for poller in replicas:
        assert poller.shutdown(5)
    polls = [r for r in sim.state.requests() if r.path == "/api/v3/exchangeInfo"]
    # One replica alone would poll 7 times (at 0 and every 0.5 s); three without leases 21.
    assert 4 <= len(polls) <= seconds / interval + 1
    holders = rows(engine, "SELECT DISTINCT replica_id FROM observations")
    assert len(holders) == 1  # the first holder kept the stream while it was alive
    with engine.connect() as conn:
        assert verify_history(conn) == []


def test_a_write_whose_lease_was_taken_over_in_flight_is_stale_and_applies_nothing(
    engine: Engine, sim: SimServer
) -> None:
    lease_a = acquire(engine, "a")
    assert isinstance(lease_a, Lease)
    add_fault(sim, kind="slow", delay_seconds=1.0)  # replica a's poll hangs for a second
    outcome: list[Recorded] = []
    in_flight = threading.Thread(
        target=lambda: outcome.append(job_for(engine, sim, "a").run(lease_a))
    )
    in_flight.start()
    # Meanwhile a's lease runs out and b takes the stream over.
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE stream_leases SET expires_at = clock_timestamp(),"
                " next_due_at = clock_timestamp()"
            )
        )
    lease_b = acquire(engine, "b")
    assert lease_b == Lease(STREAM, "b", 2)
    in_flight.join(10)
    assert [r.outcome for r in outcome] == ["stale"]
    assert rows(engine, "SELECT outcome, error_class, replica_id FROM observations") == [
        ("stale", "lease_lost", "a")
    ]
    assert rows(engine, "SELECT count(*) FROM symbol_versions") == [(0,)]
    assert rows(engine, "SELECT last_applied_at FROM stream_heads") == [(None,)]
    assert job_for(engine, sim, "b").run(lease_b).outcome == "changed"


def test_a_replica_paused_past_its_lease_cannot_commit(engine: Engine, sim: SimServer) -> None:
    lease = acquire(engine, "a", interval=0.05, lease=0.05)
    assert isinstance(lease, Lease)
    time.sleep(0.2)  # a SIGSTOP, a GC pause: the lease lapses though nobody took it
    recorded = job_for(engine, sim, "a").run(lease)
    assert recorded.outcome == "stale"
    assert rows(engine, "SELECT count(*) FROM symbol_versions") == [(0,)]


def test_after_a_graceful_stop_another_replica_polls_the_next_slot_without_waiting(
    engine: Engine, sim: SimServer
) -> None:
    interval, lease = 0.5, 30.0  # were the lease not released, b would wait 30 s
    a = replica(engine, sim, "a", interval, lease)
    a.start()
    assert wait_for(lambda: rows(engine, "SELECT count(*) FROM observations") == [(1,)], 5)
    b = replica(engine, sim, "b", interval, lease)
    b.start()
    time.sleep(interval)
    assert a.shutdown(5)
    stopped_at = time.monotonic()
    polled_by_b = wait_for(
        lambda: rows(engine, "SELECT count(*) FROM observations WHERE replica_id = 'b'") != [(0,)],
        5,
    )
    waited = time.monotonic() - stopped_at
    assert b.shutdown(5)
    assert polled_by_b
    assert waited < 2 * interval + 0.5  # b's next tick, not the 30 s lease
    assert rows(engine, "SELECT holder, term FROM stream_leases") == [("b", 2)]


# The lease's slot has passed and its holder has not renewed it, yet it still runs.
LATE = (
    "SELECT next_due_at <= clock_timestamp() AND expires_at > clock_timestamp() FROM stream_leases"
)


def test_a_standby_takes_a_late_holders_lease_when_it_lapses_not_at_its_next_tick(
    engine: Engine, sim: SimServer
) -> None:
    # A holder that took the slot and died: due 0.2 s later, its lease lapses 2.2 s later.
    assert acquire(engine, "gone", interval=0.2, lease=2) == Lease(STREAM, "gone", 1)
    assert wait_for(lambda: rows(engine, LATE) == [(True,)], 5)
    b = replica(engine, sim, "b", interval=30, lease=30)
    b.start()  # b's first tick finds the slot due and the lease still gone's; the next is 30 s on
    try:
        assert wait_for(
            lambda: rows(engine, "SELECT holder, term FROM stream_leases") == [("b", 2)], 10
        )
        assert wait_for(
            lambda: (
                rows(engine, "SELECT replica_id, outcome FROM observations") == [("b", "changed")]
            ),
            10,
        )
    finally:
        assert b.shutdown(5)
