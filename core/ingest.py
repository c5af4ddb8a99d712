"""Writing observations and the versions they change (DESIGN §5, §6).

One observation is one transaction: the stream's head row is locked first, so writes of a
stream are serialised across every replica; an observation no newer than the last one
applied is recorded as ``stale`` and changes nothing; a failed fetch or a body that does
not parse is an ``error`` observation and changes nothing. An observation is dated by the
body's ``serverTime`` only when it agrees with the request's window on the database clock
(core.dating); otherwise the database clock dates it and the disagreement is recorded.

Cost is kept proportional to what changed. A body byte-identical (volatile fields
blanked) to the last applied one is ``unchanged`` without being parsed, once the writer
holds the state that body left. Otherwise each
entity's canonical JSON is hashed and compared with the hashes of the current versions,
held in memory and trusted only while the stream head says nobody else wrote since; typed
rows are built only for entities that changed, and written with ``COPY``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Integer, text
from sqlalchemy.dialects.postgresql import JSONB

from core.bodies import documents_shared, load_document
from core.config import PollerSettings
from core.dating import RequestWindow, Skew, date_observation
from core.leases import HELD, Lease, held_params
from core.models import SUCCESS_OUTCOMES, VERSIONED_TABLES
from core.schema import SCHEMA_TABLE, document_shape, schema_object, schema_row
from core.stats import duration_bucket
from core.streams import BODY_REDACTIONS, PRIVATE_STREAMS
from core.streams import stream as declared_stream

log = logging.getLogger(__name__)

Key = tuple[Any, ...]


class InvalidPayloadError(ValueError):
    """The body is not a complete, valid document of its stream; nothing may be closed."""


@dataclass(frozen=True, slots=True)
class SourceMismatch:
    stream: str
    held: str  # the source the database holds the stream's history of
    configured: str


class SourceMismatchError(Exception):
    """A poller polls streams from another source than their histories'; one line says so."""

    def __init__(self, mismatches: Sequence[SourceMismatch]) -> None:
        self.mismatches = list(mismatches)
        super().__init__(
            "; ".join(
                f"the database holds the {m.stream} history of {m.held},"
                f" this poller is configured for {m.configured}"
                for m in self.mismatches
            )
        )


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity as observed: its hash, its canonical JSON and the parsed source."""

    content_hash: bytes
    canonical: bytes
    source: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Group:
    """The entities of a table that one object of the body holds (a symbol's own fields, or
    its filters), built only when the object's ``digest`` is not the one it had in the
    current state: a day's change leaves most symbols as they were, and building an
    entity (canonical JSON and its hash) is most of a changed poll's Python time."""

    digest: bytes  # of the object's JSON text
    build: Callable[[], dict[Key, Entity]]  # raises InvalidPayloadError as a parser would


@dataclass(frozen=True, slots=True)
class KindSnapshot:
    """Every entity of one versioned table in a complete response.

    ``to_row`` turns a source object into the table's typed columns (all but the key,
    ``raw`` and the bookkeeping); it is called only for entities that changed. ``keeps``,
    if given, names the current keys absent from ``entities`` that the response holds no
    evidence about: they stay as they are, neither closed nor reopened. ``groups`` holds
    entities not yet built, by group key, and ``group_of`` names the group of an entity key.
    """

    table: str
    entities: dict[Key, Entity]
    to_row: Callable[[Mapping[str, Any]], dict[str, Any]]
    keeps: Callable[[Key], bool] | None = None
    groups: dict[Key, Group] = field(default_factory=dict)
    group_of: Callable[[Key], Key] | None = None

    def every_entity(self) -> dict[Key, Entity]:
        """Every entity, each group built: for readers of a whole snapshot (tests, tools)."""
        entities = dict(self.entities)
        for group in self.groups.values():
            entities.update(group.build())
        return entities


