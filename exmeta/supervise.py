"""`exmeta up`'s children, the API server and one poller, living and dying with it.

Four choices, each against something seen when `up` simply started two ``Popen``s:

- **Only `up` hears Ctrl-C.** A terminal sends SIGINT to its whole foreground process
  group. When the children shared `up`'s group, each heard it and then `up`'s SIGTERM as
  well: gunicorn's workers took the SIGINT as a quick exit (``sys.exit`` from the signal
  handler, wherever the worker was), the arbiter ran a quick shutdown and then a second,
  graceful one for `up`'s SIGTERM over workers already half gone; a worker caught in
  that crossfire past ``graceful_timeout`` was SIGKILLed ("Worker was sent SIGKILL!
  Perhaps out of memory?", 6-7 s), and every process logged its own "received SIGINT". So each child
  runs in a session of its own, and `up` sends each one SIGTERM, once: gunicorn's
  graceful stop (workers finish their requests and close kept-alive connections within
  2 s) and the poller's (it finishes a write, then releases its leases).
- **Children die with `up`, however it dies.** ``PR_SET_PDEATHSIG`` has the kernel send
  each child SIGTERM when `up` ends, ``kill -9`` included, so the same graceful stops
  run: no poller keeps polling and holding its leases, no gunicorn keeps the port.
  gunicorn's workers follow their arbiter by themselves (they watch their parent pid).
  The signal comes when the *thread* that forked the child ends, so children are
  started from `up`'s main thread only. Linux only: elsewhere a killed `up` leaves them.
- **The port is `up`'s before anything starts.** `up` binds the API's address first, so
  a port in use is one line and exit 2 before the database, the poller or gunicorn
  start, and hands the bound socket to `exmeta serve` (``--listen-fd``): nothing can take
  the port between the check and gunicorn.
- **"Up" means answering.** The socket accepts connections from the moment it listens,
  before a worker has booted, so a TCP connect proves nothing: `up` waits for an answer
  of ``GET /healthz``, and reports a child that ends first instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
LISTEN_BACKLOG = 2048  # gunicorn's default backlog


class ListenError(Exception):
    """The API's address cannot be listened on; the message says why, in one line."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, inheritable by `exmeta serve`."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    # As gunicorn does: a restart may bind while the last run's connections are in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        # After the bind, which still refuses a port in use (another `exmeta serve` too):
        # each gunicorn worker may then listen on the port with a socket of its own
        # (api.server.own_listener).
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"{host}:{port} is already in use: stop what listens there,"
                " or set [api] port (EXMETA_API__PORT)"
            ) from None
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def probe_address(bound: tuple[str, int]) -> tuple[str, int]:
    """Where to ask the API if it answers, given the address its socket is bound to: that
    address, or loopback for a wildcard one (0.0.0.0 and :: accept, but cannot be asked)."""
    host, port = bound
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - compared, never bound
    return wildcard.get(host, host), port


def _answers(address: tuple[str, int]) -> bool:
    connection = http.client.HTTPConnection(*address, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel for SIGTERM when this process ends; None
    where there is no ``prctl``."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent ended before prctl: nobody will signal
            os._exit(1)

    return preexec


class Supervisor:
    """`exmeta` subcommands run as children that stop when ``stop`` is set or `up` dies."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], stop: threading.Event):
        self.command = list(command)
        self.env = dict(env)
        self.stop = stop
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: Sequence[str] = (), pass_fds: Sequence[int] = ()) -> None:
        """Start ``exmeta <name> <args>``; ``pass_fds`` stay open in the child."""
        self.children[name] = subprocess.Popen(  # noqa: S603 - our own command
            [*self.command, name, *args],
            env=self.env,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - `up` has no other thread to deadlock
        )

    def _a_child_ended(self) -> bool:
        for name, child in self.children.items():
            if child.poll() is not None:
                log.error("exmeta %s exited with status %s; stopping", name, child.returncode)
                return True
        return False

    def wait_until_answering(self, address: tuple[str, int], timeout: float) -> bool:
        """True once the API answers /healthz; False if a child ended, ``stop`` was set or
        ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            if self._a_child_ended():
                return False
            if _answers(address):
                return True
            if time.monotonic() > deadline:
                log.error("the API did not answer on %s:%d in %gs; stopping", *address, timeout)
                return False
            self.stop.wait(0.1)
        return False

    def watch(self) -> bool:
        """Until ``stop`` is set or a child ends; True if a child ended."""
        while not self.stop.wait(0.2):
            if self._a_child_ended():
                return True
        return False

    def shutdown(self, timeout: float) -> bool:
        """SIGTERM each running child once and wait for all, at most ``timeout`` seconds;
        True if one had to be killed then."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = False
        for name, child in self.children.items():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("exmeta %s did not stop in %gs; killing it", name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                child.wait()
                killed = True
        return killed
