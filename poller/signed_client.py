"""Signed GETs: server-time offset, a fresh signature per attempt, one resync on ``-1021``.

Binance refuses a signed request whose ``timestamp`` is 1 s ahead of its clock or older
than ``recvWindow`` (notes §7), so a host clock a few seconds off would silently stop the
account stream. The offset to ``/api/v3/time`` is measured at start and every
``time_sync_interval_seconds``; a ``-1021`` answer means it drifted since, so we measure
again and retry once, re-signed with a new timestamp.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import orjson

from core.config import BinanceSettings, Secret
from poller.binance import BinanceClient, Deadline, Response, binance_error
from poller.retry import RetryingClient
from poller.signing import Params, Signer, signed_query

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-MBX-APIKEY"
INVALID_TIMESTAMP = -1021


class ServerClock:
    """Binance's clock as seen from here: the host's clock plus a measured offset."""

    def __init__(
        self,
        client: BinanceClient,
        resync_seconds: float,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.resync_seconds = resync_seconds
        self.wall = wall
        self.monotonic = monotonic
        self.offset_ms = 0
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    def sync(self, deadline: Deadline | None = None) -> bool:
        """Measure the offset (midpoint of the round trip); False, offset kept, on failure.

        Within a poll, the measurement is one of its requests: ``deadline`` is the poll's.
        """
        before = self.wall()
        response = self.client.get("/api/v3/time", deadline=deadline)
        after = self.wall()
        server_ms = _server_time(response)
        with self._lock:
            self._synced_at = self.monotonic()
            if server_ms is None:
                log.warning(
                    "server time sync failed (%s); keeping offset %d ms",
                    response.error_class or f"HTTP {response.status}",
                    self.offset_ms,
                )
                return False
            self.offset_ms = server_ms - round((before + after) * 500)
        log.info(
            "server time offset %+d ms (round trip %d ms)", self.offset_ms, response.duration_ms
        )
        return True

    def now_ms(self, deadline: Deadline | None = None) -> int:
        """Binance's time now, in ms; measures the offset first when it is due."""
        with self._lock:
            due = (
                self._synced_at is None or self.monotonic() - self._synced_at >= self.resync_seconds
            )
        if due:
            self.sync(deadline)
        return round(self.wall() * 1000) + self.offset_ms


def _server_time(response: Response) -> int | None:
    if not response.ok or response.body is None:
        return None
    try:
        value = orjson.loads(response.body).get("serverTime")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SignedClient:
    """GETs of USER_DATA endpoints: API key header, timestamp, recvWindow, signature.

    Requests go through the replica's ``RetryingClient`` (its gate, budget and back-off);
    each attempt, retries included, is signed anew with a fresh timestamp.
    """

    def __init__(
        self,
        retrying: RetryingClient,
        api_key: Secret,
        signer: Signer,
        clock: ServerClock,
        recv_window_ms: int,
    ) -> None:
        self.retrying = retrying
        self.client = retrying.client
        self._api_key = api_key
        self.signer = signer
        self.clock = clock
        self.recv_window_ms = recv_window_ms

    @classmethod
    def from_settings(
        cls, settings: BinanceSettings, retrying: RetryingClient, signer: Signer
    ) -> SignedClient:
        clock = ServerClock(retrying.client, settings.time_sync_interval_seconds)
        return cls(retrying, settings.api_key, signer, clock, settings.recv_window_ms)

    def get(self, path: str, params: Params = (), deadline: Deadline | None = None) -> Response:
        """A signed GET with retries; on ``-1021``, resync the clock and try once more.

        The clock's measurements and the retry after a ``-1021`` are requests of the same
        poll, so they share its ``deadline``.
        """
        params = list(params)
        return self.retrying.fetch(lambda d: self._once(path, params, d), deadline)

    def _once(self, path: str, params: Params, deadline: Deadline) -> Response:
        response = self._attempt(path, params, deadline)
        if binance_error(response.body)[0] == INVALID_TIMESTAMP:
            log.warning("%s: -1021 (timestamp outside recvWindow); resyncing the clock", path)
            self.clock.sync(deadline)
            response = self._attempt(path, params, deadline)
        return response

    def _attempt(self, path: str, params: Params, deadline: Deadline) -> Response:
        now_ms = self.clock.now_ms(deadline)
        query = signed_query(params, self.signer, now_ms, self.recv_window_ms)
        headers = {API_KEY_HEADER: self._api_key.reveal()}
        return self.client.get(f"{path}?{query}", headers, deadline=deadline)

    def __repr__(self) -> str:
        return f"SignedClient({self.client.base_url}, {self.signer!r})"