Snapshot = list[KindSnapshot]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a poll brought back, before anything is decided about it."""

    stream: str
    replica_id: str
    requested_at: datetime
    duration_ms: int
    http_status: int | None = None
    used_weight: int | None = None
    body: bytes | None = None  # volatile fields already blanked (see poller.parse)
    server_time: datetime | None = None
    error_class: str | None = None  # set when the fetch failed: nothing to parse
    error_code: int | None = None
    error_message: str | None = None
    attempts: int | None = None  # requests sent, retries included
    backoff_ms: int | None = None  # time spent waiting between them
    # time.monotonic() in this process when the poll's first request went out: with it
    # the writer places the request on the database clock and checks ``server_time``
    # against it. None (one-off writers: tests, imports): ``server_time`` is taken as is.
    sent_monotonic: float | None = None
    # Where it was polled from (core.sources); None for one-off writers that name none.
    source: str | None = None
    # An archive's document is dated by its own instant, not by when it is written: set by
    # imports (with ``origin``, where it came from); the writer then takes it as is.
    observed_at: datetime | None = None
    origin: str | None = None
    # Sent before a poll of the same writer that was applied already (an immediate poll
    # beside a slot's): older than what is applied, however the two were dated.
    overtaken: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    observation_id: int
    outcome: str
    observed_at: datetime
    opened: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    server_time_skew: Skew | None = None  # set when serverTime did not date it
    # Why the writer refused what was fetched (an invalid body, a lost lease), for the
    # log: a failure of the fetch itself is the fetch's to tell.
    refusal: str | None = None


def content_hash(canonical: bytes) -> bytes:
    return hashlib.blake2b(canonical, digest_size=16).digest()


def object_digest(obj: Any) -> bytes:
    """A group's digest (Group): the hash of the object's JSON text, keys in the order the
    body gave them (no sorting: an object that Binance reorders is only built again)."""
    return content_hash(orjson.dumps(obj))


def canonical_entity(obj: Mapping[str, Any]) -> Entity:
    # orjson's bytes keep their over-allocated buffer (~4.5 KB for a ~150 byte filter):
    # held for 23,000 entities that was ~100 MB, so keep an exact-size copy instead.
    canonical = bytes(memoryview(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)))
    return Entity(content_hash(canonical), canonical, obj)


@dataclass
class CurrentState:
    """The current versions' hashes as of ``observation_id`` (None: not loaded), and the
    digests of the groups (Group) they were built from, when this process built them."""

    observation_id: int | None = None
    hashes: dict[str, dict[Key, bytes]] = field(default_factory=dict)
    digests: dict[str, dict[Key, bytes]] = field(default_factory=dict)
    # The current keys of each group, by table (found from ``hashes`` when missing).
    members: dict[str, dict[Key, list[Key]]] = field(default_factory=dict)


class StreamWriter:
    """Records one stream's observations; holds that stream's current-state cache."""

    def __init__(
        self,
        engine: Engine,
        stream: str,
        server_time_tolerance: timedelta | None = None,
    ) -> None:
        """``server_time_tolerance``: ``[poller] server_time_tolerance_seconds``, default if None."""
        self.engine = engine
        self.stream = stream
        self.server_time_tolerance = (
            PollerSettings().server_time_tolerance()
            if server_time_tolerance is None
            else server_time_tolerance
        )
        self._state = CurrentState()
        self._foresight: _Foresight | None = None

    def record(
        self,
        fetched: Fetched,
        parse: Callable[[bytes], Snapshot] | None = None,
        lease: Lease | None = None,
    ) -> Recorded:
        """Record ``fetched``; with a ``lease``, apply it only while that term is in force.

        A poller always passes the lease it polled under (fencing, core.leases); None is
        for one-off writers that are not in a race with replicas (tests, imports).
        """
        return self._write([fetched], parse, lease)[0]

    def record_many(
        self,
        fetched: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot],
        upcoming: Sequence[Fetched] = (),
    ) -> list[Recorded]:
        """Record ``fetched`` in its order, in one transaction, as ``record`` would one by one.

        For writers that hold many documents at once (imports): a version that one of them
        opens and a later one closes is inserted already closed, never updated (_Versions),
        and the batch pays one commit. No lease: nothing races an import (poller.archive).
        ``upcoming``, the documents the next call will bring, are planned meanwhile
        (_Foresight); call ``close`` once done with the writer.
        """
        return self._write(fetched, parse, None, upcoming)

    def record_in(
        self,
        conn: Connection,
        fetched: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot],
        upcoming: Sequence[Fetched] = (),
    ) -> list[Recorded]:
        """``record_many`` within the caller's transaction on ``conn``, which decides when
        it commits: for a writer whose documents must share a transaction with other
        statements (an import prepended before live history, poller.archive). Whatever
        this writer holds in memory is only as good as that commit: use a fresh writer
        for each such transaction, and drop it afterwards."""
        batch = [self._redacted(f) for f in fetched]
        try:
            with _collector_paused():
                written, self._state = self._record_batch(conn, batch, parse, None, upcoming)
        except BaseException:
            self._state = CurrentState()
            self.close()
            raise
        return written

    def close(self) -> None:
        """Stop planning ahead (record_many's ``upcoming``) and wait for its thread."""
        if self._foresight is not None:
            self._foresight.close()
            self._foresight = None

    def _write(
        self,
        batch: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot] | None,
        lease: Lease | None,
        upcoming: Sequence[Fetched] = (),
    ) -> list[Recorded]:
        batch = [self._redacted(f) for f in batch]
        try:
            with _collector_paused(), self.engine.begin() as conn:
                written, state = self._record_batch(conn, batch, parse, lease, upcoming)
        except BaseException:
            self._state = CurrentState()  # what we hold may not match what committed
            self.close()
            raise
        self._state = state
        for fetched, recorded in zip(batch, written, strict=True):
            if recorded.server_time_skew is not None:
                # Logged once committed, like every outcome: a write that rolled back is no news.
                log.warning(
                    "%s: serverTime %s is %s the request's window by more than %g s;"
                    " observation %d dated %s by the database clock (%s)",
                    self.stream,
                    fetched.server_time.isoformat() if fetched.server_time else None,
                    "ahead of" if recorded.server_time_skew is Skew.AHEAD else "behind",
                    self.server_time_tolerance.total_seconds(),
                    recorded.observation_id,
                    recorded.observed_at.isoformat(),
                    recorded.outcome,
                )
        return written

    def _record_batch(
        self,
        conn: Connection,
        batch: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot] | None,
        lease: Lease | None,
        upcoming: Sequence[Fetched] = (),
    ) -> tuple[list[Recorded], CurrentState]:
        """Record ``batch`` (redacted) on ``conn``; what was recorded, and the state after.
        ``upcoming`` is planned in a thread from that state on while the batch's versions
        are written (_Foresight)."""
        state = self._state
        written: list[Recorded] = []
        versions = _Versions()
        for fetched in batch:
            recorded, new_state = self._record(conn, fetched, parse, lease, state, versions)
            written.append(recorded)
            state = state if new_state is None else new_state
        self.close()
        if upcoming and parse is not None:
            ahead = [self._redacted(f) for f in upcoming]
            self._foresight = _Foresight(self.stream, ahead, parse, state)
        versions.write(conn)
        return written, state

    def _redacted(self, fetched: Fetched) -> Fetched:
        """``fetched`` with its body as the stream keeps bodies (core.streams.Stream.redact).

        Done here, before the body is hashed, stored or parsed, rather than by the poller,
        so that no writer of the stream (a poller, an import, a test) can keep more.
        """
        redact = BODY_REDACTIONS.get(self.stream)
        if redact is None or fetched.body is None:
            return fetched
        try:
            return replace(fetched, body=redact(fetched.body))
        except ValueError as exc:
            # What cannot be read cannot be cleaned: none of it is kept.
            return replace(
                fetched,
                body=None,
                error_class=fetched.error_class or "invalid_payload",
                error_message=fetched.error_message or str(exc)[:2000],
            )

    def _record(
        self,
        conn: Connection,
        fetched: Fetched,
        parse: Callable[[bytes], Snapshot] | None,
        lease: Lease | None,
        state: CurrentState,
        versions: _Versions,
    ) -> tuple[Recorded, CurrentState | None]:
        head = _lock_head(conn, self.stream, lease)
        if fetched.source is not None and fetched.source != head.source:
            if head.source is not None:
                # Another replica moved the history while this one polled the old source.
                raise SourceMismatchError(
                    [SourceMismatch(self.stream, head.source, fetched.source)]
                )
            _set_head_source(conn, self.stream, fetched.source)
        observed_at, skew = self._date(head, fetched)
        body_sha = hashlib.sha256(fetched.body).digest() if fetched.body is not None else None
        if body_sha is not None and body_sha != head.last_body_sha256:
            # The head's body is stored already: an unchanged poll sends no body.
            _store_body(conn, body_sha, fetched.body or b"")
        dated = (fetched, observed_at, body_sha, head)
        if skew is None:
            return self._apply_dated(conn, *dated, parse, lease, state, versions)
        conn.execute(
            text(
                "UPDATE stream_heads SET server_time_rejections = server_time_rejections + 1"
                " WHERE stream = :s"
            ),
            {"s": self.stream},
        )
        recorded, new_state = self._apply_dated(conn, *dated, parse, lease, state, versions)
        return replace(recorded, server_time_skew=skew), new_state

    def _apply_dated(
        self,
        conn: Connection,
        fetched: Fetched,
        observed_at: datetime,
        body_sha: bytes | None,
        head: _Head,
        parse: Callable[[bytes], Snapshot] | None,
        lease: Lease | None,
        known: CurrentState,
        versions: _Versions,
    ) -> tuple[Recorded, CurrentState | None]:
        """Record an observation whose time is settled: the stream's usual rules."""
        if fetched.error_class is not None or fetched.body is None or parse is None:
            obs_id = _insert_observation(conn, fetched, observed_at, "error", body_sha)
            return Recorded(obs_id, "error", observed_at), None

        if lease is not None and not head.lease_held:
            # Another replica's term began (or ours lapsed) while this poll was in flight:
            # what it brought back may predate, or race, that replica's writes.
            lost = _with_error(fetched, "lease_lost", f"lease term {lease.term} is over")
            obs_id = _insert_observation(conn, lost, observed_at, "stale", body_sha)
            refusal = f"lease_lost: lease term {lease.term} is over, nothing applied"
            return Recorded(obs_id, "stale", observed_at, refusal=refusal), None

        if fetched.overtaken or (
            head.last_applied_at is not None and observed_at <= head.last_applied_at
        ):
            obs_id = _insert_observation(conn, fetched, observed_at, "stale", body_sha)
            refusal = "a newer poll was applied first, nothing applied"
            return Recorded(obs_id, "stale", observed_at, refusal=refusal), None

        # Unparsed only while the state it leaves is held: a writer that holds none (a
        # replica that just started, or one that another replica's change left behind)
        # builds it now, from the body it has, so that the next change costs only its own
        # groups (Group) rather than every one of them, when a change is to be seen quickly.
        if body_sha == head.last_body_sha256 and known.observation_id == head.state_id:
            obs_id = _insert_unchanged(
                conn, fetched, observed_at, body_sha, self.stream, head.state_id
            )
            return Recorded(obs_id, "unchanged", observed_at), None

        foreseen = self._foresight.take(fetched.body) if self._foresight is not None else None
        try:
            if foreseen is not None:
                snapshot = foreseen.tables
            else:
                snapshot = _snapshot(self.stream, parse, fetched.body)
            state = self._current(conn, head.state_id, snapshot, known, versions)
            if foreseen is not None and foreseen.planned_on(state):
                plan = foreseen.plan
            else:
                if foreseen is not None:  # planned on another state: parsed again for this one
                    snapshot = _snapshot(self.stream, parse, fetched.body)
                plan = _plan(snapshot, state)
        except InvalidPayloadError as exc:
            failed = _with_error(fetched, "invalid_payload", str(exc))
            obs_id = _insert_observation(conn, failed, observed_at, "error", body_sha)
            refusal = f"invalid_payload: {failed.error_message}"
            return Recorded(obs_id, "error", observed_at, refusal=refusal), None

        outcome = "changed" if plan.has_changes else "unchanged"
        obs_id = _insert_observation(conn, fetched, observed_at, outcome, body_sha)
        opened, closed = versions.add(plan, observed_at, obs_id)
        state_id = obs_id if plan.has_changes else head.state_id
        _advance_head(conn, self.stream, observed_at, obs_id, body_sha, state_id)
        new_state = _state_after(state_id, snapshot, plan)
        return Recorded(obs_id, outcome, observed_at, opened, closed), new_state

    def _date(self, head: _Head, fetched: Fetched) -> tuple[datetime, Skew | None]:
        if fetched.observed_at is not None:
            return fetched.observed_at, None
        if fetched.server_time is None:
            return head.transaction_start, None
        if fetched.sent_monotonic is None:
            return fetched.server_time, None
        window = _request_window(head, fetched.sent_monotonic)
        return date_observation(fetched.server_time, window, self.server_time_tolerance)

    def _current(
        self,
        conn: Connection,
        state_id: int | None,
        snapshot: Snapshot,
        known: CurrentState,
        versions: _Versions,
    ) -> CurrentState:
        tables = {k.table for k in snapshot}
        if known.observation_id == state_id and tables <= known.hashes.keys():
            return known
        if versions.pending:
            # The database lacks this transaction's versions yet: what it holds is not current.
            raise RuntimeError(f"{self.stream}: current state lost within a transaction")
        log.debug("loading current versions of %s from the database", self.stream)
        return CurrentState(
            state_id, {t: _load_current_hashes(conn, t, self.stream) for t in tables}
        )


