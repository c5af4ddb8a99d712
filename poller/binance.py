"""HTTP to Binance: one session factory, timeouts on every call, weights read back.

Retries, shared back-off after 429/418 and request signing are separate concerns that
wrap ``BinanceClient.get``; this module only turns one HTTP exchange into a
``Response`` whose failure, if any, is classified and never raised, so that every
outcome becomes an observation.
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
    error_class: str | None = None  # "timeout", "connection", "http_status", "too_large"
    error_message: str | None = None

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

    def get(self, path: str, request_headers: Mapping[str, str] | None = None) -> Response:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            with self.session.get(
                self.base_url + path, headers=request_headers, timeout=self.timeout, stream=True
            ) as r:
                body = _read_body(r)
                headers = r.headers
                status = r.status_code
        except requests.Timeout as exc:
            return Response(None, None, elapsed(), error_class="timeout", error_message=_short(exc))
        except requests.ConnectionError as exc:
            return Response(
                None, None, elapsed(), error_class="connection", error_message=_short(exc)
            )
        except requests.RequestException as exc:
            return Response(None, None, elapsed(), error_class="request", error_message=_short(exc))
        except _BodyTooLargeError:
            return Response(
                status, None, elapsed(), error_class="too_large", error_message="body over 64 MB"
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
