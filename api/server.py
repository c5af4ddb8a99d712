"""`exmeta serve`'s gunicorn: the application it loads in each worker, and the worker,
gthread, answering in JSON what gunicorn answers itself.

A request gunicorn cannot parse never reaches Flask: a request line over its 4,094-byte
limit, too many or too large headers, a malformed line. Stock gunicorn answers those
with an HTML page; the API's contract is a JSON error body on every error, so this
worker writes ``{"error": {"code", "message"}}`` with the same statuses (414, 431, 400).

The limits stay gunicorn's: they bound what one request can make a worker read, and
gunicorn caps the request line at 8,190 bytes whatever the setting, so raising them
would only move the point where this answer is needed. Every legitimate request of this
API (the longest is a change-feed page with its cursor) fits well within them.
"""

from __future__ import annotations

import contextlib
import gc
import select
import socket
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

from api.errors import error_body
from core.config import Settings
from core.db import API_ROLE, create_db_engine
from core.logs import UtcFormatter
from core.redact import escape_controls

# Headers the application tried to send are the application's fault, not the client's
# (these exist from gunicorn 23 on).
_APPLICATION_FAULTS = tuple(
    getattr(errors, name)
    for name in ("InvalidResponseHeader", "InvalidResponseHeaderName")
    if hasattr(errors, name)
)


def error_for(exc: BaseException) -> tuple[int, str, str]:
    """The status, code and message of the answer to a request gunicorn failed on.

    The message never quotes the request: gunicorn's own texts for a malformed line or
    header do, and the caller knows what it sent.
    """
    if isinstance(exc, errors.LimitRequestLine):
        return 414, "uri_too_long", f"the request line is too long: {exc}"
    if isinstance(exc, errors.LimitRequestHeaders):
        return 431, "request_header_fields_too_large", f"the request headers are too large: {exc}"
    if isinstance(exc, errors.ParseException) and not isinstance(exc, _APPLICATION_FAULTS):
        return 400, "bad_request", "the request is not valid HTTP/1.1"
    return 500, "internal_error", "internal error"


def error_message(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the API's error body; the connection closes."""
    body = orjson.dumps(error_body(code, message))
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def own_listener(shared: socket.socket, backlog: int) -> socket.socket | None:
    """A listening socket of this worker's own on ``shared``'s address, or None where the
    platform or the socket does not allow it (a Unix socket; a listener bound without
    SO_REUSEPORT, as exmeta.supervise.listen binds it): the worker then accepts on
    ``shared`` as stock gunicorn does.

    All of gunicorn's workers accept on one shared socket, and whichever is woken first
    takes the connection: a burst of connections (a client's pool opening) can pile on
    one worker while the other idles, at half the throughput. With a socket per worker
    bound with SO_REUSEPORT, the kernel spreads the connections over the workers by a hash
    of their addresses, whichever worker is busy.
    """
    if shared.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    if not hasattr(socket, "SO_REUSEPORT"):
        return None
    if not shared.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        return None
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    try:
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # As gunicorn's own listeners, for the connections accepted to inherit: without
        # it, Nagle's algorithm holds a response's last segment for the client's delayed
        # ACK, 40 ms a request.
        own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        own.bind(shared.getsockname())
        own.listen(backlog)
    except OSError:
        own.close()
        return None
    return own


class JsonErrorWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    sockets: list[Any]  # gunicorn's listeners (gunicorn.sock), or plain sockets

    def init_process(self) -> None:
        # Before gunicorn's own set-up, which registers self.sockets with the poller.
        self.shared: list[socket.socket] = []
        listeners: list[Any] = []
        for inherited in self.sockets:
            own = own_listener(inherited.sock, self.cfg.backlog)
            if own is None:
                self.log.warning("worker accepts on the shared socket %s", inherited)
                listeners.append(inherited)
            else:
                listeners.append(own)
                self.shared.append(inherited.sock)
        self.sockets = listeners
        super().init_process()

    def run(self) -> None:
        for shared in self.shared:
            self.take_over(shared)
        super().run()

    def take_over(self, shared: socket.socket) -> None:
        """Answer the connections already waiting on the shared socket, then stop it
        listening (``shutdown``, seen by every process holding it, the master's copy
        included) so that the kernel hands no more to it: it stays bound, and the port
        this server's while workers come and go. Only the first worker to start finds it
        listening; a connection arriving in the instant between its last accept and the
        shutdown is reset."""
        shared.setblocking(False)
        with contextlib.suppress(OSError):  # another worker stopped it meanwhile
            while shared.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                if not select.select([shared], [], [], 0)[0]:
                    shared.shutdown(socket.SHUT_RD)
                    break
                self.accept(shared)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, code, message = error_for(exc)
        if status == 500:
            self.log.exception("error handling a request")
        else:
            peer = addr[0] if addr else "unix socket"
            self.log.warning("invalid request from %s: %s", peer, escape_controls(str(exc)))
        try:
            util.write_nonblock(client, error_message(status, code, message))
        except OSError:
            self.log.debug("could not send the error answer")


class UtcLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's own lines (start, workers, errors) in the format of every other exmeta
    line (core.logs), not in local time."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(UtcFormatter())


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """The API under gunicorn, on ``bind`` (e.g. ``fd://N``: a socket already listening)."""

    def __init__(self, settings: Settings, database_url: str, bind: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.bind = bind
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": self.bind,
            "workers": self.settings.api.workers,
            "threads": self.settings.api.threads,
            "worker_class": f"{__name__}.JsonErrorWorker",
            "timeout": 60,
            "graceful_timeout": 5,
            "loglevel": self.settings.log.level.lower(),
            "logger_class": f"{__name__}.UtcLogger",
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24 opens a control socket in $HOME; nothing here uses it.
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from api import create_app

        # Runs in each worker after the fork: engines are never shared across forks.
        engine = create_db_engine(
            self.database_url,
            self.settings.database,
            application_name="exmeta-api",
            # One connection per thread: a smaller pool makes the busy threads open and
            # close overflow connections (a new backend each) request after request.
            pool_size=self.settings.api.threads,
            pre_ping=False,
            read_only_role=API_ROLE,
        )
        app = create_app(self.settings, engine, streams=self.settings.enabled_streams())
        # Long-lived objects (modules, the app) leave the collector's view, so the
        # ~25,000 objects of a whole-exchange answer do not re-scan them (~30% CPU).
        gc.collect()
        gc.freeze()
        return app
