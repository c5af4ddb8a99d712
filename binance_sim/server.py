"""Run the sim on real sockets in background threads: its HTTP API, and its WebSocket
streams (binance_sim.streams) on a second port.

Tests, demos and the `exmeta sim` command all need a Binance that speaks HTTP on a port,
starts in milliseconds and stops cleanly; werkzeug's threaded server does that without
another dependency. Port 0 lets the OS pick a free port, so parallel test runs never collide.
"""

import threading
from types import TracebackType
from typing import Final, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from binance_sim.app import create_app
from binance_sim.state import Market, SimState
from binance_sim.streams import StreamServer

# How often the serving loop checks for a stop request: bounds how long stop() takes.
_SHUTDOWN_POLL_SECONDS: Final = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """No access-log line per request: a poller hits the sim every second."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SimServer:
    """The sim's app on ``host:port`` (0 = any free port), served from a background thread."""

    def __init__(
        self,
        state: SimState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
    ) -> None:
        if not 0 <= port <= 65535:
            # The socket layer would silently wrap it (99999 becomes 34463).
            raise ValueError(f"port must be in 0..65535; got {port}")
        self.state = SimState.from_file() if state is None else state
        self._host = host
        self._port = port
        self._access_log = access_log
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.streams = StreamServer(self.state, host=host)

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:54321``; known once started."""
        if self._server is None:
            raise RuntimeError("the sim server is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._server.server_port}"

    def stream_url(self, market: Market = Market.SPOT) -> str:
        """Where ``market``'s WebSocket streams are served; known once started."""
        return self.streams.url(market)

    def ws_api_url(self) -> str:
        """Where spot's WebSocket API (the user data stream) is served; known once started."""
        return self.streams.ws_api_url()

    def start(self) -> None:
        """Bind the sockets and start serving; raises OSError if a port cannot be bound."""
        if self._server is not None:
            raise RuntimeError("the sim server is already running")
        self.streams.start()
        self.state.streams.urls = {market.value: self.streams.url(market) for market in Market}
        self.state.streams.urls["ws_api"] = self.streams.ws_api_url()
        try:
            server = make_server(
                self._host,
                self._port,
                create_app(self.state),
                threaded=True,
                request_handler=None if self._access_log else _QuietRequestHandler,
            )
        except BaseException:
            self.streams.stop()
            raise
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name=f"binance_sim:{server.server_port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        self.streams.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