def _snapshot(stream: str, parse: Callable[[bytes], Snapshot], body: bytes) -> Snapshot:
    """``body`` parsed, with its shape for a public stream; InvalidPayloadError if refused."""
    with documents_shared():
        snapshot = parse(body)
        if stream not in PRIVATE_STREAMS:
            snapshot = [*snapshot, _schema_kind(stream, body)]
    return snapshot


def _state_after(state_id: int | None, snapshot: Snapshot, plan: _Plan) -> CurrentState:
    return CurrentState(
        state_id,
        {k.table: plan.hashes[k.table] for k in snapshot},
        {k.table: plan.digests[k.table] for k in snapshot},
        {k.table: plan.members[k.table] for k in snapshot if k.table in plan.members},
    )


@dataclass(frozen=True, slots=True)
class _Foreseen:
    """A document planned ahead of its turn, and the state it was planned on. ``tables``
    is its snapshot emptied, naming the tables alone: a snapshot's groups hold the whole
    decoded document (~16 MB), and a plan found wrong in its turn is parsed again."""

    body: bytes
    tables: Snapshot
    plan: _Plan
    base: CurrentState

    def planned_on(self, state: CurrentState) -> bool:
        """Whether ``state`` is the very state this was planned on (the same objects: a
        plan reads only its tables' hashes and digests, and these are never changed)."""
        return all(
            state.hashes.get(k.table) is self.base.hashes.get(k.table)
            and state.digests.get(k.table) is self.base.digests.get(k.table)
            for k in self.tables
        )


