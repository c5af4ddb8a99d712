"""HTTP to Binance: one session factory, a total deadline on every call, weights read back.

Retries, the shared pause after 429/418 and the weight budget wrap ``BinanceClient.get``
(``poller.retry``); this module only turns one HTTP exchange into a ``Response`` whose
failure, if any, is classified and never raised, so that every outcome becomes an
observation.

Why a watchdog. ``requests``' read timeout bounds each socket read, not the response: a
server (or a proxy) that trickles 400 bytes every half second never trips it, and a 4 MB
exchangeInfo sent that way takes hours. urllib3's ``Timeout(total=...)`` has the same
per-read meaning, and checking the clock between reads does not help either, because one
read of a large chunk blocks until the chunk is full. So each request is given a
``Deadline`` and a watchdog timer: when the deadline passes, the watchdog shuts the
request's socket down (``shutdown(2)``, which makes a read blocked in another thread return
at once, the remedy urllib3's own ``HTTPResponse.shutdown`` uses), whatever phase the
request is in: status line, headers or body. The connect phase is bounded by the connect
timeout, never longer than the time left. The socket is learnt where urllib3 asks for the
response (``HTTPConnection.getresponse``), through connection classes of our own mounted on
every session, so a reused keep-alive connection is watched as well as a new one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager
from urllib3.response import HTTPResponse

from core.config import BinanceSettings

log = logging.getLogger(__name__)

USER_AGENT = "exmeta/0.1 (+metadata history poller)"
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a 4 MB exchangeInfo is normal; 64 MB is not Binance
# A stream's deadline is at most this share of its interval, so that a poll whose answer
# is stuck ends (and is recorded) before the next one is due.
DEADLINE_SHARE_OF_INTERVAL = 0.9


def deadline_seconds(settings: BinanceSettings, interval: float) -> float:
    """A stream's deadline: ``[binance] timeout_seconds`` (sized for a 6 MB body), kept
    below its interval."""
    return min(settings.timeout_seconds, DEADLINE_SHARE_OF_INTERVAL * interval)


class Deadline:
    """The time a poll's requests may take together: ``seconds`` from the first one sent.

    It starts with the first request rather than when the poll begins, because a wait for
    the weight budget's next minute sends nothing and is the budget's to bound; from then
    on every request, retry and back-off of the poll fits before it.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends_at: float | None = None

    def start(self) -> None:
        if self._ends_at is None:
            self._ends_at = self._clock() + self.seconds

    def left(self) -> float:
        """Seconds left (0 once passed); starts the deadline if nothing has yet."""
        self.start()
        assert self._ends_at is not None
        return max(0.0, self._ends_at - self._clock())


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    body: bytes | None
    duration_ms: int
    used_weight: int | None = None
    retry_after: float | None = None
    # "timeout" (the deadline passed, or the connect timeout), "connection",
    # "connection_reset", "truncated", "http_status", "too_large", "request"; poller.retry
    # adds "rate_limited", "ip_banned" and "rate_limited_pause".
    error_class: str | None = None
    error_message: str | None = None
    attempts: int = 1  # requests sent for this poll (0: none, a pause was in force)
    backoff_ms: int = 0  # time spent waiting between them

    @property
    def ok(self) -> bool:
        return self.error_class is None and self.status == 200


