"""An HTTP server on 127.0.0.1 that sends its status line and headers a byte at a time.

The sim trickles bodies; this covers the phase before them, which a per-read timeout
does not bound either: every byte comes well within it.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (i, b"x" * 40) for i in range(8))
    + b"Content-Length: 2\r\n\r\n{}"
)


class SlowHeadServer:
    """Answers every connection with ``HEAD``, one byte every ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request: one small GET
            for i in range(len(HEAD)):
                if self._closed.wait(self.delay):
                    return
                try:
                    conn.sendall(HEAD[i : i + 1])
                except OSError:  # the client gave up
                    return

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
