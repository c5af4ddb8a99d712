"""Three `exmeta poll` processes on one database: one polls, SIGTERM hands over, verify passes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from tests.e2e.processes import Replicas, exmeta_env, run_exmeta, scalar, wait_for

INTERVAL = 0.5
EXCHANGE_INFO = "/api/v3/exchangeInfo"
LOCK_HEAD = text("SELECT 1 FROM stream_heads WHERE stream = 'exchange_info' FOR UPDATE")


def r0_waits_on_a_lock(engine: Engine) -> bool:
    return (
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = 'exmeta-poll r0'",
        )
        == 1
    )


@pytest.fixture
def replicas(database_url: str, sim: SimServer, tmp_path: Path) -> Iterator[Replicas]:
    env = exmeta_env(database_url, sim.url, INTERVAL)
    with Replicas(tmp_path) as replicas:
        for i in range(3):
            replicas.start(f"r{i}", env)
        yield replicas


def test_replicas_share_the_polling_and_hand_over_on_sigterm(
    engine: Engine,
    database_url: str,
    sim: SimServer,
    tmp_path: Path,
    replicas: Replicas,
) -> None:
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM replicas") == 3, 20)
    sim.state.clear_requests()
    time.sleep(3.0)
    polls = [r for r in sim.state.requests() if r.path == "/api/v3/exchangeInfo"]
    assert 3 <= len(polls) <= 3.0 / INTERVAL + 2  # three replicas without leases: ~18
    # What the exchange told them of the IP's weight is shared through the database, on
    # every major CI runs (before 17 the row once failed on an infinite timestamp).
    shared = "SELECT used_weight > 0 AND paused_until < clock_timestamp() FROM request_budget"
    assert scalar(engine, shared) is True

    holder = str(scalar(engine, "SELECT holder FROM stream_leases WHERE stream = 'exchange_info'"))
    last = scalar(engine, "SELECT max(id) FROM observations")
    replicas[holder].send_signal(signal.SIGTERM)
    assert replicas[holder].wait(10) == 0
    stopped_at = time.monotonic()
    assert wait_for(
        lambda: bool(
            scalar(
                engine,
                "SELECT count(*) FROM observations WHERE id > :last"
                " AND stream = 'exchange_info' AND replica_id <> :holder",
                last=last,
                holder=holder,
            )
        ),
        5,
    )
    assert time.monotonic() - stopped_at < 2 * INTERVAL + 1  # not the 15 s lease

    assert list(replicas.stop().values()) == [0, 0]
    verify = run_exmeta(exmeta_env(database_url, sim.url, INTERVAL), tmp_path, "verify")
    assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")
    assert scalar(engine, "SELECT count(*) FROM replicas WHERE stopped_at IS NULL") == 0


def test_sigterm_in_the_middle_of_a_write_finishes_it_exits_0_and_hands_over(
    engine: Engine, database_url: str, sim: SimServer, tmp_path: Path
) -> None:
    """The test holds the stream's head row locked, so r0's write of a change waits on it
    when SIGTERM comes; the write is let through a second later. r0 must finish that
    write (complete, never half), exit 0 within 5 s of the signal, and release its lease
    so that r1 polls the next slot at once rather than after the 15 s lease."""
    env = exmeta_env(database_url, sim.url, INTERVAL)
    with Replicas(tmp_path) as replicas:
        replicas.start("r0", env)
        assert wait_for(
            lambda: bool(
                scalar(engine, "SELECT count(*) FROM observations WHERE replica_id = 'r0'")
            ),
            30,
        )
        replicas.start("r1", env)
        assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM replicas") == 2, 30)

        with engine.connect() as blocker:
            blocker.execute(LOCK_HEAD)
            patched_at = sim.state.now()
            sim.state.patch_symbol("ETHBTC", fields={"status": "HALT"})
            for _ in range(5):
                assert wait_for(lambda: r0_waits_on_a_lock(engine), 10)
                if any(r.path == EXCHANGE_INFO for r in sim.state.requests(since=patched_at)):
                    break  # the write waiting is of a poll that fetched the change
                # It fetched before the change: let it through (the lock is taken again
                # behind it, before r0's next poll, which fetches the change).
                blocker.rollback()
                blocker.execute(LOCK_HEAD)
            else:
                pytest.fail("r0 never fetched the change")
            last = scalar(engine, "SELECT max(id) FROM observations")
            replicas["r0"].send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(1.0)
            assert replicas["r0"].poll() is None  # still finishing its write
            blocker.rollback()
        assert replicas["r0"].wait(10) == 0
        stopped = time.monotonic()
        assert stopped - signalled <= 5

        with engine.connect() as conn:
            outcomes = conn.execute(
                text(
                    "SELECT replica_id, outcome FROM observations WHERE id > :last"
                    " AND stream = 'exchange_info' ORDER BY id"
                ),
                {"last": last},
            ).all()
            statuses = conn.execute(
                text(
                    "SELECT status FROM symbol_versions WHERE symbol = 'ETHBTC' ORDER BY valid_from"
                )
            ).scalars()
            assert tuple(outcomes[0]) == ("r0", "changed")  # the write, complete
            assert list(statuses) == ["TRADING", "HALT"]
        assert wait_for(
            lambda: bool(
                scalar(
                    engine,
                    "SELECT count(*) FROM observations WHERE id > :last AND replica_id = 'r1'",
                    last=last,
                )
            ),
            10,
        )
        assert time.monotonic() - stopped < 2 * INTERVAL + 1  # not the 15 s lease

        assert list(replicas.stop().values()) == [0]
        verify = run_exmeta(env, tmp_path, "verify")
        assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")


def test_a_replica_stops_on_sigint_and_sigterm_sent_together(
    engine: Engine, database_url: str, sim: SimServer, tmp_path: Path
) -> None:
    # As a terminal's Ctrl-C and a supervisor's SIGTERM would: the second signal may be
    # delivered to the poll thread, and Python runs handlers in the main thread only.
    env = exmeta_env(database_url, sim.url, INTERVAL)
    with Replicas(tmp_path) as replicas:
        for attempt in range(5):
            name = f"r{attempt}"
            process = replicas.start(name, env)
            assert replicas.logged(name, "exchange_info poll ", 20), replicas.log(name)
            time.sleep(0.2)  # the poll thread waits for its next slot
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGTERM)
            try:
                status: int | None = process.wait(10)
            except subprocess.TimeoutExpired:
                status = None
            assert status == 0, f"attempt {attempt + 1}:\n{replicas.log(name)[-3000:]}"
