"""One poll of one stream: fetch, classify, hand over to core to record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import orjson

from core.bodies import blank_server_time
from core.ingest import Fetched, Recorded, Snapshot, StreamWriter
from poller.binance import BinanceClient, Response
from poller.parse import ms_to_datetime, parse_exchange_info

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


class StreamJob:
    """Polls one Binance endpoint and records what came back as an observation."""

    def __init__(
        self,
        stream: str,
        path: str,
        parse: Callable[[bytes], Snapshot],
        client: BinanceClient,
        writer: StreamWriter,
        replica_id: str,
        clock: Clock = _utc_now,
    ) -> None:
        self.stream = stream
        self.path = path
        self.parse = parse
        self.client = client
        self.writer = writer
        self.replica_id = replica_id
        self.clock = clock
        # Held only while recording: a shutdown waits for a write, never for an HTTP read.
        self.write_lock = threading.Lock()

    def run(self) -> Recorded:
        requested_at = self.clock()
        response = self.fetch()
        with self.write_lock:
            recorded = self.writer.record(self._fetched(requested_at, response), self.parse)
        level = logging.WARNING if recorded.outcome == "error" else logging.INFO
        log.log(
            level,
            "%s poll %s in %d ms (status %s, weight %s)%s%s",
            self.stream,
            recorded.outcome,
            response.duration_ms,
            response.status,
            response.used_weight,
            f": {response.error_class} {response.error_message}" if response.error_class else "",
            f", opened {recorded.opened} closed {recorded.closed}"
            if recorded.opened or recorded.closed
            else "",
        )
        return recorded

    def fetch(self) -> Response:
        """One HTTP exchange with Binance; signed streams override this."""
        return self.client.get(self.path)

    def _fetched(self, requested_at: datetime, response: Response) -> Fetched:
        fetched = Fetched(
            stream=self.stream,
            replica_id=self.replica_id,
            requested_at=requested_at,
            duration_ms=response.duration_ms,
            http_status=response.status,
            used_weight=response.used_weight,
            body=response.body,
        )
        code, msg = binance_error(response.body)
        if not response.ok:
            return replace(
                fetched,
                error_class=response.error_class,
                error_code=code,
                error_message=msg or response.error_message,
            )
        if code is not None:
            # A 200 that carries an error, e.g. the geo-block notice (code 0).
            return replace(fetched, error_class="binance_error", error_code=code, error_message=msg)
        assert response.body is not None
        body, server_ms = blank_server_time(response.body)
        server_time = ms_to_datetime(server_ms) if server_ms is not None else None
        return replace(fetched, body=body, server_time=server_time)


def exchange_info_job(
    client: BinanceClient, writer: StreamWriter, replica_id: str, clock: Clock = _utc_now
) -> StreamJob:
    return StreamJob(
        "exchange_info",
        "/api/v3/exchangeInfo",
        parse_exchange_info,
        client,
        writer,
        replica_id,
        clock,
    )