class _Foresight:
    """An import's next documents parsed and planned in a thread, ahead of their turn.

    A batch's versions are sent to the database at its end (_Versions), and inserting them
    takes the database about as long as planning the batch takes Python (bench P12, a
    real-size snapshot: ~120 ms of the backend's CPU against ~180 ms here), while this
    process waits. The next batch is planned meanwhile, each document on the state the
    one before it leaves: when its turn comes, its plan is used only if the writer's state
    is then exactly that one (a document refused or applied otherwise leaves another), else
    it is parsed and planned again as if nothing had been foreseen. Errors are left for the
    writer to meet in its turn. Holds at most one batch's plans.
    """

    def __init__(
        self,
        stream: str,
        fetched: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot],
        base: CurrentState,
    ) -> None:
        self._stream = stream
        self._parse = parse
        self._bodies = [f.body for f in fetched if f.error_class is None and f.body is not None]
        # By position: two documents may share one body object (the same content again).
        self._ready: list[_Foreseen | None] = []
        self._next = 0  # the first position not yet taken or passed over
        self._done = threading.Condition()
        self._stopped = False
        self._finished = False
        self._thread = threading.Thread(
            target=self._run, args=(base,), name=f"foresight-{stream}", daemon=True
        )
        self._thread.start()

    def _run(self, base: CurrentState) -> None:
        try:
            for body in self._bodies:
                if self._stopped:
                    return
                foreseen = None
                # The collector is paused for each document alone: held across documents,
                # it would stay off from batch to batch for a whole import (the writer's
                # own pause takes over before this one ends), and garbage with cycles
                # would pile up meanwhile.
                try:
                    with _collector_paused():
                        snapshot = _snapshot(self._stream, self._parse, body)
                        plan = _plan(snapshot, base)
                        tables = [replace(k, entities={}, groups={}) for k in snapshot]
                        foreseen = _Foreseen(body, tables, plan, base)
                        base = _state_after(None, snapshot, plan)
                        del snapshot
                except Exception:  # the writer meets it again in its turn, and decides
                    log.debug("%s: a document could not be planned ahead", self._stream)
                with self._done:
                    self._ready.append(foreseen)
                    self._done.notify_all()
        finally:
            with self._done:
                self._finished = True
                self._done.notify_all()

    def take(self, body: bytes | None) -> _Foreseen | None:
        """The plan of the next document planned ahead that is ``body``, once ready; None
        if none is. Those before it were passed over by the writer (stale, unchanged) and
        are dropped."""
        at = next(
            (i for i in range(self._next, len(self._bodies)) if self._bodies[i] is body), None
        )
        if at is None:
            return None
        passed, self._next = self._next, at + 1
        with self._done:
            self._done.wait_for(lambda: len(self._ready) > at or self._finished)
            if len(self._ready) <= at:
                return None
            foreseen = self._ready[at]
            self._ready[passed : at + 1] = [None] * (at + 1 - passed)
        return foreseen

    def close(self) -> None:
        self._stopped = True
        self._thread.join()


class _CollectorPause:
    """Python's cycle collector held off while any writer parses and plans a snapshot.

    A whole-exchange body decodes into ~300,000 dicts and lists that live until its plan
    is written: the collector, triggered by their allocation, scans them (and everything
    else alive, an import's batch included) again and again, and found nothing, since a
    decoded document holds no cycles. Measured: more than half of an import's time and a
    decode 10 to 20 times slower than alone. Counted, so that writers of several streams
    in threads pause it together; the collector resumes when the last one is done. Held
    for the whole transaction (its waits on the database included), so that the document
    is freed, by reference counting, before the collector looks again: resumed right
    after the plan, its first collection would scan every object of it once more.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers = 0
        self._resume = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._writers == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._writers += 1
        try:
            yield
        finally:
            with self._lock:
                self._writers -= 1
                if self._writers == 0 and self._resume:
                    gc.enable()


_collector_paused = _CollectorPause()


@dataclass(frozen=True, slots=True)
class Switch:
    """A stream's history moved from ``old`` to ``new``, recorded as ``recorded``."""

    stream: str
    old: str
    new: str
    recorded: Recorded


def claim_sources(
    engine: Engine, sources: Mapping[str, str], replica_id: str, *, new_source: bool = False
) -> list[Switch]:
    """Check, at a poller's start, that each stream's history is of its configured source.

    A stream with no source yet (new, or recorded before sources were) takes the
    configured one. One held by another source raises SourceMismatchError and nothing is
    written, unless ``new_source``: then its history moves to the configured source (a
    ``switched`` observation, see the module's docstring). The heads are locked, in one
    order, so replicas that start together agree on one source per stream; claiming a
    source a stream already has is a no-op, so a restart with ``new_source`` moves nothing.
    """
    with engine.begin() as conn:
        heads = {stream: _lock_head(conn, stream) for stream in sorted(sources)}
        mismatches = [
            SourceMismatch(stream, head.source, sources[stream])
            for stream, head in heads.items()
            if head.source is not None and head.source != sources[stream]
        ]
        if mismatches and not new_source:
            raise SourceMismatchError(mismatches)
        for stream, head in heads.items():
            if head.source is None:
                _set_head_source(conn, stream, sources[stream])
        switches = [
            Switch(m.stream, m.held, m.configured, _switch(conn, m, heads[m.stream], replica_id))
            for m in mismatches
        ]
    for switch in switches:  # once committed, like every outcome
        log.warning(
            "%s: history moved from %s to %s by observation %d; closed %s",
            switch.stream,
            switch.old,
            switch.new,
            switch.recorded.observation_id,
            switch.recorded.closed or "nothing",
        )
    return switches


