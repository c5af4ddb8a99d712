"""The observation log at short intervals: recent detail rows, old unchanged polls folded.

Every poll is written as one row of ``observations`` (core.ingest), with its detail:
requested_at, duration, used weight, attempts, back-off, replica. At a 1 s interval that
is ~213 bytes a poll, ~7 GB a year, nearly all of it unchanged polls that only vouch for
"still the same at t". Folding keeps what vouches and gives up what only diagnoses:

- ``compact`` folds each stream's unchanged successful polls older than the detail
  window (``[poller] observation_detail_hours``) into ``observation_runs``: one row per
  run of up to ``RUN_POLLS`` consecutive ones sharing replica, HTTP status, body, source
  and origin, holding the first poll's id and instant and, per later poll, the steps to
  its id and its instant (microseconds) as two integer arrays; the folded detail rows
  are deleted in the same transaction. Each poll's id and instant stay exact, so every
  ``observed_before``/``observed_after``, gap, change-feed ``observed_before`` and
  ``/v1/exchange-info`` document is answered as before; ``/v1/observations`` still lists
  every poll, with null requested_at, duration_ms, used_weight, attempts and backoff_ms
  for folded ones. ``/metrics`` counters come from ``poll_totals``, which folding leaves
  alone. ``observation_detail_hours = 0`` keeps every detail row forever: no replica
  folds (``exmeta compact --older-than-hours`` still can, when asked).
- Deleting an observation makes PostgreSQL look for a version that references it, in
  each version table's ``opened_by`` and ``closed_by``; they are indexed for that
  (migration 0245), else folding one run would read every version table 7,200 times.
- What is never folded: changed polls, errors, stale and switched observations, a poll
  whose serverTime did not date it, and the stream head's own observations (the newest
  applied one and the one that last changed its versions). A run never spans another
  success or switch of its stream, and a stream's runs never overlap: each new run
  starts after the stream's newest run, so "the run at or before t" is one index probe.
- Runs are written once and never updated (no array grows by one element a second,
  which would rewrite the whole value each time). Each run is folded in its own short
  transaction holding the stream's head row, the lock every write of the stream takes:
  any number of replicas (and ``exmeta compact``) may compact at once, the second finds
  nothing left to fold, and a poll waits for at most one run's fold.

Readers reach folded polls through the SQL below (and the database's
``observation_run_polls`` and ``last_success_before``, migration 0240); no other reader
of poll instants reads ``observation_runs`` itself (core.verify checks that runs stand
alone in their spans, which the lookups here rely on).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from core.models import SUCCESS_OUTCOMES

log = logging.getLogger(__name__)

# An hour at 1 s: a run's row overhead is then ~0.03 bytes a poll, and an evidence lookup
# inside a run unpacks at most this many steps.
RUN_POLLS = 3600
_INT4 = 2**31 - 1
_OK = ", ".join(f"'{o}'" for o in SUCCESS_OUTCOMES)
NEWEST = "'infinity'::timestamptz"  # the ``at`` of last_success for a stream's newest
_UNPACK = "observation_run_polls(r.first_id, r.first_at, r.id_steps, r.gaps_us)"


@dataclass(frozen=True, slots=True)
class Poll:
    """One observation as compaction sees it; ``foldable``: an unchanged success that may
    be folded (else a success or switch that ends any run)."""

    id: int
    observed_at: datetime
    foldable: bool
    replica_id: str
    http_status: int | None
    body_sha256: bytes | None
    source: str | None
    origin: str | None

    def shares_run_with(self, other: Poll) -> bool:
        return (
            self.replica_id,
            self.http_status,
            self.body_sha256,
            self.source,
            self.origin,
        ) == (other.replica_id, other.http_status, other.body_sha256, other.source, other.origin)


@dataclass(frozen=True, slots=True)
class Run:
    polls: tuple[Poll, ...]

    @property
    def first(self) -> Poll:
        return self.polls[0]

    @property
    def last(self) -> Poll:
        return self.polls[-1]


def _steps_fit(previous: Poll, poll: Poll) -> bool:
    gap = (poll.observed_at - previous.observed_at) // timedelta(microseconds=1)
    return 0 < gap <= _INT4 and -_INT4 <= poll.id - previous.id <= _INT4


def fold(polls: Sequence[Poll]) -> list[Run]:
    """The runs of ``polls`` (in time order): maximal stretches of foldable polls sharing
    a run's attributes, ended by any other success or switch, and at ``RUN_POLLS`` or a
    step too large for an int4 (35 min, or 2^31 ids)."""
    runs: list[Run] = []
    current: list[Poll] = []
    for poll in polls:
        if current and (
            not poll.foldable
            or len(current) == RUN_POLLS
            or not poll.shares_run_with(current[-1])
            or not _steps_fit(current[-1], poll)
        ):
            runs.append(Run(tuple(current)))
            current = []
        if poll.foldable:
            current.append(poll)
    if current:
        runs.append(Run(tuple(current)))
    return runs


def run_row(run: Run) -> dict[str, object]:
    """``run`` as the parameters of an ``observation_runs`` row."""
    first = run.first
    pairs = list(zip(run.polls, run.polls[1:], strict=False))
    return {
        "stream": None,
        "first_at": first.observed_at,
        "last_at": run.last.observed_at,
        "polls": len(run.polls),
        "first_id": first.id,
        "id_steps": [b.id - a.id for a, b in pairs],
        "gaps_us": [(b.observed_at - a.observed_at) // timedelta(microseconds=1) for a, b in pairs],
        "replica_id": first.replica_id,
        "http_status": first.http_status,
        "body_sha256": first.body_sha256,
        "source": first.source,
        "origin": first.origin,
    }


_LOCK = text(
    "SELECT h.last_observation_id, h.state_observation_id,"
    " (SELECT max(last_at) FROM observation_runs WHERE stream = :s)"
    " FROM stream_heads h WHERE h.stream = :s FOR UPDATE"
)
# Only successes and switches: they are what runs are made of or ended by; an error
# between two unchanged polls neither ends a run nor is folded.
_CANDIDATES = text(
    "SELECT id, observed_at, outcome = 'unchanged' AND server_time IS NULL"
    " AND id IS DISTINCT FROM :head AND id IS DISTINCT FROM :state,"
    " replica_id, http_status, body_sha256, source, origin FROM observations"
    f" WHERE stream = :s AND outcome IN ({_OK}, 'switched')"
    " AND observed_at > :after AND observed_at < :cutoff"
    " ORDER BY observed_at, id LIMIT :limit"
)
_INSERT_RUN = text(
    "INSERT INTO observation_runs (stream, first_at, last_at, polls, first_id, id_steps,"
    " gaps_us, replica_id, http_status, body_sha256, source, origin) VALUES (:stream,"
    " :first_at, :last_at, :polls, :first_id, :id_steps, :gaps_us, :replica_id,"
    " :http_status, :body_sha256, :source, :origin)"
)
_DELETE_FOLDED = text("DELETE FROM observations WHERE id = ANY(:ids)")


def _fold_one(
    conn: Connection, stream: str, after: datetime | None, cutoff: datetime
) -> tuple[datetime | None, int]:
    """Fold the stream's first run after ``after`` (and after its newest run): where the
    next look starts (None: nothing left before ``cutoff``) and the polls folded."""
    head = conn.execute(_LOCK, {"s": stream}).one_or_none()
    if head is None:
        return None, 0
    frontier = max((t for t in (after, head[2]) if t is not None), default=None)
    rows = conn.execute(
        _CANDIDATES,
        {
            "s": stream,
            "head": head[0],
            "state": head[1],
            "after": frontier or datetime.min.replace(tzinfo=UTC),
            "cutoff": cutoff,
            "limit": 2 * RUN_POLLS,
        },
    ).all()
    runs = fold([Poll(*r) for r in rows])
    if not runs:
        # A full batch of successes that fold into nothing (every poll changed): look on.
        return (rows[-1][1] if len(rows) == 2 * RUN_POLLS else None), 0
    run = runs[0]
    conn.execute(_INSERT_RUN, {**run_row(run), "stream": stream})
    conn.execute(_DELETE_FOLDED, {"ids": [p.id for p in run.polls]})
    return run.last.observed_at, len(run.polls)


def compact(
    engine: Engine, detail: timedelta, stop: threading.Event | None = None
) -> dict[str, int]:
    """Fold every stream's unchanged polls older than ``detail`` (database clock); the
    polls folded per stream. Idempotent, and safe with any number of replicas at once.

    ``stop`` ends it between two runs: a first fold of a year of detail takes a while,
    and a replica asked to stop should not wait for it (what is folded stays folded).
    """
    with engine.connect() as conn:
        cutoff = conn.execute(text("SELECT now() - :d"), {"d": detail}).scalar_one()
        streams = list(conn.execute(text("SELECT stream FROM stream_heads ORDER BY 1")).scalars())
    folded: dict[str, int] = {}
    for stream in streams:
        after: datetime | None = None
        while stop is None or not stop.is_set():
            with engine.begin() as conn:
                after, polls = _fold_one(conn, stream, after, cutoff)
            if polls:
                folded[stream] = folded.get(stream, 0) + polls
            if after is None:
                break
    if folded:
        log.info("folded %s", ", ".join(f"{n} polls of {s}" for s, n in folded.items()))
    return folded


# --- reading both tables ------------------------------------------------------------------


def last_success(stream: str, at: str, *, strictly: bool = False) -> str:
    """SQL: the stream's last successful poll at (or strictly before) ``at``, as one row
    (id, observed_at, origin, body_sha256, server_time), or none. ``stream`` and ``at``
    are SQL expressions (a parameter, or a column of the enclosing query)."""
    op = "<" if strictly else "<="
    return (
        "(SELECT * FROM ("
        "(SELECT o.id, o.observed_at, o.origin, o.body_sha256, o.server_time"
        f" FROM observations o WHERE o.stream = {stream} AND o.outcome IN ({_OK})"
        f" AND o.observed_at {op} {at} ORDER BY o.observed_at DESC LIMIT 1)"
        " UNION ALL"
        " (SELECT p.id, p.observed_at, r.origin, r.body_sha256, NULL::timestamptz"
        f" FROM (SELECT * FROM observation_runs WHERE stream = {stream} AND first_at {op} {at}"
        f" ORDER BY first_at DESC LIMIT 1) r CROSS JOIN LATERAL {_UNPACK} p"
        f" WHERE p.observed_at {op} {at} ORDER BY p.observed_at DESC LIMIT 1)"
        ") AS u ORDER BY observed_at DESC LIMIT 1)"
    )


def first_success_after(stream: str, at: str) -> str:
    """SQL: the stream's first successful poll after ``at``: one row (id, observed_at)."""
    return (
        "(SELECT * FROM ("
        "(SELECT o.id, o.observed_at FROM observations o"
        f" WHERE o.stream = {stream} AND o.outcome IN ({_OK}) AND o.observed_at > {at}"
        " ORDER BY o.observed_at LIMIT 1)"
        " UNION ALL"
        " (SELECT p.id, p.observed_at"
        f" FROM (SELECT * FROM observation_runs WHERE stream = {stream} AND last_at > {at}"
        f" ORDER BY last_at LIMIT 1) r CROSS JOIN LATERAL {_UNPACK} p"
        f" WHERE p.observed_at > {at} ORDER BY p.observed_at LIMIT 1)"
        ") AS u ORDER BY observed_at LIMIT 1)"
    )


