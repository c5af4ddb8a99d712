"""One poll of one stream: fetch, classify, hand over to core to record."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy.exc import SQLAlchemyError

from core import changes as feed
from core.bodies import blank_server_time
from core.clock import Clock, utc_now
from core.history import request_weight_limit
from core.ingest import Fetched, Recorded, Snapshot, StreamWriter
from core.leases import Lease
from core.sources import source_of
from core.streams import PUBLIC_FEED_STREAMS, RATE_LIMIT_TABLES, Stream
from poller.binance import Deadline, Response, binance_error
from poller.memory import release_freed_memory
from poller.parse import ms_to_datetime
from poller.poll_log import PollReport, PollSummary, describe_changes, describe_versions
from poller.retry import RetryingClient

log = logging.getLogger(__name__)

# Changes read back to word a changed poll's line: enough to count a day's churn of a
# filter, few enough to read in a few milliseconds.
CHANGES_READ = 200


class StreamJob:
    """Polls one Binance endpoint and records what came back as an observation."""

    def __init__(
        self,
        stream: str,
        path: str,
        parse: Callable[[bytes], Snapshot],
        client: RetryingClient,
        writer: StreamWriter,
        replica_id: str,
        clock: Clock = utc_now,
        deadline_seconds: float | None = None,
        rate_limit_table: str = "rate_limit_versions",
    ) -> None:
        self.stream = stream
        # Where the REQUEST_WEIGHT limit of the API it is polled on is versioned.
        self.rate_limit_table = rate_limit_table
        self.path = path
        self.parse = parse
        self.client = client
        self.writer = writer
        self.replica_id = replica_id
        # Recorded on every observation; the writer applies none from another source
        # than the one the stream's history belongs to (core.ingest).
        self.source = source_of(client.client.base_url)
        self.clock = clock
        # Each poll's requests end within this (default: [binance] timeout_seconds).
        self.deadline_seconds = deadline_seconds
        # Held only while recording: a shutdown waits for a write, never for an HTTP read.
        self.write_lock = threading.Lock()
        self._order = SendOrder()
        self._weight_limit_known = False
        self.summary = PollSummary(stream)
        self._polled = False

    def run(self, lease: Lease | None = None) -> Recorded:
        """Poll once; the write is applied only while ``lease`` (if given) is in force.

        The outcome is logged once the write has committed, and only then: a write that
        fails raises (and says nothing of a change), one that committed is on record
        whatever follows. Of two polls of the job in flight at once (SendOrder), the one
        sent first is recorded ``stale`` if the other was applied before it.
        """
        turn = self._order.take()
        requested_at = self.clock()
        sent = time.monotonic()
        response = self.fetch()
        with self.write_lock:
            fetched = self._fetched(requested_at, sent, response)
            if self._order.overtaken(turn):
                fetched = replace(fetched, overtaken=True)
            recorded = self.writer.record(fetched, self.parse, lease)
            if recorded.outcome in ("changed", "unchanged"):
                self._order.applied(turn)
            self._log(recorded, response, fetched)
        if recorded.outcome == "changed":
            release_freed_memory()  # the parse's peak would otherwise stay in RSS
        if not self._weight_limit_known or self.rate_limit_table in recorded.opened:
            self._learn_weight_limit()
        return recorded

    def _log(self, recorded: Recorded, response: Response, fetched: Fetched) -> None:
        """The poll's line: unchanged ones after the first at DEBUG, summed up once a
        minute at INFO."""
        report = PollReport(
            self.stream,
            recorded.outcome,
            response.duration_ms,
            response.status,
            response.used_weight,
            response.attempts,
            self.source,
            fetched.error_class,
            fetched.error_code,
            fetched.error_message,
            self._what_changed(recorded) if recorded.outcome == "changed" else "",
            recorded.refusal,
        )
        # The first poll is news whatever its outcome: the replica works.
        quiet = recorded.outcome == "unchanged" and self._polled
        self._polled = True
        level = logging.WARNING if recorded.outcome == "error" else logging.INFO
        log.log(logging.DEBUG if quiet else level, "%s", report.line())
        summary = self.summary.add(recorded.outcome, response.used_weight, self.clock())
        if summary is not None:
            log.info("%s", summary)

    def _what_changed(self, recorded: Recorded) -> str:
        """The change as the feed words it (core.changes), read back once committed; by
        version counts for streams the feed does not report, or if the read fails (the
        poll is on record whatever the log says)."""
        if self.stream in PUBLIC_FEED_STREAMS:
            at = recorded.observed_at
            try:
                with self.writer.engine.connect() as conn:
                    page = feed.changes(
                        conn,
                        at,
                        at + timedelta(microseconds=1),
                        streams=(self.stream,),
                        limit=CHANGES_READ,
                    )
            except SQLAlchemyError as exc:
                log.debug("%s: could not read back the change: %s", self.stream, exc)
            else:
                if page.changes:
                    return describe_changes(page.changes, page.next_cursor is None)
        return describe_versions(recorded.opened, recorded.closed)

    def deadline(self) -> Deadline:
        """A new poll's deadline: its requests, retries included, all end by then."""
        if self.deadline_seconds is None:
            return self.client.client.deadline()
        return Deadline(self.deadline_seconds)

    def fetch(self) -> Response:
        """This poll's exchange with Binance, retried; signed streams override this."""
        return self.client.get(self.path, self.deadline())

    def _learn_weight_limit(self) -> None:
        """Size the weight budget on the exchange's REQUEST_WEIGHT limit, once known."""
        with self.writer.engine.connect() as conn:
            limit = request_weight_limit(conn, self.rate_limit_table)
        if limit is not None:
            self.client.budget.learn_limit(limit)
            self._weight_limit_known = True

    def _fetched(self, requested_at: datetime, sent: float, response: Response) -> Fetched:
        fetched = Fetched(
            stream=self.stream,
            replica_id=self.replica_id,
            requested_at=requested_at,
            sent_monotonic=sent,
            duration_ms=response.duration_ms,
            http_status=response.status,
            used_weight=response.used_weight,
            body=response.body,
            attempts=response.attempts,
            backoff_ms=response.backoff_ms,
            source=self.source,
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
        server_time = server_time_of(server_ms) if server_ms is not None else None
        return replace(fetched, body=body, server_time=server_time)


class SendOrder:
    """Which of one job's polls were overtaken: sent before one that was applied first.

    Two polls of a stream may be in flight at once (an immediate poll beside a slot's,
    poller.runner), and each is written as soon as it is in: the one that saw the change
    is not held up by one sent before it. The writer skips a body dated no later than the
    last applied one (core.ingest), but a body dated by the database clock (no
    ``serverTime``, or one not trusted) is dated when it is written, so a poll sent before
    the change and written after the one that saw it would undo the change until the
    next poll. It is told it was overtaken instead, and recorded ``stale``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._applied = 0  # the latest-sent poll applied so far

    def take(self) -> int:
        """A turn for a poll about to send."""
        with self._lock:
            self._sent += 1
            return self._sent

    def overtaken(self, turn: int) -> bool:
        """Whether a poll sent after ``turn`` was applied already (asked under the write)."""
        with self._lock:
            return self._applied > turn

    def applied(self, turn: int) -> None:
        with self._lock:
            self._applied = max(self._applied, turn)


_LATEST = datetime.max.replace(tzinfo=UTC)


def server_time_of(ms: int) -> datetime:
    """serverTime as a datetime; past year 9999 (e.g. microseconds sent for milliseconds)
    it is the latest one, which the writer rejects as ahead of the request anyway."""
    try:
        return ms_to_datetime(ms)
    except (OverflowError, ValueError, OSError):
        return _LATEST


Parser = Callable[[bytes], Snapshot]


def resolve_parser(dotted: str) -> Parser:
    """The parser a catalogue entry names as ``module:function`` (core.streams cannot
    import the poller, so it names its parsers instead of holding them)."""
    module, _, name = dotted.partition(":")
    return cast(Parser, getattr(importlib.import_module(module), name))


def stream_job(
    declared: Stream,
    client: RetryingClient,
    writer: StreamWriter,
    replica_id: str,
    clock: Clock = utc_now,
    deadline_seconds: float | None = None,
) -> StreamJob:
    """The job of an unsigned stream, as the catalogue declares it."""
    return StreamJob(
        declared.name,
        declared.path,
        resolve_parser(declared.parser),
        client,
        writer,
        replica_id,
        clock,
        deadline_seconds,
        RATE_LIMIT_TABLES[declared.market],
    )