def _switch(conn: Connection, m: SourceMismatch, head: _Head, replica_id: str) -> Recorded:
    """Close every current version of the stream and hand its head to the new source.

    The versions to close are those opened by the stream's own observations, found from
    the data rather than from a list of each stream's tables. The instant is the database
    clock's, past the newest applied observation (which serverTime may have dated a little
    ahead), so no closed range is empty and the new source's polls come after it.
    """
    at: datetime = conn.execute(
        text(
            "SELECT greatest(clock_timestamp(),"
            " CAST(:last AS timestamptz) + interval '1 microsecond')"
        ),
        {"last": head.last_applied_at},
    ).scalar_one()
    marker = Fetched(
        stream=m.stream,
        replica_id=replica_id,
        requested_at=at,
        duration_ms=0,
        error_message=f"history moved from {m.held} to {m.configured}",
        attempts=0,
        source=m.configured,
    )
    obs_id = _insert_observation(conn, marker, at, "switched", None)
    closed: dict[str, int] = {}
    for table in VERSIONED_TABLES:
        count = conn.execute(
            text(
                f"UPDATE {table} AS t SET valid_to = :at, closed_by = :obs"
                " WHERE t.valid_to IS NULL AND EXISTS (SELECT FROM observations o"
                " WHERE o.id = t.opened_by AND o.stream = :s)"
            ),
            {"at": at, "obs": obs_id, "s": m.stream},
        ).rowcount
        if count:
            closed[table] = count
    conn.execute(
        text(
            "UPDATE stream_heads SET source = :source, last_applied_at = :at,"
            " last_observation_id = :obs, last_body_sha256 = NULL, state_observation_id = :obs"
            " WHERE stream = :s"
        ),
        {"source": m.configured, "at": at, "obs": obs_id, "s": m.stream},
    )
    return Recorded(obs_id, "switched", at, closed=closed)


@dataclass(frozen=True, slots=True)
class Seam:
    """Where history prepended before a stream's first observation meets the history on
    record: the stream's first successful observation, which opened its first versions."""

    observation_id: int
    observed_at: datetime


# The head's columns that describe the stream's applied state (not its source or counters).
_HEAD_STATE = ("last_applied_at", "last_observation_id", "last_body_sha256", "state_observation_id")


class Prepending:
    """Documents written through a StreamWriter before every observation of the stream,
    in one transaction that holds the stream's head (``prepending``).

    The writer applies observations in time order onto the current versions, so it is
    shown an empty stream: the stream's versions are moved aside (into temporary tables),
    its head's state cleared, and the documents recorded on this transaction's connection
    as polls of a new stream would be. ``finish`` then closes the prepended versions still
    open at the seam (the first successful observation on record, as if it had seen them
    change, vanish or stay: an entity the same on both sides is two versions with nothing
    between them to diff) and puts the versions and the head back exactly as they were: no
    row of the history on record changes, and each replica's cached current state (keyed
    by the head's ``state_observation_id``) stays true.
    """

    def __init__(self, conn: Connection, engine: Engine, stream: str) -> None:
        self.conn = conn
        self.stream = stream
        _lock_head(conn, stream)
        self._head = conn.execute(
            text(f"SELECT {', '.join(_HEAD_STATE)} FROM stream_heads WHERE stream = :s"),
            {"s": stream},
        ).one()
        first = first_success(conn, stream)
        self.seam = Seam(first[0], first[1]) if first is not None else None
        self._tables = _stream_tables(stream)
        for table in self._tables:
            conn.execute(
                text(f"CREATE TEMPORARY TABLE aside_{table} (LIKE {table}) ON COMMIT DROP")
            )
            conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM {table} t WHERE {_own_rows(table)}"
                    f" RETURNING t.*) INSERT INTO aside_{table} SELECT * FROM moved"
                ),
                {"s": stream},
            )
        conn.execute(
            text(
                f"UPDATE stream_heads SET {', '.join(f'{c} = NULL' for c in _HEAD_STATE)}"
                " WHERE stream = :s"
            ),
            {"s": stream},
        )
        self.writer = StreamWriter(engine, stream)
        self.closed: dict[str, int] = {}

    def record(
        self,
        fetched: Sequence[Fetched],
        parse: Callable[[bytes], Snapshot],
        upcoming: Sequence[Fetched] = (),
    ) -> list[Recorded]:
        return self.writer.record_in(self.conn, fetched, parse, upcoming)

    def finish(self) -> None:
        """Close the prepended versions at the seam (counted in ``closed``, per table) and
        put the history on record back.

        A stream with no success on record (only failed polls) has no versions and no
        seam: what was prepended is its whole current state, and its head stays where
        the writer left it, at the newest prepended document.
        """
        closed = self.closed
        for table in self._tables:
            if self.seam is not None:
                count = self.conn.execute(
                    text(
                        f"UPDATE {table} t SET valid_to = :at, closed_by = :obs"
                        f" WHERE t.valid_to IS NULL AND {_own_rows(table)}"
                    ),
                    {
                        "at": self.seam.observed_at,
                        "obs": self.seam.observation_id,
                        "s": self.stream,
                    },
                ).rowcount
                if count:
                    closed[table] = count
            self.conn.execute(text(f"INSERT INTO {table} SELECT * FROM aside_{table}"))
        if self.seam is None:
            return
        self.conn.execute(
            text(
                f"UPDATE stream_heads SET {', '.join(f'{c} = :{c}' for c in _HEAD_STATE)}"
                " WHERE stream = :s"
            ),
            {**self._head._asdict(), "s": self.stream},
        )


def first_success(conn: Connection, stream: str) -> tuple[int, datetime, str] | None:
    """The stream's first successful observation (id, instant, outcome), where history
    prepended before it ends (Prepending); None if it has none.

    Never folded (core.obslog: a run's polls follow a change): one index walk, past the
    failed polls before it if any.
    """
    row = conn.execute(
        text(
            "SELECT id, observed_at, outcome FROM observations WHERE stream = :s"
            " AND outcome = ANY(:ok) ORDER BY observed_at, id LIMIT 1"
        ),
        {"s": stream, "ok": list(SUCCESS_OUTCOMES)},
    ).one_or_none()
    return (row[0], row[1], row[2]) if row is not None else None


