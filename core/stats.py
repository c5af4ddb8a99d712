"""Aggregates of the observation log and the version tables, for the metrics endpoint.

Polls happen in the poller processes and metrics are served by the API processes, so
nothing is counted in memory: every figure is read from the database at scrape time,
which is also what makes the counters agree with ``/v1/observations`` exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from core.models import VERSIONED_TABLES


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
    # Observations from before attempts were recorded count as one request, no retry.
    rows = conn.execute(
        text(
            "SELECT stream, outcome, error_class, count(*),"
            " coalesce(sum(coalesce(attempts, 1)), 0),"
            " coalesce(sum(greatest(coalesce(attempts, 1) - 1, 0)), 0),"
            " coalesce(sum(backoff_ms), 0)"
            " FROM observations GROUP BY stream, outcome, error_class"
            " ORDER BY stream, outcome, error_class"
        )
    )
    return [PollCount(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]


def duration_histograms(conn: Connection, bounds_ms: Sequence[int]) -> list[DurationHistogram]:
    """``width_bucket`` over bounds + 1: integer milliseconds, so ``<= b`` is ``< b + 1``."""
    rows = conn.execute(
        text(
            "SELECT stream, width_bucket(duration_ms, CAST(:thresholds AS int[])) AS bucket,"
            " count(*), sum(duration_ms) FROM observations GROUP BY stream, bucket"
        ),
        {"thresholds": [b + 1 for b in bounds_ms]},
    )
    counts: dict[str, list[int]] = {}
    sums: dict[str, int] = {}
    for stream, bucket, count, sum_ms in rows:
        counts.setdefault(stream, [0] * (len(bounds_ms) + 1))[bucket] += int(count)
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
    """Version rows per versioned table: each one was written by exactly one observation."""
    return {
        table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in sorted(VERSIONED_TABLES)
    }


def server_time_rejections(conn: Connection) -> dict[str, int]:
    """Observations per stream whose serverTime did not date them (core.dating).

    Counted on the stream's head by each write, so this reads one row per stream.
    """
    rows = conn.execute(
        text("SELECT stream, server_time_rejections FROM stream_heads ORDER BY stream")
    )
    return {r[0]: int(r[1]) for r in rows}