def successes_within(stream: str, start: str, end: str) -> str:
    """SQL: the instants (observed_at) of the stream's successful polls in [start, end),
    and the bodies they saw (body_sha256)."""
    return (
        "(SELECT o.observed_at, o.body_sha256 FROM observations o WHERE o.stream = {s}"
        f" AND o.outcome IN ({_OK}) AND o.observed_at >= {start} AND o.observed_at < {end}"
        " UNION ALL"
        " SELECT p.observed_at, r.body_sha256"
        f" FROM observation_runs r CROSS JOIN LATERAL {_UNPACK} p"
        " WHERE r.stream = {s}"
        f" AND r.last_at >= {start} AND r.first_at < {end}"
        f" AND p.observed_at >= {start} AND p.observed_at < {end})"
    ).replace("{s}", stream)


def folded_polls(runs: str, polls: str, limit: str) -> str:
    """SQL: the first ``limit`` folded polls (by instant, id) of the runs matching
    ``runs`` (conditions on ``r``) that match ``polls`` (on ``p.observed_at``), as rows of
    core.history.ObservationRow: what folding gave up is NULL, what all polls of a run
    share is the run's.

    Only the runs that can hold those polls are unpacked, not every run of a long window:
    taken by ``first_at``, every run but one per stream (the one already running at the
    window's start) has its first poll in the window, so the first ``limit`` polls lie in
    the first ``limit`` runs plus one per stream (ties on ``first_at`` broken by id, as
    polls are).
    """
    return (
        "SELECT p.id, r.stream, r.replica_id, p.observed_at, NULL::timestamptz,"
        " NULL::integer, 'unchanged'::text, r.http_status, NULL::integer, NULL::text,"
        " NULL::integer, NULL::text, NULL::smallint, NULL::integer, r.source"
        f" FROM (SELECT * FROM observation_runs r WHERE {runs} ORDER BY r.first_at, r.first_id"
        f"  LIMIT {limit} + (SELECT count(*) FROM stream_heads)) AS r"
        f" CROSS JOIN LATERAL {_UNPACK} p WHERE {polls}"
        f" ORDER BY p.observed_at, p.id LIMIT {limit}"
    )
