"""`exmeta up` as a user runs it: a real process tree, the embedded database, the sim."""

from __future__ import annotations

import itertools
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
from exmeta.embedded import EmbeddedPostgres
from tests.builders import sim_env
from tests.e2e.processes import (
    exmeta_env,
    free_port,
    kill_all,
    port_is_free,
    process_tree,
    run_exmeta,
    still_running,
)

REPO = Path(__file__).resolve().parents[2]
UP_LINE = "exmeta is up"


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
    """One `exmeta up`, started as from a terminal: the leader of its own process group,
    the group a terminal's Ctrl-C reaches whole."""

    def __init__(self, log_path: Path, data_dir: Path, port: int, **env: str) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log = log_path.open("w+")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
        environment.update(
            EXMETA_DATABASE__EMBEDDED_DATA_DIR=str(self.data_dir),
            EXMETA_API__PORT=str(self.port),
            EXMETA_API__WORKERS="1",
            EXMETA_POLLER__EXCHANGE_INFO_INTERVAL="1",
            **env,
        )
        # Each test brings its own sim, a source of its own, to the module's one database:
        # without --new-source, every `up` after the first would refuse to poll (exit 2).
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exmeta",
                "--config",
                str(REPO / "config.toml"),
                "up",
                "--new-source",
            ],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.children: set[tuple[int, int]] = set()

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=5)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_until_up(self, timeout: float = 60) -> None:
        """Until `up` says it is up; the API must answer at that very moment."""
        wait_for(lambda: UP_LINE in self.output(), timeout, f"{UP_LINE!r}", self)
        try:
            answered = self.get("/healthz").status_code == 200
        except requests.ConnectionError:
            answered = False
        assert answered, f"{UP_LINE!r} printed before /healthz answered:\n{self.output()}"
        self.children = process_tree(self.process.pid)

    def symbols(self, timeout: float) -> list[Any]:
        """The symbols once a poll has recorded them."""
        return list(
            wait_for(lambda: self.get("/v1/symbols").json().get("symbols"), timeout, "a poll", self)
        )

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
        self.children |= process_tree(self.process.pid)
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def stop(self) -> int:
        """Ctrl-C if still running, then SIGKILL whatever of its tree is left."""
        if self.process.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kill_all(self.children)
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory for the module, initialised once: each `up` starts the server in
    it and stops it again."""
    directory = tmp_path_factory.mktemp("up") / "pgdata"
    yield directory
    EmbeddedPostgres(directory).stop("immediate")  # whatever a failed test left running


@pytest.fixture
def start_up(tmp_path: Path, data_dir: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []
    number = itertools.count()

    def start(port: int | None = None, **env: str) -> Up:
        log_path = tmp_path / f"up-{next(number)}.log"
        up = Up(log_path, data_dir, port or free_port(), **env)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


def test_up_follows_the_sim_and_answers_as_of(start_up: Callable[..., Up], sim: SimServer) -> None:
    up = start_up(**sim_env(sim.url))
    up.wait_until_up()
    symbols = up.symbols(2.5)  # two poll intervals
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
    up.wait_until_up()

    def errors() -> list[Any]:
        body = up.get("/v1/observations", stream="exchange_info", outcome="error").json()
        return body["observations"] if len(body["observations"]) >= 2 else []

    observations = wait_for(errors, 10, "two error observations")
    assert all(o["error_class"] == "connection" for o in observations)
    assert up.get("/readyz").status_code == 503
    assert up.process.poll() is None, "exmeta up exited"
    assert up.stop() == 0


def test_up_says_it_is_up_only_once_the_api_answers(
    start_up: Callable[..., Up], sim: SimServer
) -> None:
    up = start_up(**sim_env(sim.url))
    up.wait_until_up()  # asserts /healthz answers as soon as the line is there
    assert up.output().count(UP_LINE) == 1
    assert up.stop() == 0


def test_ctrl_c_stops_up_cleanly_three_times_in_a_row(
    start_up: Callable[..., Up], sim: SimServer, report_figure: Callable[[str], None]
) -> None:
    stops: list[float] = []
    for attempt in range(3):
        up = start_up(**sim_env(sim.url))
        up.wait_until_up()
        up.symbols(10)
        # As a browser on the console leaves it: a kept-alive connection, open at Ctrl-C.
        with requests.Session() as browser:
            assert browser.get(f"{up.url}/v1/symbols", timeout=5).ok
            started = time.monotonic()
            status = up.interrupt()
            took = time.monotonic() - started
        output = up.output()
        context = f"attempt {attempt + 1}, {took:.1f}s:\n{output}"
        assert status == 0, context
        assert took < 10, context
        assert not still_running(up.children), context
        assert [line for line in output.splitlines() if "stopping" in line] == [
            line for line in output.splitlines() if "received SIGINT, stopping" in line
        ], context
        assert output.count("received SIG") == 1, context
        assert "SIGKILL" not in output, context
        assert "Traceback" not in output, context
        assert port_is_free(up.port), context
        stops.append(took)
    report_figure(
        "exmeta up, Ctrl-C to exit with a kept-alive connection open: "
        + ", ".join(f"{took:.1f}" for took in stops)
        + " s"
    )


def test_kill_9_of_up_takes_its_children_along_and_a_restart_polls_at_once(
    start_up: Callable[..., Up], sim: SimServer, report_figure: Callable[[str], None]
) -> None:
    # A lease outlives the restart unless the killed poller released it.
    lease = {"EXMETA_POLLER__LEASE_SECONDS": "30", **sim_env(sim.url)}
    up = start_up(**lease)
    up.wait_until_up()
    wait_for(lambda: up.get("/v1/symbols").json().get("symbols"), 10, "a first poll", up)
    children = process_tree(up.process.pid)
    up.symbols(10)

    up.process.kill()
    up.process.wait()
    killed = time.monotonic()
    wait_for(lambda: not still_running(children), 10, "the children of the killed `up` to end")
    report_figure(f"exmeta up, kill -9 to its children gone: {time.monotonic() - killed:.1f} s")
    assert port_is_free(up.port)

    restarted = start_up(port=up.port, **lease)
    restarted.wait_until_up()
    since = format_instant(datetime.now(UTC)) or ""

    def polled() -> list[Any]:
        return list(
            restarted.get("/v1/observations", stream="exchange_info", **{"from": since}).json()[
                "observations"
            ]
        )

    wait_for(polled, 10, "the restarted poller's first poll", restarted)
    assert restarted.interrupt() == 0
    # The server the killed `up` started was adopted by the restarted one, which stopped it.
    assert not (restarted.data_dir / "postmaster.pid").exists(), "embedded PostgreSQL left running"


def test_up_on_a_port_in_use_says_so_in_one_line_before_polling(
    start_up: Callable[..., Up], sim: SimServer
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = start_up(port=port, **sim_env(sim.url))
        status = up.process.wait(30)
    lines = up.output().splitlines()
    assert status == 2, lines
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0], lines
    assert "in use" in lines[0], lines
    assert sim.state.requests() == [], "a poller was started"


@pytest.mark.usefixtures("migrated_engine")  # so that only the port can stop it
def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = exmeta_env(database_url, "http://127.0.0.1:9", 1, API__PORT=str(port))
        done = run_exmeta(env, tmp_path, "serve", timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"exmeta: error: 127.0.0.1:{port} is already in use: stop what listens there,"
        " or set [api] port (EXMETA_API__PORT)"
    ]
