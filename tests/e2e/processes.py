"""Real `exmeta` processes for the end-to-end tests: poll replicas, `exmeta serve`, process
trees, ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import Engine, text

from tests.builders import sim_env

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def cli_env(**variables: str) -> dict[str, str]:
    """The environment of a one-off ``exmeta`` command: ours minus any EXMETA_*, plus
    ``variables`` (whole names, e.g. ``EXMETA_DATABASE__URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    return {**env, "PYTHONPATH": str(REPO), **variables}


def exmeta_env(database_url: str, sim_url: str, interval: float, **settings: str) -> dict[str, str]:
    """The environment of an ``exmeta`` process: ours minus any EXMETA_*, plus ``settings``.

    ``settings`` are ``EXMETA_`` variables without the prefix, e.g.
    ``POLLER__LEASE_SECONDS="3"``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env.update(
        PYTHONPATH=str(REPO),
        EXMETA_DATABASE__URL=database_url,
        **sim_env(sim_url),
        EXMETA_POLLER__EXCHANGE_INFO_INTERVAL=str(interval),
        EXMETA_POLLER__SYSTEM_STATUS_INTERVAL="60",
        EXMETA_POLLER__HEARTBEAT_SECONDS="0.2",
    )
    env.update({f"EXMETA_{key}": value for key, value in settings.items()})
    return env


def run_exmeta(
    env: Mapping[str, str], cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exmeta", *args],
        cwd=cwd,  # no config.toml there: defaults + environment only
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Replicas:
    """``exmeta poll`` processes by replica id, each logging to ``<dir>/<id>.log``.

    Leaving the context kills whatever still runs, whatever happened in the test.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, replica_id: str, env: Mapping[str, str], *args: str) -> subprocess.Popen[bytes]:
        """Start ``exmeta poll --replica-id <replica_id> <args>``."""
        with self.log_path(replica_id).open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "exmeta", "poll", "--replica-id", replica_id, *args],
                cwd=self.directory,  # no config.toml there: defaults + environment only
                env=dict(env),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.processes[replica_id] = process
        return process

    def __getitem__(self, replica_id: str) -> subprocess.Popen[bytes]:
        return self.processes[replica_id]

    def log_path(self, replica_id: str) -> Path:
        return self.directory / f"{replica_id}.log"

    def log(self, replica_id: str) -> str:
        return self.log_path(replica_id).read_text(errors="replace")

    def logged(self, replica_id: str, text: str, timeout: float) -> bool:
        """Whether ``text`` appears in the replica's log within ``timeout`` seconds."""
        return wait_for(lambda: text in self.log(replica_id), timeout)

    def alive(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is None]

    def stop(self, timeout: float = 10) -> dict[str, int]:
        """SIGTERM (SIGCONT first, for a frozen one) every live replica; their exit codes."""
        running = self.alive()
        for name in running:
            self.processes[name].send_signal(signal.SIGCONT)
            self.processes[name].send_signal(signal.SIGTERM)
        return {name: self.processes[name].wait(timeout) for name in running}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _stat(pid: int | str) -> tuple[int, str, int, int] | None:
    """(pid, state, parent pid, start time) from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may hold spaces and parentheses itself.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(pid), fields[0], int(fields[1]), int(fields[19])


def process_tree(pid: int) -> set[tuple[int, int]]:
    """Every live descendant of ``pid``, as (pid, start time) so that a reused pid is never
    mistaken for one of them."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        found = _stat(entry.name) if entry.name.isdigit() else None
        if found is not None and found[1] != "Z":
            children.setdefault(found[2], []).append((found[0], found[3]))
    tree: set[tuple[int, int]] = set()
    parents = [pid]
    while parents:
        for child in children.get(parents.pop(), []):
            tree.add(child)
            parents.append(child[0])
    return tree


def still_running(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Those of ``processes`` (from process_tree) that have not ended; zombies have."""
    running = set()
    for pid, started in processes:
        found = _stat(pid)
        if found is not None and found[1] != "Z" and found[3] == started:
            running.add((pid, started))
    return running


def kill_all(processes: set[tuple[int, int]]) -> None:
    """SIGKILL what is left of ``processes``: a test's last word, whatever it found."""
    for pid, _ in still_running(processes):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """A live ``exmeta serve`` (gunicorn, one worker) over ``database_url``, logging to a file.

    Only a real gunicorn answers what never reaches Flask: an over-long request line or
    header. Leaving the context stops it (SIGTERM, then SIGKILL), whatever the test did.
    """

    def __init__(self, directory: Path, database_url: str, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
        env.update(
            PYTHONPATH=str(REPO),
            EXMETA_DATABASE__URL=database_url,
            EXMETA_API__PORT=str(self.port),
            EXMETA_API__WORKERS="1",
        )
        env.update({f"EXMETA_{key}": value for key, value in settings.items()})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exmeta", "serve"],
                cwd=directory,  # no config.toml there: defaults + environment only
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 30) -> None:
        def listening() -> bool:
            assert self.process.poll() is None, f"exmeta serve exited:\n{self.log()[-3000:]}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        assert wait_for(listening, timeout), f"exmeta serve never listened:\n{self.log()[-3000:]}"

    def __enter__(self) -> Self:
        try:
            self.wait_listening()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
