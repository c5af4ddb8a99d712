"""`exmeta up` as a user runs it: a real process tree, the embedded database, the sim."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from binance_sim.server import SimServer
from core.timeparse import format_instant

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, up: Up | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    log = f"\n--- exmeta up output ---\n{up.output()[-4000:]}" if up else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{log}")


class Up:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = tmp_path / "pgdata"
        self.log = (tmp_path / "up.log").open("w+")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
        environment.update(
            EXMETA_DATABASE__EMBEDDED_DATA_DIR=str(self.data_dir),
            EXMETA_API__PORT=str(self.port),
            EXMETA_API__WORKERS="1",
            EXMETA_POLLER__EXCHANGE_INFO_INTERVAL="1",
            **env,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exmeta", "--config", str(REPO / "config.toml"), "up"],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=5)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(**env: str) -> Up:
        up = Up(tmp_path, **env)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


def test_up_follows_the_sim_and_answers_as_of(start_up: Callable[..., Up], sim: SimServer) -> None:
    up = start_up(EXMETA_BINANCE__BASE_URL=sim.url)
    wait_for(lambda: up.get("/healthz").ok, 60, "the API to start", up)
    symbols = wait_for(
        lambda: up.get("/v1/symbols").json().get("symbols"), 2.5, "two poll intervals"
    )
    assert len(symbols) == sim.state.symbol_count
    assert f"data directory {up.data_dir}" in up.output()

    before_flip = datetime.now(UTC)
    time.sleep(0.05)
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    wait_for(
        lambda: up.get("/v1/symbols/ETHBTC").json()["status"] == "HALT", 5, "HALT to show as latest"
    )
    earlier = up.get("/v1/symbols/ETHBTC", as_of=format_instant(before_flip) or "")
    assert earlier.status_code == 200
    assert earlier.json()["status"] == "TRADING"

    assert up.stop() == 0
    assert not (up.data_dir / "postmaster.pid").exists(), "embedded PostgreSQL left running"


def test_up_with_unreachable_binance_records_errors_and_serves(start_up: Callable[..., Up]) -> None:
    up = start_up()  # the default https://api.binance.com cannot be reached from here
    wait_for(lambda: up.get("/healthz").ok, 60, "the API to start", up)

    def errors() -> list[Any]:
        body = up.get("/v1/observations", stream="exchange_info", outcome="error").json()
        return body["observations"] if len(body["observations"]) >= 2 else []

    observations = wait_for(errors, 10, "two error observations")
    assert all(o["error_class"] == "connection" for o in observations)
    assert up.get("/readyz").status_code == 503
    assert up.process.poll() is None, "exmeta up exited"
    assert up.stop() == 0