class _Watchdog:
    """Shuts the sockets of one request down when its deadline passes."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.fired:
                _shut(sock)  # the deadline passed while connecting or sending
            else:
                self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> _Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.watchdog = None
        with self._lock:
            self._done = True  # a request that ended is never cut afterwards
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would drop its
    # SSL object under the reading thread, which then fails with a ValueError instead of
    # seeing the end of the stream.
    with contextlib.suppress(OSError):  # already closed: nothing left to cut
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The watchdog of the request the current thread is making (requests runs in the caller's
# thread, so the connection classes below find it here).
_current = threading.local()


def _watch(sock: socket.socket | None) -> None:
    watchdog: _Watchdog | None = getattr(_current, "watchdog", None)
    if watchdog is not None and sock is not None:
        watchdog.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch(self.sock)
        return super().getresponse()


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter, with pools whose connections the watchdog can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _int_header(headers: requests.structures.CaseInsensitiveDict[str], name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _float_header(headers: requests.structures.CaseInsensitiveDict[str], name: str) -> float | None:
    try:
        return float(headers[name]) if name in headers else None
    except ValueError:
        return None


class BinanceClient:
    """One Binance API's base URL (``base_url``, default ``[binance] base_url``: spot) and
    the timeouts; safe to share between threads.

    A ``requests.Session`` is not thread-safe, and each stream polls on a thread of its own
    (poller.runner), so every thread gets a session of its own, kept for its next polls
    (and their keep-alive connections).
    """

    def __init__(self, settings: BinanceSettings, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.base_url).rstrip("/")
        self.connect_timeout = settings.connect_timeout_seconds
        self.timeout = settings.timeout_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session()
            with self._lock:
                self._sessions.append(session)
        return session

    def deadline(self) -> Deadline:
        """The deadline of a request that has none of its stream's: ``timeout_seconds``."""
        return Deadline(self.timeout)

    def get(
        self,
        path: str,
        request_headers: Mapping[str, str] | None = None,
        deadline: Deadline | None = None,
    ) -> Response:
        """One request, ended by ``deadline`` (default: ``timeout_seconds`` from now)."""
        started = time.monotonic()
        deadline = deadline or self.deadline()
        left = deadline.left()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        if left <= 0:
            return Response(
                None,
                None,
                elapsed(),
                error_class="timeout",
                error_message=f"the {deadline.seconds:g} s deadline passed before sending",
            )
        status: int | None = None  # known once the status line is in
        failure: Exception | None = None
        with _Watchdog(left) as watchdog:
            try:
                with self.session.get(
                    self.base_url + path,
                    headers=request_headers,
                    timeout=(min(self.connect_timeout, left), left),
                    stream=True,
                ) as r:
                    status = r.status_code
                    headers = r.headers
                    body = _read_body(r)
            except (requests.RequestException, _BodyTooLargeError) as exc:
                failure = exc
            except Exception:
                if not watchdog.fired:
                    raise
        # Once the socket is cut, whatever came of the read is the deadline's doing: an
        # error (a broken connection, an SSL error), or headers cut short that http.client
        # took for complete, followed by an empty body. A socket read that waited the time
        # left (its timeout) also saw the deadline pass, whichever of the two came first.
        if watchdog.fired or isinstance(failure, requests.ReadTimeout):
            return Response(
                status,
                None,
                elapsed(),
                error_class="timeout",
                error_message=_deadline_message(deadline, status),
            )
        if failure is not None:
            error_class = _error_class(failure)
            return Response(
                status if error_class in _AFTER_HEADERS else None,
                None,
                elapsed(),
                error_class=error_class,
                error_message="body over 64 MB"
                if error_class == "too_large"
                else failure_cause(failure, self.base_url),
            )
        used = _int_header(headers, USED_WEIGHT_HEADER)
        retry_after = _float_header(headers, "Retry-After")
        if status != 200:
            return Response(
                status,
                body,
                elapsed(),
                used,
                retry_after,
                error_class="http_status",
                error_message=f"HTTP {status}",
            )
        return Response(status, body, elapsed(), used, retry_after)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


class _BodyTooLargeError(Exception):
    pass


# Failures that happen while reading the body, when the status is already known.
_AFTER_HEADERS = frozenset({"truncated", "connection_reset", "too_large"})


def _deadline_message(deadline: Deadline, status: int | None) -> str:
    if status is None:
        return f"the {deadline.seconds:g} s deadline passed before the status line came"
    return (
        f"the {deadline.seconds:g} s deadline passed with the response incomplete (HTTP {status})"
    )


def _error_class(exc: Exception) -> str:
    """A short name for why a request failed, as observations and metrics record it."""
    if isinstance(exc, _BodyTooLargeError):
        return "too_large"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        # The body stopped short of its Content-Length: a reset, or a clean close.
        return "connection_reset" if "reset" in str(exc).lower() else "truncated"
    return "request"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and every one behind it: requests wraps urllib3's, which wraps the
    socket's or the TLS library's, through ``__cause__``, ``__context__``, ``reason``
    (urllib3's MaxRetryError) and ``args`` (requests' ConnectionError)."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return found


# How each low-level cause reads, most specific first (a certificate error is a TLS error).
_CAUSE_WORDS: tuple[tuple[type[BaseException], Callable[[Any, str], str]], ...] = (
    (socket.gaierror, lambda e, host: f"DNS: cannot resolve {host} ({e.strerror})"),
    (
        ssl.SSLCertVerificationError,
        lambda e, host: f"TLS: the certificate of {host} is not trusted ({e.verify_message})",
    ),
    (ssl.SSLError, lambda e, host: f"TLS handshake with {host} failed ({e.reason or e})"),
    (ConnectionRefusedError, lambda e, host: f"connection to {host} refused"),
    (
        requests.ConnectTimeout,
        lambda e, host: f"no TCP connection to {host} within the connect timeout",
    ),
    (ConnectionResetError, lambda e, host: f"connection reset by {host}"),
)


def failure_cause(exc: BaseException, url: str) -> str:
    """Why a request got no answer, in the words an operator searches for: the DNS, a
    refused connection, TLS, a timeout; urllib3's own text is a three-line repr."""
    causes = _causes(exc)
    host = urlsplit(url).hostname or url
    for cause in causes:
        for kind, words in _CAUSE_WORDS:
            if isinstance(cause, kind):
                return words(cause, host)
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"{cause.strerror} ({host})"  # e.g. Network is unreachable
    return _short(exc)


def _read_body(response: requests.Response) -> bytes:
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _short(exc: BaseException) -> str:
    """The exception's text without the URL's query string (it may carry a signature)."""
    message = str(exc)
    return message.split("?", 1)[0][:500] if "?" in message else message[:500]


def binance_error(body: bytes | None) -> tuple[int | None, str | None]:
    """Binance's ``{"code": ..., "msg": ...}`` from a small body, if that is what it is."""
    if not body or len(body) > 64 * 1024:
        return None, None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if isinstance(doc, dict) and isinstance(doc.get("code"), int) and "symbols" not in doc:
        msg = doc.get("msg")
        return doc["code"], str(msg)[:500] if msg is not None else None
    return None, None
