"""How a poll reads in the log: one line a person can act on.

A failure names where and why (the DNS, a refused connection, TLS, a timeout, Binance's
refusal of the location) and, when nothing answered at all, points to the sim for offline
use; a change names what changed, as the change feed words it; the used weight is said to
be the IP's total for the minute, as Binance counts it, not this poll's cost. Unchanged
polls (every second, at 1 s intervals) are counted and summed up once a minute per stream
instead of a line each, so that they do not bury the lines that matter; at DEBUG each
still has its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from core.changes import LISTED, Change

SIM = '`exmeta sim` serves a Binance look-alike (README, "Offline, against the Binance look-alike")'
# Error classes of a poll to which nothing answered (no status line came).
UNANSWERED = frozenset({"connection", "timeout"})
SUMMARY_SECONDS = 60.0
SHOWN_CHANGES = 5
VALUE_WIDTH = 40


def is_geo_block(status: int | None, code: int | None, message: str | None) -> bool:
    """Binance's answer to a restricted location: HTTP 451, or a body of code 0 saying so
    (seen with a 200 too; binance-api-notes §1)."""
    return status == 451 or (code == 0 and "restricted location" in (message or ""))


@dataclass(frozen=True, slots=True)
class PollReport:
    """What the log says of one recorded poll."""

    stream: str
    outcome: str
    duration_ms: int
    status: int | None
    used_weight: int | None
    attempts: int
    source: str  # scheme://host:port polled
    error_class: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    changes: str = ""  # what changed, for a changed poll
    refusal: str | None = None  # why the writer refused a fetched body (core.ingest)

    def line(self) -> str:
        facts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.used_weight is not None:
            facts.append(f"weight used this minute {self.used_weight}")
        if self.attempts != 1:
            facts.append(f"{self.attempts} attempts" if self.attempts else "no request sent")
        said = f" ({', '.join(facts)})" if facts else ""
        return f"{self.stream} poll {self.outcome} in {self.duration_ms} ms{said}{self._tail()}"

    def _tail(self) -> str:
        if self.outcome == "changed":
            return f": {self.changes}" if self.changes else ""
        if self.refusal is not None:
            return f": {self.refusal}"
        if self.error_class is None:
            return ""
        if is_geo_block(self.status, self.error_code, self.error_message):
            return (
                f": Binance refuses requests from this location at {self.source}"
                f" ({self.error_message or 'HTTP 451'}); poll from a location Binance"
                f" serves; to try exmeta, {SIM}"
            )
        if self.error_class in UNANSWERED and self.status is None:
            return (
                f": cannot reach {self.source}: {self.error_message}; offline or firewalled? {SIM}"
            )
        code = f" {self.error_code}" if self.error_code is not None else ""
        message = f": {self.error_message}" if self.error_message else ""
        return f": {self.error_class}{code}{message}"


def describe_changes(changes: Sequence[Change], complete: bool) -> str:
    """The changes of one observation, as the feed lists them: each named when few,
    counted by entity with the first few named when many."""
    if len(changes) == 1 and complete:
        return _change(changes[0])
    entities = Counter(entity for entity, _ in dict.fromkeys((c.entity, c.key) for c in changes))
    counted = ", ".join(_count(n, entity) for entity, n in entities.items())
    shown = "; ".join(_change(c) for c in changes[:SHOWN_CHANGES])
    if complete:
        more = len(changes) - SHOWN_CHANGES
        return f"{len(changes)} changes to {counted}: {shown}" + (
            f"; and {more} more" if more > 0 else ""
        )
    return f"over {len(changes)} changes, to {counted} and more: {shown}; ..."


def describe_versions(opened: Mapping[str, int], closed: Mapping[str, int]) -> str:
    """A change told by its version counts: for streams the feed does not report (the
    account's are private; the futures markets' are not in it yet)."""
    parts = [f"{n} {table} opened" for table, n in opened.items()]
    parts += [f"{n} {table} closed" for table, n in closed.items()]
    return ", ".join(parts)


class PollSummary:
    """Counts one stream's polls by outcome; every ``every`` seconds, the line that sums
    them up."""

    def __init__(self, stream: str, every: float = SUMMARY_SECONDS) -> None:
        self.stream = stream
        self.every = every
        self._since: datetime | None = None
        self._outcomes: Counter[str] = Counter()

    def add(self, outcome: str, used_weight: int | None, now: datetime) -> str | None:
        """Count a poll; the summary line when one is due (None otherwise)."""
        if self._since is None:
            self._since = now
        self._outcomes[outcome] += 1
        elapsed = (now - self._since).total_seconds()
        if elapsed < self.every:
            return None
        total = sum(self._outcomes.values())
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self._outcomes.items()))
        weight = f"; weight used this minute {used_weight}" if used_weight is not None else ""
        self._since, self._outcomes = now, Counter()
        return f"{self.stream}: {total} polls in the last {elapsed:.0f} s: {counts}{weight}"


def _count(n: int, entity: str) -> str:
    plural = entity if n == 1 else f"{entity}es" if entity.endswith("s") else f"{entity}s"
    return f"{n} {plural}"


def _change(change: Change) -> str:
    if change.field == LISTED:
        return f"{change.key} {'delisted' if change.new is None else 'listed'}"
    return f"{change.key} {change.field} {_value(change.old)}→{_value(change.new)}"


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"
