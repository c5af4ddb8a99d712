"""The poller's HTTP path against the sim over real loopback HTTP."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from core.ingest import StreamWriter
from poller.job import StreamJob
from poller.runner import Poller, ScheduledJob
from tests.builders import client_for, exchange_info_job
from tests.sim_client import add_fault


def job_for(engine: Engine, base_url: str, timeout: float = 5, max_attempts: int = 1) -> StreamJob:
    client = client_for(base_url, timeout_seconds=timeout, max_attempts=max_attempts)
    return exchange_info_job(client, StreamWriter(engine, "exchange_info"), "test")


def current_statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text("SELECT symbol, status FROM symbol_versions WHERE valid_to IS NULL")
            ).all()
        )


@pytest.mark.parametrize(
    ("fault", "error_class", "http_status", "error_code"),
    [
        ({"kind": "geo_block", "status": 200}, "binance_error", 200, 0),
        ({"kind": "geo_block"}, "http_status", 451, 0),
        ({"kind": "invalid_json"}, "invalid_payload", 200, None),
        ({"kind": "status", "status": 503}, "http_status", 503, -1008),
    ],
)
def test_failed_responses_close_nothing_and_are_recorded(
    engine: Engine,
    sim: SimServer,
    fault: dict[str, object],
    error_class: str,
    http_status: int,
    error_code: int | None,
) -> None:
    job = job_for(engine, sim.url)
    assert job.run().outcome == "changed"
    listed = current_statuses(engine)
    add_fault(sim, **fault)
    assert job.run().outcome == "error"
    assert current_statuses(engine) == listed
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT error_class, http_status, error_code FROM observations ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert tuple(row) == (error_class, http_status, error_code)
    assert job.run().outcome == "unchanged"  # the fault was one response; the exchange is unchanged


def test_status_flip_is_a_new_version(engine: Engine, sim: SimServer) -> None:
    job = job_for(engine, sim.url)
    job.run()
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    recorded = job.run()
    assert recorded.opened == {"symbol_versions": 1}
    assert current_statuses(engine)["ETHBTC"] == "HALT"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_read_timeout_is_an_error_observation(engine: Engine, black_hole: str) -> None:
    started = time.monotonic()
    recorded = job_for(engine, black_hole, timeout=0.5).run()
    assert recorded.outcome == "error"
    assert time.monotonic() - started < 3
    with engine.connect() as conn:
        assert conn.execute(text("SELECT error_class FROM observations")).scalar_one() == "timeout"


def test_unreachable_binance_is_a_connection_error(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    recorded = job_for(engine, f"http://127.0.0.1:{closed_port}").run()
    assert recorded.outcome == "error"
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT error_class FROM observations")).scalar_one() == "connection"
        )


def test_poller_polls_on_its_interval_and_stops_promptly(
    engine: Engine, sim: SimServer, black_hole: str
) -> None:
    poller = Poller([ScheduledJob(job_for(engine, sim.url), 0.2)])
    poller.start()
    time.sleep(1.1)
    assert poller.shutdown(grace_seconds=2)
    with engine.connect() as conn:
        polls = conn.execute(text("SELECT count(*) FROM observations")).scalar_one()
    assert 4 <= polls <= 7

    stuck = Poller([ScheduledJob(job_for(engine, black_hole, timeout=30), 10)])
    stuck.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert stuck.shutdown(grace_seconds=0.5) is False  # left the stuck HTTP read behind
    assert time.monotonic() - started < 2
