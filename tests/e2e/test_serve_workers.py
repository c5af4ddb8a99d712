"""How `exmeta serve`'s gunicorn workers share the connections: each worker listens on
a socket of its own (SO_REUSEPORT) and the kernel spreads new connections over them,
rather than the first worker to wake up taking them all."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from api.server import GunicornServer, own_listener
from api.state import EXTENSION
from core.config import ApiSettings, Settings
from exmeta.supervise import listen
from tests.e2e.processes import ApiServer, wait_for

LISTEN, ESTABLISHED = "0A", "01"
CONNECTIONS = 40


def tcp_sockets(port: int, state: str) -> set[int]:
    """The inodes of the IPv4 sockets on local ``port`` in ``state`` (/proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    return found


def workers(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


@pytest.fixture
def two_workers(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path, database_url, API__WORKERS="2") as live:
        yield live


def test_each_worker_takes_a_share_of_the_connections_even_while_the_other_is_busy(
    two_workers: ApiServer,
) -> None:
    server = two_workers
    master = server.process.pid

    def own_listeners() -> bool:
        """Each worker listens on a socket of its own; the master's stopped listening."""
        listening = tcp_sockets(server.port, LISTEN)
        inherited = socket_inodes(master)
        return not inherited & listening and all(
            (socket_inodes(pid) - inherited) & listening for pid in workers(master)
        )

    assert wait_for(own_listeners, 30), "the workers do not listen on sockets of their own"
    first, second = workers(master)
    # A worker that cannot accept now (stopped here; busy, in production) still gets its
    # share: the kernel chose the socket, not the worker that woke first.
    os.kill(first, signal.SIGSTOP)
    try:
        clients = [
            socket.create_connection(("127.0.0.1", server.port), 10) for _ in range(CONNECTIONS)
        ]
    finally:
        os.kill(first, signal.SIGCONT)
    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(client)
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200"), "a connection was not answered"
        established = tcp_sockets(server.port, ESTABLISHED)
        shares = [len(socket_inodes(pid) & established) for pid in (first, second)]
    assert sum(shares) == CONNECTIONS, shares
    # Each socket gets a connection with probability 1/2: fewer than 8 of 40 is ~1 in 10^5.
    assert min(shares) >= 8, shares


def test_each_worker_pools_one_connection_per_thread(database_url: str) -> None:
    """A pool smaller than the threads makes busy threads open and close a connection
    (a new backend each) request after request."""
    settings = Settings(api=ApiSettings(threads=3))
    app = GunicornServer(settings, database_url, "127.0.0.1:0").load()
    gc.unfreeze()  # load() freezes what it loaded, as each worker wants; this is a test
    engine = app.extensions[EXTENSION].engine
    try:
        assert engine.pool.size() == 3
    finally:
        engine.dispose()


def test_a_worker_listener_hands_out_connections_without_nagle() -> None:
    """Accepted connections inherit TCP_NODELAY from the listener, as from gunicorn's."""
    with listen("127.0.0.1", 0) as shared:
        own = own_listener(shared, 16)
        assert own is not None
        # As a worker's take_over does: otherwise the kernel may hand the connection to
        # ``shared`` (by a hash of the addresses), and ``own.accept`` would wait forever.
        shared.shutdown(socket.SHUT_RD)
        with own, socket.create_connection(shared.getsockname(), 5):
            accepted, _ = own.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