@contextmanager
def prepending(engine: Engine, stream: str) -> Iterator[Prepending]:
    """A Prepending in its own transaction, finished and committed when the block ends
    normally, rolled back (nothing written) if it raises. The stream's writes (its
    pollers included) wait on its head until then."""
    with engine.begin() as conn:
        prepend = Prepending(conn, engine, stream)
        yield prepend
        prepend.finish()


def _stream_tables(stream: str) -> tuple[str, ...]:
    """The versioned tables holding ``stream``'s versions: its own, and its shapes'."""
    own = declared_stream(stream).tables
    return own if stream in PRIVATE_STREAMS else (*own, SCHEMA_TABLE)


def _own_rows(table: str) -> str:
    """SQL: the rows of ``table`` (aliased ``t``) that are the stream ``:s``'s: a table
    keyed by stream holds every stream's rows, any other only its one stream's."""
    return "t.stream = :s" if "stream" in _key_columns(table) else "TRUE"


def _set_head_source(conn: Connection, stream: str, source: str) -> None:
    conn.execute(
        text("UPDATE stream_heads SET source = :source WHERE stream = :s"),
        {"source": source, "s": stream},
    )


@dataclass(frozen=True, slots=True)
class _Head:
    last_applied_at: datetime | None
    last_body_sha256: bytes | None
    state_id: int | None
    source: str | None
    # The database clock read with the head, so that dating an observation costs no
    # round trip of its own: now() (the transaction's start) and clock_timestamp(), and
    # time.monotonic() once that answer was in.
    transaction_start: datetime
    database_now: datetime
    read_monotonic: float
    # Whether the lease the write was polled under is still in force (held so until the
    # transaction ends); None when it names no lease.
    lease_held: bool | None


@dataclass
class _Plan:
    hashes: dict[str, dict[Key, bytes]]
    close: dict[str, list[Key]]
    insert: dict[str, list[tuple[Key, Entity, dict[str, Any]]]]
    digests: dict[str, dict[Key, bytes]] = field(default_factory=dict)
    members: dict[str, dict[Key, list[Key]]] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(self.close.values()) or any(self.insert.values())


def _request_window(head: _Head, sent_monotonic: float) -> RequestWindow:
    """The poll's send/receive window on the database clock (never a replica's clock).

    The head was read after the response was received, and the elapsed time is measured
    after the database answered, so the window can only come out wider than the real
    one, and its end is no earlier than the receipt.
    """
    elapsed = timedelta(seconds=max(0.0, head.read_monotonic - sent_monotonic))
    return RequestWindow(head.database_now - elapsed, head.database_now)


def _with_error(fetched: Fetched, error_class: str, message: str) -> Fetched:
    return replace(fetched, error_class=error_class, error_message=message[:2000])


# The statements of every poll, built once: parsing a statement's text for its bind
# parameters costs a no-change poll about as much CPU as its hash of the body.
_HEAD_SQL = (
    "SELECT last_applied_at, last_body_sha256, state_observation_id, source,"
    " now(), clock_timestamp(), {held} FROM stream_heads WHERE stream = :s"
    " FOR UPDATE OF stream_heads"
)
_LOCK_HEAD = text(_HEAD_SQL.format(held="NULL"))
_LOCK_HEAD_UNDER_LEASE = text(_HEAD_SQL.format(held=HELD))


def _lock_head(conn: Connection, stream: str, lease: Lease | None = None) -> _Head:
    """The stream's head, locked until the transaction ends; created on its first write.

    Read first and created only when missing, with the database clock and whether
    ``lease`` is in force: a stream's every poll after its first takes one round trip here.
    """
    lock = _LOCK_HEAD if lease is None else _LOCK_HEAD_UNDER_LEASE
    params: dict[str, object] = {"s": stream}
    if lease is not None:
        params.update(held_params(lease))
    row = conn.execute(lock, params).one_or_none()
    if row is None:
        conn.execute(
            text("INSERT INTO stream_heads (stream) VALUES (:s) ON CONFLICT (stream) DO NOTHING"),
            {"s": stream},
        )
        row = conn.execute(lock, params).one()
    return _Head(row[0], row[1], row[2], row[3], row[4], row[5], time.monotonic(), row[6])


def _store_body(conn: Connection, sha: bytes, body: bytes) -> None:
    conn.execute(
        text(
            "INSERT INTO raw_bodies (sha256, body, size) VALUES (:sha, :body, :size)"
            " ON CONFLICT (sha256) DO NOTHING"
        ),
        {"sha": sha, "body": body, "size": len(body)},
    )


# An observation and its count in ``poll_totals``: one statement.
_COUNTED = (
    "counted AS (INSERT INTO poll_totals AS t (stream, outcome, error_class,"
    " duration_bucket, polls, requests, retries, backoff_ms, duration_ms) VALUES"
    " (:stream, :outcome, :total_error_class, :bucket, 1, :requests, :retries,"
    " :total_backoff_ms, :duration_ms)"
    " ON CONFLICT (stream, outcome, error_class, duration_bucket) DO UPDATE SET"
    " polls = t.polls + 1, requests = t.requests + excluded.requests,"
    " retries = t.retries + excluded.retries,"
    " backoff_ms = t.backoff_ms + excluded.backoff_ms,"
    " duration_ms = t.duration_ms + excluded.duration_ms)"
)
_OBSERVED = (
    "INSERT INTO observations (stream, replica_id, observed_at, requested_at,"
    " duration_ms, outcome, http_status, used_weight, error_class, error_code,"
    " error_message, body_sha256, attempts, backoff_ms, server_time, source, origin) VALUES"
    " (:stream, :replica, :observed_at, :requested_at, :duration_ms, :outcome,"
    " :http_status, :used_weight, :error_class, :error_code, :error_message,"
    " :body_sha, :attempts, :backoff_ms, :server_time, :source, :origin) RETURNING id"
)
_ADVANCE = (
    "UPDATE stream_heads SET last_applied_at = :at, last_observation_id = {obs},"
    " last_body_sha256 = :sha, state_observation_id = :state WHERE stream = :s"
)
_INSERT_OBSERVATION = text(f"WITH {_COUNTED} {_OBSERVED}")
# The same with the stream's head advanced to it, for an observation that changes nothing.
_INSERT_UNCHANGED = text(
    f"WITH {_COUNTED}, observed AS ({_OBSERVED}),"
    f" advanced AS ({_ADVANCE.format(obs='(SELECT id FROM observed)')})"
    " SELECT id FROM observed"
)
_ADVANCE_HEAD = text(_ADVANCE.format(obs=":obs"))


