"""The counters of the metrics endpoint: totals kept by the writer, read at scrape time.

Polls happen in the poller processes and metrics are served by the API processes, so
nothing is counted in memory: the writer adds every observation and every version to
``poll_totals`` and ``version_totals`` in the transaction that records it (core.ingest),
and a scrape reads those few rows. The counters are as durable as the log, the same on
every API replica, and agree with ``/v1/observations`` exactly, at a cost that does not
grow with the history.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from core.models import VERSIONED_TABLES

# Poll duration buckets (ms, inclusive): an unchanged exchangeInfo poll takes tens of ms,
# a changed one hundreds, a retried one seconds; a poll's requests end by its deadline (8 s
# at most, retries included), and a wait for the weight budget's next minute lasts up to 60 s. poll_totals holds counts per bucket: changing these needs a
# migration that re-buckets it (0101 seeded it with these).
DURATION_BOUNDS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def duration_bucket(duration_ms: int) -> int:
    """The index of the first bound the duration does not exceed (their count: none)."""
    return bisect_left(DURATION_BOUNDS_MS, duration_ms)


@dataclass(frozen=True, slots=True)
class PollCount:
    """Polls of one stream that ended with one outcome and error class."""

    stream: str
    outcome: str
    error_class: str | None
    polls: int
    requests: int  # requests sent to Binance, retries included
    retries: int
    backoff_ms: int


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """Poll durations of one stream: counts per upper bound (ms, inclusive) and overall."""

    stream: str
    bucket_counts: list[int]  # one per bound, not cumulative; the last is above every bound
    count: int
    sum_ms: int


def poll_counts(conn: Connection) -> list[PollCount]:
    rows = conn.execute(
        text(
            "SELECT stream, outcome, nullif(error_class, ''), sum(polls), sum(requests),"
            " sum(retries), sum(backoff_ms) FROM poll_totals GROUP BY stream, outcome, error_class"
            " ORDER BY stream, outcome, error_class"
        )
    )
    return [PollCount(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]


def duration_histograms(conn: Connection) -> list[DurationHistogram]:
    """Per stream, the polls in each bucket of ``DURATION_BOUNDS_MS``."""
    rows = conn.execute(
        text(
            "SELECT stream, duration_bucket, sum(polls), sum(duration_ms) FROM poll_totals"
            " GROUP BY stream, duration_bucket"
        )
    )
    counts: dict[str, list[int]] = {}
    sums: dict[str, int] = {}
    for stream, bucket, count, sum_ms in rows:
        counts.setdefault(stream, [0] * (len(DURATION_BOUNDS_MS) + 1))[bucket] += int(count)
        sums[stream] = sums.get(stream, 0) + int(sum_ms)
    return [DurationHistogram(s, counts[s], sum(counts[s]), sums[s]) for s in sorted(counts)]


def last_used_weights(conn: Connection, streams: Iterable[str]) -> dict[str, int]:
    """The latest ``X-MBX-USED-WEIGHT-1M`` reported to each stream's polls."""
    result: dict[str, int] = {}
    for stream in streams:
        value = conn.execute(
            text(
                "SELECT used_weight FROM observations WHERE stream = :s"
                " AND used_weight IS NOT NULL ORDER BY observed_at DESC, id DESC LIMIT 1"
            ),
            {"s": stream},
        ).scalar_one_or_none()
        if value is not None:
            result[stream] = int(value)
    return result


def versions_written(conn: Connection) -> dict[str, int]:
    """Version rows written per versioned table: each one by exactly one observation."""
    rows = conn.execute(text("SELECT table_name, versions FROM version_totals"))
    totals = {str(r[0]): int(r[1]) for r in rows}
    return {table: totals.get(table, 0) for table in sorted(VERSIONED_TABLES)}


def server_time_rejections(conn: Connection) -> dict[str, int]:
    """Observations per stream whose serverTime did not date them (core.dating).

    Counted on the stream's head by each write, so this reads one row per stream.
    """
    rows = conn.execute(
        text("SELECT stream, server_time_rejections FROM stream_heads ORDER BY stream")
    )
    return {r[0]: int(r[1]) for r in rows}


def schema_changes(conn: Connection) -> dict[str, int]:
    """Changes of each stream's document shape, counted as the feed lists them.

    A path listed, delisted or retyped at an instant is one change (a retyping closes a
    version and opens one at the same instant); the paths of a stream's first shape are
    its baseline, not changes. Read from ``schema_versions`` itself: it grows only when
    Binance changes its API (a few hundred rows per stream), so the count is cheap.
    """
    rows = conn.execute(
        text(
            "WITH first AS (SELECT stream, min(valid_from) AS at FROM schema_versions"
            "  GROUP BY stream),"
            " events AS (SELECT v.stream, v.path, v.valid_from AS at FROM schema_versions v"
            "  JOIN first f ON f.stream = v.stream AND v.valid_from > f.at"
            "  UNION SELECT stream, path, valid_to FROM schema_versions"
            "  WHERE valid_to IS NOT NULL)"
            " SELECT f.stream, count(e.at) FROM first f LEFT JOIN events e USING (stream)"
            " GROUP BY f.stream ORDER BY f.stream"
        )
    )
    return {str(r[0]): int(r[1]) for r in rows}
