"""Three `exmeta poll` processes on one database: one polls, SIGTERM hands over, verify passes."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from binance_sim.server import SimServer
from tests.e2e.processes import Replicas, exmeta_env, run_exmeta, scalar, wait_for

INTERVAL = 0.5


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
