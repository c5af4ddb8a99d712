"""HTTP to Binance: one session factory, timeouts on every call, weights read back.

Retries, the shared pause after 429/418 and the weight budget wrap ``BinanceClient.get``
(``poller.retry``); this module only turns one HTTP exchange into a ``Response`` whose
failure, if any, is classified and never raised, so that every outcome becomes an
observation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from core.config import BinanceSettings

log = logging.getLogger(__name__)

USER_AGENT = "exmeta/0.1 (+metadata history poller)"
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a 4 MB exchangeInfo is normal; 64 MB is not Binance


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    body: bytes | None
    duration_ms: int
    used_weight: int | None = None
    retry_after: float | None = None
    # "timeout", "connection", "connection_reset", "truncated", "http_status", "too_large",
    # "request"; poller.retry adds "rate_limited", "ip_banned" and "rate_limited_pause".
    error_class: str | None = None
    error_message: str | None = None
    attempts: int = 1  # requests sent for this poll (0: none, a pause was in force)
    backoff_ms: int = 0  # time spent waiting between them

    @property
    def ok(self) -> bool:
        return self.error_class is None and self.status == 200


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
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
    def __init__(self, settings: BinanceSettings, session: requests.Session | None = None) -> None:
        self.base_url = settings.base_url.rstrip("/")
        self.timeout = (settings.connect_timeout_seconds, settings.timeout_seconds)
        self.session = session or new_session()

    def get(
        self,
        path: str,
        request_headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> Response:
        """One request; ``read_timeout`` (seconds) overrides the configured one."""
        started = time.monotonic()
        timeout = self.timeout if read_timeout is None else (self.timeout[0], read_timeout)

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        status: int | None = None  # known once the headers are in, before the body is
        try:
            with self.session.get(
                self.base_url + path, headers=request_headers, timeout=timeout, stream=True
            ) as r:
                status = r.status_code
                headers = r.headers
                body = _read_body(r)
        except (requests.RequestException, _BodyTooLargeError) as exc:
            error_class = _error_class(exc)
            return Response(
                status if error_class in _AFTER_HEADERS else None,
                None,
                elapsed(),
                error_class=error_class,
                error_message="body over 64 MB" if error_class == "too_large" else _short(exc),
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
        self.session.close()


class _BodyTooLargeError(Exception):
    pass


# Failures that happen while reading the body, when the status is already known.
_AFTER_HEADERS = frozenset({"truncated", "connection_reset", "too_large"})


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