def _observation_params(
    f: Fetched, observed_at: datetime, outcome: str, body_sha: bytes | None
) -> dict[str, Any]:
    # Observations from before attempts were recorded count as one request, no retry.
    attempts = 1 if f.attempts is None else f.attempts
    return {
        "stream": f.stream,
        "replica": f.replica_id,
        "observed_at": observed_at,
        "requested_at": f.requested_at,
        "duration_ms": f.duration_ms,
        "outcome": outcome,
        "http_status": f.http_status,
        "used_weight": f.used_weight,
        "error_class": f.error_class,
        "error_code": f.error_code,
        "error_message": f.error_message,
        "body_sha": body_sha,
        "attempts": f.attempts,
        "backoff_ms": f.backoff_ms,
        # Kept only when it is not the observation's time: it did not date it.
        "server_time": f.server_time if f.server_time != observed_at else None,
        "source": f.source,
        "origin": f.origin,
        "total_error_class": f.error_class or "",
        "bucket": duration_bucket(f.duration_ms),
        "requests": attempts,
        "retries": max(attempts - 1, 0),
        "total_backoff_ms": f.backoff_ms or 0,
    }


def _insert_observation(
    conn: Connection, f: Fetched, observed_at: datetime, outcome: str, body_sha: bytes | None
) -> int:
    """Log the observation and count it in ``poll_totals`` (what /metrics reads)."""
    params = _observation_params(f, observed_at, outcome, body_sha)
    return int(conn.execute(_INSERT_OBSERVATION, params).scalar_one())


def _insert_unchanged(
    conn: Connection,
    f: Fetched,
    observed_at: datetime,
    body_sha: bytes | None,
    stream: str,
    state_id: int | None,
) -> int:
    """An ``unchanged`` observation as ``_insert_observation`` logs it, with the stream's
    head advanced to it as ``_advance_head`` does, in one statement."""
    params = _observation_params(f, observed_at, "unchanged", body_sha)
    params.update(at=observed_at, sha=body_sha, state=state_id, s=stream)
    return int(conn.execute(_INSERT_UNCHANGED, params).scalar_one())


def _advance_head(
    conn: Connection,
    stream: str,
    observed_at: datetime,
    obs_id: int,
    body_sha: bytes | None,
    state_id: int | None,
) -> None:
    conn.execute(
        _ADVANCE_HEAD,
        {"at": observed_at, "obs": obs_id, "sha": body_sha, "state": state_id, "s": stream},
    )


def _key_columns(table: str) -> tuple[str, ...]:
    return VERSIONED_TABLES[table].__key__


def _load_current_hashes(conn: Connection, table: str, stream: str) -> dict[Key, bytes]:
    """The current versions a stream's snapshot replaces: a table keyed by stream holds
    other streams' entities too, which this stream must neither see nor close."""
    key = _key_columns(table)
    own = " AND stream = :stream" if "stream" in key else ""
    rows = conn.execute(
        text(f"SELECT {', '.join(key)}, content_hash FROM {table} WHERE valid_to IS NULL{own}"),
        {"stream": stream},
    )
    return {tuple(r[:-1]): r[-1] for r in rows}


def _schema_kind(stream: str, body: bytes) -> KindSnapshot:
    """The body's shape (core.schema) as versions of ``stream``'s paths.

    Taken here, once the stream's parser accepted the body, rather than in each parser:
    every stream gets it, and a body the parser refused records no shape either. The
    public streams only: whether the account's ``balances[]`` holds anything is private.
    """
    shape = document_shape(load_document(body))
    entities = {
        (stream, path): canonical_entity(schema_object(types))
        for path, types in shape.paths.items()
    }
    return KindSnapshot(SCHEMA_TABLE, entities, schema_row, lambda key: not shape.observed(key[1]))


def _plan(snapshot: Snapshot, state: CurrentState) -> _Plan:
    plan = _Plan({}, {}, {})
    for kind in snapshot:
        if kind.groups:
            _plan_groups(kind, state, plan)
        else:
            _plan_entities(kind, state, plan)
    return plan


def _plan_entities(kind: KindSnapshot, state: CurrentState, plan: _Plan) -> None:
    """A kind whose every entity is built: each compared with the current versions."""
    table, entities = kind.table, kind.entities
    current = state.hashes.get(table, {})
    new_hashes = {key: e.content_hash for key, e in entities.items()}
    if kind.keeps is not None:
        new_hashes.update(
            (k, h) for k, h in current.items() if k not in new_hashes and kind.keeps(k)
        )
    changed = [key for key, h in new_hashes.items() if current.get(key) != h]
    plan.hashes[table] = new_hashes
    plan.close[table] = [k for k in current if new_hashes.get(k) != current[k]]
    plan.insert[table] = [(k, entities[k], kind.to_row(entities[k].source)) for k in changed]
    plan.digests[table] = {}


