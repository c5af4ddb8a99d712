"""Why a stream has no recent success: its newest poll since the last one that succeeded.

``/readyz`` says a stream is stale; an operator's next question is why, and the answer
(Binance unreachable, refused, geo-blocked, rate limited) is in the observation log. Only
observations after the last success are read, newest first by the ``(stream,
observed_at)`` index, so the cost is one index probe however long the history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Failure:
    observed_at: datetime
    outcome: str  # error, or stale
    error_class: str | None
    http_status: int | None
    error_code: int | None
    error_message: str | None
    source: str | None

    def __str__(self) -> str:
        what = [self.error_class or self.outcome]
        if self.http_status is not None and self.error_class != "http_status":
            what.append(f"HTTP {self.http_status}")
        if self.error_code is not None:
            what.append(f"code {self.error_code}")
        message = f": {self.error_message}" if self.error_message else ""
        source = f" ({self.source})" if self.source else ""
        return f"{', '.join(what)}{message}{source}"


def failures_since_success(
    conn: Connection, last_successes: Mapping[str, datetime | None]
) -> dict[str, Failure]:
    """Each stream's newest poll after its last success (any poll, if it never had one),
    for the streams that have one."""
    found: dict[str, Failure] = {}
    for stream, since in last_successes.items():
        row = conn.execute(
            text(
                "SELECT observed_at, outcome, error_class, http_status, error_code,"
                " error_message, source FROM observations"
                " WHERE stream = :s AND observed_at > coalesce(CAST(:since AS timestamptz), '-infinity')"
                " ORDER BY observed_at DESC LIMIT 1"
            ),
            {"s": stream, "since": since},
        ).one_or_none()
        if row is not None:
            found[stream] = Failure(*row)
    return found
