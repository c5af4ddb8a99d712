"""A TCP proxy on 127.0.0.1 that can turn into a black hole, for database fault tests.

``black_hole()`` models a network path (a NAT, a firewall, a load balancer) that keeps
every connection open and keeps acknowledging what it is sent, but forwards nothing
either way any more: keepalives and ``tcp_user_timeout`` cannot see it, since our end of
the TCP connection is healthy. New connections are accepted and swallowed too.
``forward()`` lets new connections through again (the swallowed ones stay dead, as
they would behind a real black hole).
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def black_hole(self) -> None:
        self._forwarding.clear()

    def forward(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        """Stop every thread and close every socket (the server sees its clients go)."""
        self._closed.set()
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(None)  # sends block; reads wait in select, to notice close()
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client = self._keep(self._listener.accept()[0])
            except TimeoutError:
                continue
            if not self._forwarding.is_set():
                self._spawn(self._pump, client, None)  # swallowed: read, never answered
                continue
            try:
                server = self._keep(socket.create_connection(self.target, timeout=5))
            except OSError:
                client.close()
                continue
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy ``source`` to ``sink`` while forwarding; after that, read and drop."""
        while not self._closed.is_set():
            try:
                if not select.select([source], [], [], 0.1)[0]:
                    continue
                data = source.recv(65536)
            except (OSError, ValueError):  # closed under us
                return
            if not data:
                if sink is not None and self._forwarding.is_set():
                    sink.close()
                return
            if sink is None or not self._forwarding.is_set():
                sink = None  # a black hole does not come back for a connection it ate
                continue
            try:
                sink.sendall(data)
            except OSError:
                return