def _plan_groups(kind: KindSnapshot, state: CurrentState, plan: _Plan) -> None:
    """A kind built by groups (Group): only the groups whose digest moved are built and
    compared, and only their current keys looked at, so that a change costs what it
    touches rather than a pass over every current version (~23,000 filters)."""
    assert not kind.entities, f"{kind.table}: a kind is built whole or by groups, not both"
    assert kind.keeps is None
    assert kind.group_of is not None
    table = kind.table
    current = state.hashes.get(table, {})
    known = state.digests.get(table, {})
    members = state.members.get(table)
    if members is None:
        members = defaultdict(list)
        for key in current:
            members[kind.group_of(key)].append(key)
    new_hashes = dict(current)
    new_members = dict(members)
    close: list[Key] = []
    opened: list[tuple[Key, Entity]] = []
    for name in [g for g in members if g not in kind.groups]:
        for key in new_members.pop(name):
            del new_hashes[key]
            close.append(key)
    for name, group in kind.groups.items():
        if known.get(name) == group.digest:
            continue
        built = group.build()
        for key in members.get(name, ()):
            if key not in built:
                del new_hashes[key]
                close.append(key)
        for key, entity in built.items():
            before = current.get(key)
            if before != entity.content_hash:
                if before is not None:
                    close.append(key)
                new_hashes[key] = entity.content_hash
                opened.append((key, entity))
        new_members[name] = list(built)
    plan.hashes[table] = new_hashes
    plan.close[table] = close
    plan.insert[table] = [(key, e, kind.to_row(e.source)) for key, e in opened]
    plan.digests[table] = {name: group.digest for name, group in kind.groups.items()}
    plan.members[table] = new_members


@dataclass(slots=True)
class _Version:
    """A version written by this transaction; ``valid_to`` set if a later one closed it."""

    key: Key
    entity: Entity
    values: dict[str, Any]
    valid_from: datetime
    opened_by: int
    valid_to: datetime | None = None
    closed_by: int | None = None


class _Versions:
    """The version writes of one transaction, sent once all its observations are planned.

    A version that an observation of the transaction opens and a later one closes (an
    import's batch) is inserted with its end, never inserted and then updated: an update
    writes the row again, into every index, the no-overlap GiST among them. The versions
    current before the transaction are closed first, then the new ones inserted, so the
    database checks every range against the others exactly as for a single poll.
    """

    def __init__(self) -> None:
        self.closing: dict[str, dict[Key, tuple[datetime, int]]] = defaultdict(dict)
        self.open: dict[str, dict[Key, _Version]] = defaultdict(dict)
        self.ended: dict[str, list[_Version]] = defaultdict(list)

    @property
    def pending(self) -> bool:
        return any(self.closing.values()) or any(self.open.values()) or any(self.ended.values())

    def add(self, plan: _Plan, at: datetime, obs_id: int) -> tuple[dict[str, int], dict[str, int]]:
        """Take ``plan``'s closes and opens at ``at``; what it opens and closes, per table."""
        opened: dict[str, int] = {}
        closed: dict[str, int] = {}
        for table, keys in plan.close.items():
            if keys:
                closed[table] = len(keys)
            for key in keys:
                version = self.open[table].pop(key, None)
                if version is None:
                    self.closing[table][key] = (at, obs_id)
                else:
                    version.valid_to, version.closed_by = at, obs_id
                    self.ended[table].append(version)
        for table, rows in plan.insert.items():
            if rows:
                opened[table] = len(rows)
            for key, entity, values in rows:
                self.open[table][key] = _Version(key, entity, values, at, obs_id)
        return opened, closed

    def write(self, conn: Connection) -> None:
        for table, closing in self.closing.items():
            if closing:
                _close_versions(conn, table, closing)
        written: dict[str, int] = {}
        for table in [*self.open, *(t for t in self.ended if t not in self.open)]:
            rows = [*self.ended[table], *self.open[table].values()]
            if rows:
                _copy_versions(conn, table, rows)
                written[table] = len(rows)
        if written:
            conn.execute(
                text(
                    "INSERT INTO version_totals AS t (table_name, versions)"
                    " SELECT * FROM unnest(CAST(:tables AS text[]), CAST(:counts AS bigint[]))"
                    " ON CONFLICT (table_name) DO UPDATE"
                    " SET versions = t.versions + excluded.versions"
                ),
                {"tables": list(written), "counts": list(written.values())},
            )


def _close_versions(
    conn: Connection, table: str, closing: Mapping[Key, tuple[datetime, int]]
) -> int:
    """End the current versions of ``closing``'s keys, each at its instant and observation."""
    key_cols = _key_columns(table)
    model_cols = VERSIONED_TABLES[table].__table__.c  # type: ignore[attr-defined]
    arrays = []
    params: dict[str, Any] = {
        "at": [at for at, _ in closing.values()],
        "obs": [obs for _, obs in closing.values()],
    }
    for i, col in enumerate(key_cols):
        sql_type = "int[]" if isinstance(model_cols[col].type, Integer) else "text[]"
        arrays.append(f"CAST(:k{i} AS {sql_type})")
        params[f"k{i}"] = [k[i] for k in closing]
    match = " AND ".join(f"t.{c} = k.c{i}" for i, c in enumerate(key_cols))
    names = ", ".join(f"c{i}" for i in range(len(key_cols)))
    result = conn.execute(
        text(
            f"UPDATE {table} AS t SET valid_to = k.at, closed_by = k.obs"
            f" FROM unnest({', '.join(arrays)}, CAST(:at AS timestamptz[]),"
            f" CAST(:obs AS bigint[])) AS k({names}, at, obs)"
            f" WHERE t.valid_to IS NULL AND {match}"
        ),
        params,
    )
    if result.rowcount != len(closing):
        raise RuntimeError(f"closed {result.rowcount} of {len(closing)} current rows of {table}")
    return len(closing)


def _jsonb_columns(table: str) -> set[str]:
    cols = VERSIONED_TABLES[table].__table__.c  # type: ignore[attr-defined]
    return {c.name for c in cols if isinstance(c.type, JSONB)}


def _copy_versions(conn: Connection, table: str, rows: list[_Version]) -> None:
    key_cols = _key_columns(table)
    value_cols = sorted(rows[0].values)
    jsonb = _jsonb_columns(table)
    columns = [
        *key_cols,
        "valid_from",
        "valid_to",
        "content_hash",
        "opened_by",
        "closed_by",
        "raw",
        *value_cols,
    ]
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with dbapi.cursor() as cur, cur.copy(statement) as copy:
        for v in rows:
            typed = [
                orjson.dumps(v.values[c]).decode()
                if c in jsonb and v.values[c] is not None
                else v.values[c]
                for c in value_cols
            ]
            copy.write_row(
                (
                    *v.key,
                    v.valid_from,
                    v.valid_to,
                    v.entity.content_hash,
                    v.opened_by,
                    v.closed_by,
                    v.entity.canonical.decode(),
                    *typed,
                )
            )
