"""Child processes for benchmarks: `exmeta` commands started in their own session, always stopped.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only the
benchmark, which then stops the children in reverse order (the API and the poller before
the database they use is dropped) and, past a grace period, kills the whole group
(gunicorn's workers included). SIGTERM to the benchmark is treated like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

STOP_GRACE_SECONDS = 10


class BenchError(SystemExit):
    """A failure to report in one line (the exit status of the benchmark is 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exmeta_env(database_url: str, **settings: object) -> dict[str, str]:
    """The environment of an `exmeta` child: ``api__port=8001`` becomes EXMETA_API__PORT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env["EXMETA_DATABASE__URL"] = database_url
    env.update({f"EXMETA_{key.upper()}": str(value) for key, value in settings.items()})
    return env


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM and SIGINT unwind the stack like Ctrl-C, so every ``finally`` cleans up.

    SIGINT is set explicitly: a shell starting the benchmark in the background without job
    control hands it down ignored.
    """

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; an interruption is one line, after everything is cleaned up."""
    try:
        main()
    except KeyboardInterrupt:
        print("bench: interrupted; children stopped, database dropped", file=sys.stderr)
        raise SystemExit(130) from None


class Children:
    """Started processes, stopped in reverse order when the block ends, however it ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def exmeta(
        self, name: str, args: list[str], env: dict[str, str], *, pipe_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        """Run ``exmeta ARGS`` with its output in ``workdir/NAME.log`` (stdout piped if asked).

        The working directory is ``workdir``: no ./config.toml is picked up, so the child
        runs on the defaults plus the environment, as a production deployment would.
        """
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "exmeta", *args],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE if pipe_stdout else log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self._started.append((name, proc))
        return proc

    def check(self) -> None:
        """Fail with the child's last log lines if any child has exited."""
        for name, proc in self._started:
            if proc.poll() is not None:
                raise BenchError(
                    f"exmeta {name} exited with status {proc.returncode}{self.tail(name)}"
                )

    def tail(self, name: str, lines: int = 5) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return "".join(f"\n  {name}: {line}" for line in text[-lines:])

    def stop_all(self) -> None:
        for _name, proc in reversed(self._started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _name, proc in reversed(self._started):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # Whatever the leader left behind in its group (a gunicorn worker) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdout is not None:
                proc.stdout.close()
        self._started.clear()


def start_sim(
    children: Children, fixture: Path, timeout: float = 60, extra: Sequence[str] = ()
) -> str:
    """`exmeta sim --fixture FIXTURE [extra...]` on a free port; its base URL, read from its
    one line."""
    command = ["sim", "--fixture", str(fixture), "--port", "0", *extra]
    proc = children.exmeta("sim", command, dict(os.environ), pipe_stdout=True)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        children.check()
        if time.monotonic() > deadline:
            raise BenchError(f"exmeta sim did not announce its URL within {timeout:.0f}s")
        buffer += proc.stdout.read() or b""
        time.sleep(0.05)
    return buffer.split(b"\n", 1)[0].decode().rsplit(" ", 1)[-1]


def wait_http(children: Children, url: str, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200, failing early if a child dies."""
    deadline = time.monotonic() + timeout
    while True:
        children.check()
        try:
            status, _ = request("GET", url, timeout=2)
        except OSError:
            status = 0
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{url} did not answer 200 within {timeout:.0f}s (last: {status})")
        time.sleep(0.1)


def request(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """One request on a fresh connection; the status and the decoded JSON body (or None)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        return exchange(conn, method, parts.path + (f"?{parts.query}" if parts.query else ""), body)
    finally:
        conn.close()


def exchange(
    conn: http.client.HTTPConnection, method: str, target: str, body: Any = None
) -> tuple[int, Any]:
    """One request on ``conn`` (kept alive for the next); status and decoded JSON or None."""
    payload = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if payload is not None else {}
    conn.request(method, target, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, None
