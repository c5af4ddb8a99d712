"""Three `exmeta poll` processes on one database: one polls, SIGTERM hands over, verify passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from binance_sim.server import SimServer

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 0.5


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def exmeta_env(database_url: str, sim: SimServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env.update(
        PYTHONPATH=str(REPO),
        EXMETA_DATABASE__URL=database_url,
        EXMETA_BINANCE__BASE_URL=sim.url,
        EXMETA_POLLER__EXCHANGE_INFO_INTERVAL=str(INTERVAL),
        EXMETA_POLLER__SYSTEM_STATUS_INTERVAL="60",
        EXMETA_POLLER__HEARTBEAT_SECONDS="0.2",
    )
    return env


@pytest.fixture
def replicas(
    engine: Engine, database_url: str, sim: SimServer, tmp_path: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    env = exmeta_env(database_url, sim)
    processes = {
        f"r{i}": subprocess.Popen(
            [sys.executable, "-m", "exmeta", "poll", "--replica-id", f"r{i}"],
            cwd=tmp_path,  # no config.toml here: defaults + environment only
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(3)
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def test_replicas_share_the_polling_and_hand_over_on_sigterm(
    engine: Engine,
    database_url: str,
    sim: SimServer,
    tmp_path: Path,
    replicas: dict[str, subprocess.Popen[bytes]],
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
                f"SELECT count(*) FROM observations WHERE id > {last}"
                f" AND stream = 'exchange_info' AND replica_id <> '{holder}'",
            )
        ),
        5,
    )
    assert time.monotonic() - stopped_at < 2 * INTERVAL + 1  # not the 15 s lease

    for process in replicas.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    assert [p.wait(10) for p in replicas.values()] == [0, 0, 0]
    verify = subprocess.run(
        [sys.executable, "-m", "exmeta", "verify"],
        cwd=tmp_path,
        env=exmeta_env(database_url, sim),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")
    assert scalar(engine, "SELECT count(*) FROM replicas WHERE stopped_at IS NULL") == 0
