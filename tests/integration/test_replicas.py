"""The replica registry: heartbeats and leases, via `GET /v1/replicas` and `exmeta replicas`."""

import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine, text

from api import create_app
from api.schemas import ReplicaList
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import StreamWriter
from core.replicas import heartbeat, list_replicas, mark_stopped, register
from poller.runner import Poller, Replica, ScheduledJob
from tests.builders import client_for, exchange_info_job
from tests.e2e.processes import cli_env, run_exmeta


def poller(engine: Engine, sim: SimServer, replica_id: str) -> Poller:
    job = exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), replica_id)
    replica = Replica(engine, replica_id, lease_seconds=5, heartbeat_seconds=0.1, version="9.9")
    return Poller([ScheduledJob(job, 0.5)], replica=replica)


def test_replicas_heartbeat_and_show_their_leases_until_they_stop(
    engine: Engine, api_engine: Engine, sim: SimServer
) -> None:
    a = poller(engine, sim, "a")
    a.start()
    time.sleep(0.3)  # a registers and takes the stream first
    b = poller(engine, sim, "b")
    b.start()
    time.sleep(0.5)
    with engine.connect() as conn:
        running = {r.replica_id: r for r in list_replicas(conn)}
    assert set(running) == {"a", "b"}
    assert running["a"].leases == ("exchange_info",)
    assert running["b"].leases == ()
    assert all(r.seconds_since_seen < 0.5 and r.stopped_at is None for r in running.values())
    assert {r.version for r in running.values()} == {"9.9"}

    assert a.shutdown(5)
    assert b.shutdown(5)
    client = create_app(Settings(), api_engine, streams=("exchange_info",)).test_client()
    response = client.get("/v1/replicas")
    assert response.status_code == 200
    body = ReplicaList.model_validate(response.json)
    assert {(r.replica_id, tuple(r.leases), r.stopped_at is not None) for r in body.replicas} == {
        ("a", (), True),
        ("b", (), True),
    }
    assert "/v1/replicas" in client.get("/openapi.json").json["paths"]


def test_exmeta_replicas_tells_running_stopped_and_silent_apart(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    running_stopped_silent(engine, "host1:10", "host2:20", "host3:30")
    with engine.begin() as conn:
        heartbeat(conn, "host1:10", "0.1.0")
    assert replica_states(database_url, tmp_path, "--all") == {
        "host1:10": "running",
        "host2:20": "stopped",
        "host3:30": "silent",
    }
    # By default the live ones only: a silent replica may be frozen and come back.
    assert replica_states(database_url, tmp_path) == {"host1:10": "running", "host3:30": "silent"}


def test_exmeta_replicas_says_when_every_replica_has_stopped(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        for replica_id in ("laptop:1", "laptop:2"):
            register(conn, replica_id, "0.1.0")
            mark_stopped(conn, replica_id)

    result = exmeta_replicas(database_url, tmp_path)

    assert result.stdout == "no live replica (2 stopped: exmeta replicas --all)\n"


def test_exmeta_replicas_alive_is_a_health_check_of_one_replica(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    running_stopped_silent(engine, "poller-1", "poller-2", "poller-3")

    answers = {
        replica_id: run_exmeta(
            cli_env(EXMETA_DATABASE__URL=database_url), tmp_path, "replicas", "--alive", replica_id
        )
        for replica_id in ("poller-1", "poller-2", "poller-3", "poller-4")
    }

    assert {r: (a.returncode, a.stdout) for r, a in answers.items()} == {
        "poller-1": (0, "poller-1: running\n"),
        "poller-2": (1, "poller-2: stopped\n"),
        "poller-3": (1, "poller-3: silent\n"),
        "poller-4": (1, "poller-4: not registered\n"),
    }


def test_replicas_not_seen_for_a_week_are_pruned_when_another_registers(engine: Engine) -> None:
    with engine.begin() as conn:
        for replica_id in ("gone:1", "dead:2", "recent:3"):
            register(conn, replica_id, "0.1.0")
        mark_stopped(conn, "gone:1")
        conn.execute(
            text(
                "UPDATE replicas SET last_seen_at = clock_timestamp() - CASE replica_id"
                " WHEN 'gone:1' THEN interval '8 days' WHEN 'dead:2' THEN interval '7 days 1 minute'"
                " ELSE interval '6 days' END"
            )
        )
        register(conn, "new:4", "0.1.0")

        assert {r.replica_id for r in list_replicas(conn)} == {"recent:3", "new:4"}


def running_stopped_silent(engine: Engine, running: str, stopped: str, silent: str) -> None:
    """Three registered replicas: one running, one stopped, one silent for an hour."""
    with engine.begin() as conn:
        for replica_id in (running, stopped, silent):
            register(conn, replica_id, "0.1.0")
        mark_stopped(conn, stopped)
        conn.execute(
            text(
                "UPDATE replicas SET last_seen_at = last_seen_at - interval '1 hour'"
                " WHERE replica_id = :r"
            ),
            {"r": silent},
        )


def exmeta_replicas(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_exmeta(cli_env(EXMETA_DATABASE__URL=database_url), cwd, "replicas", *args)
    assert result.returncode == 0, result.stderr
    return result


def replica_states(database_url: str, cwd: Path, *args: str) -> dict[str, str]:
    result = exmeta_replicas(database_url, cwd, *args)
    return {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
