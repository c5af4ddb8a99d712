"""The poll loop: a ``schedule.Scheduler`` per replica, stopped by an event.

The scheduler's loop is the one synchronous dispatcher of the design: it decides when each
slot is due and does nothing else. Each stream's polls run on a thread of the stream's own
(``StreamWorker``), as does the heartbeat, so a stream whose answer trickles in, whose
database write waits on a lock or whose budget wait lasts a minute holds up its own slots
and no other stream's. A slot never overlaps its stream's poll in flight: it is skipped,
and the log says so; only an immediate poll a realtime listener asked for starts beside
it (``StreamWorker``). Every request also has a total
deadline, at most 0.9 of its stream's interval (poller.binance), so a stuck answer ends
before the stream's next slot.

A stop request (SIGTERM, Ctrl-C) is answered within the grace period even while an HTTP
read is stuck; a database write in progress is always allowed to finish, because a write
cut short would only be rolled back, but a write finished is history kept.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import schedule
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from core import leases, obslog, replicas, signals
from core import streams as catalogue
from core.config import PollerSettings, Settings, base_url
from core.db import database_error
from core.ingest import Recorded, SourceMismatchError, StreamWriter, claim_sources
from core.leases import Lease, Refused
from core.weight_plan import plan_for
from poller.binance import BinanceClient, deadline_seconds
from poller.job import StreamJob, stream_job
from poller.listener import MarketListener, build_listeners
from poller.retry import RateGate, RetryingClient, RetryPolicy, SharedBudget, WeightBudget
from poller.signed_jobs import signed_jobs
from poller.triggers import ImmediatePolls

log = logging.getLogger(__name__)


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ScheduledJob:
    job: StreamJob
    interval: float


class Replica:
    """This replica's rows in the database: its heartbeat (core.replicas) and leases."""

    def __init__(
        self,
        engine: Engine,
        replica_id: str,
        lease_seconds: float,
        heartbeat_seconds: float = 5.0,
        version: str = "",
    ) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.version = version or _installed_version()

    def acquire(self, stream: str, interval: float, *, at_once: bool = False) -> Lease | Refused:
        with self.engine.connect() as conn:
            # Autocommit: taking a lease is one statement, so one round trip with no BEGIN
            # and COMMIT around it, at every slot of every stream.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            return leases.acquire(
                conn, stream, self.replica_id, interval, self.lease_seconds, at_once=at_once
            )

    def register(self) -> None:
        with self.engine.begin() as conn:
            replicas.register(conn, self.replica_id, self.version)

    def heartbeat(self) -> None:
        with self.engine.begin() as conn:
            replicas.heartbeat(conn, self.replica_id, self.version)

    def sign_off(self, streams: Sequence[str]) -> None:
        """Hand the streams over now; if the database is away, the leases lapse on their own."""
        try:
            with self.engine.begin() as conn:
                released = leases.release(conn, streams, self.replica_id)
                replicas.mark_stopped(conn, self.replica_id)
        except SQLAlchemyError as exc:
            log.warning("could not release leases (%s); they expire on their own", exc)
            return
        log.info("released %d lease(s) of replica %s", released, self.replica_id)


class Compaction:
    """Folds old unchanged polls into runs (core.obslog) every ``interval`` seconds.

    The first fold waits one interval: a starting replica has its streams to claim and
    poll first, and one that lives only minutes (a test, a demo) never rewrites the log.
    Several replicas may fold at once: each run is folded under its stream's head lock.
    """

    def __init__(
        self, engine: Engine, detail: timedelta, interval: float, stop: threading.Event
    ) -> None:
        self.engine = engine
        self.detail = detail
        self.interval = interval
        self.stop = stop
        self._due = False

    def __call__(self) -> None:
        if self._due:
            obslog.compact(self.engine, self.detail, self.stop)
        self._due = True


class DatabaseBackoff:
    """After a database error, leave the database alone for a while, then try again.

    A database that is down or restarting gets one attempt per back-off, not one per
    tick of every job, and the log one warning line per failed attempt, not a traceback
    per tick. The wait doubles from ``base`` up to ``cap``; one success resets it.
    """

    def __init__(
        self, base: float, cap: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.base = min(base, cap)
        self.cap = cap
        self.clock = clock
        self.failures = 0
        self.delay = 0.0
        self._retry_at = float("-inf")
        self._lock = threading.Lock()  # every stream's worker reports here

    def ready(self) -> bool:
        with self._lock:
            return self.clock() >= self._retry_at

    def failed(self, what: str, exc: SQLAlchemyError) -> None:
        with self._lock:
            self.delay = self.base if self.failures == 0 else min(self.cap, 2 * self.delay)
            self.failures += 1
            self._retry_at = self.clock() + self.delay
            delay = self.delay
        log.warning(
            "%s: database unavailable (%s); next attempt in %.1fs",
            what,
            database_error(exc),
            delay,
        )

    def succeeded(self) -> None:
        with self._lock:
            failures, self.failures = self.failures, 0
            self.delay = 0.0
            self._retry_at = float("-inf")
        if failures:
            log.info("database reachable again after %d failed attempt(s)", failures)


# How long a recorded poll waits for the signals it answers to be on record (the listener
# asks for the poll before it writes the signal): past it, the next poll ties them.
SIGNAL_RECORD_WAIT_SECONDS = 1.0


# A standby asks for a late holder's lease this long after the database said it lapses:
# the two clock readings are the database's, and the answer's trip back is the only slack.
LAPSE_MARGIN_SECONDS = 0.02


# A database outage is retried first after this many seconds, doubling up to half the lease:
# back within half a lease of the database's return, a holder keeps its streams across an
# outage shorter than its lease, and a dead database sees a few attempts a minute.
DATABASE_BACKOFF_BASE_SECONDS = 0.5


def next_slot(began: datetime, period: timedelta, now: datetime) -> datetime:
    """When a poll whose slot began at ``began`` is next due: the first instant of
    ``began + k * period`` after ``now``.

    schedule waits a whole period after each run ends, so a 1 s poll that takes 40-200 ms
    ran every 1.04-1.2 s; counted from when its slot began it runs every second however
    long each run takes. A run that overran its period skips the slots it missed rather
    than catching up in a burst (which would only spend weight on the same state).
    """
    missed = max(now - began, timedelta(0)) // period
    return began + (missed + 1) * period


def _schedule_clock() -> datetime:
    """Now on schedule's clock: ``Job.next_run`` is naive local time."""
    return datetime.now()  # noqa: DTZ005


@dataclass
class _SlotStart:
    """When the poll last dispatched had its slot: the lease acquired (the lease's next due
    time is counted from then, on the database's clock, so asking one period later is
    never early), or the poll started when there are no leases. Set on the stream's worker
    thread; ``dispatched_at`` (set by the loop before it hands a slot over) tells a slot
    start that came too late to place the next dispatch from one that still can."""

    at: datetime | None = None
    dispatched_at: datetime | None = None


def _keep_to_slots(slots: Sequence[tuple[schedule.Job, timedelta, _SlotStart | None]]) -> None:
    """A poll that had its slot is next due one interval after the slot began, not one
    interval after it ended (schedule's own rule, kept for the heartbeat and for a replica
    that found the slot held by another)."""
    now = _schedule_clock()
    for job, period, start in slots:
        if start is None or start.at is None:
            continue
        at, start.at = start.at, None
        # A slot start read only after the next dispatch is that poll's past: placing the
        # next slot from it would dispatch again at once.
        if start.dispatched_at is None or at >= start.dispatched_at:
            job.next_run = next_slot(at, period, now)


def _dispatcher(worker: StreamWorker, slot: _SlotStart | None) -> Callable[[], None]:
    def dispatch() -> None:
        if slot is not None:
            slot.dispatched_at = _schedule_clock()
        worker.dispatch()

    return dispatch


class StreamWorker:
    """Runs one stream's polls (or the heartbeat) on a thread of its own.

    ``dispatch`` never waits: the poll runs here, not on the scheduler's thread. A slot
    that comes while the previous poll is still in flight is skipped rather than queued (a
    queued poll would only run late, on the same state), and logged: once when it happens,
    and with the count when the poll ends. An immediate poll (``at_once``) that comes then
    starts at once beside it, on a thread of its own: the poll in flight may have fetched
    before the change, and waiting for it to end would add its whole time to how late the
    change is seen (the one sent first is recorded stale if the other was applied before
    it, poller.job.SendOrder). One more that comes while both are in flight runs right
    after the first. ``crashed`` is
    called, in the except block, should a task raise (a bug: every task catches what it
    expects).
    """

    def __init__(self, name: str, task: Callable[[], None], crashed: Callable[[str], None]) -> None:
        self.name = name
        self._task = task
        self._crashed = crashed
        self._cond = threading.Condition()
        self._busy_since: float | None = None  # dispatched and not finished
        self._skipped = 0
        self._again = False
        self._closing = False
        self._beside: threading.Thread | None = None  # an immediate poll beside the other
        self._thread = threading.Thread(target=self._serve, name=f"poll {name}", daemon=True)
        self._thread.start()

    def dispatch(self, *, at_once: bool = False) -> None:
        with self._cond:
            if self._busy_since is None:
                self._busy_since = time.monotonic()
                self._cond.notify()
                return
            if at_once:
                if self._beside is None:
                    self._beside = threading.Thread(
                        target=self._serve_beside, name=f"poll {self.name} at once", daemon=True
                    )
                    self._beside.start()
                else:
                    self._again = True
                return
            self._skipped += 1
            first = self._skipped == 1
            running = time.monotonic() - self._busy_since
        if first:
            log.info(
                "%s slot skipped: its poll started %.1f s ago is still in flight",
                self.name,
                running,
            )

    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._busy_since is None and not self._closing:
                    self._cond.wait()
                if self._busy_since is None:
                    return
            try:
                self._task()
            except Exception:
                self._crashed(self.name)
                return
            finally:
                with self._cond:
                    skipped, self._skipped = self._skipped, 0
                    again, self._again = self._again, False
                    self._busy_since = time.monotonic() if again else None
            if skipped > 1:
                log.info("%s poll ended; %d slots were skipped while it ran", self.name, skipped)

    def _serve_beside(self) -> None:
        try:
            self._task()
        except Exception:
            self._crashed(self.name)
        finally:
            with self._cond:
                self._beside = None

    def close(self) -> None:
        """Let the thread end once the task in flight, if any, is done."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        """True if the worker's threads ended within ``timeout`` seconds."""
        ends_at = time.monotonic() + timeout
        self._thread.join(timeout)
        with self._cond:
            beside = self._beside
        if beside is not None:
            beside.join(max(0.0, ends_at - time.monotonic()))
        return not self._thread.is_alive() and (beside is None or not beside.is_alive())


class Poller:
    """Runs the jobs on their intervals; with ``replica``, only the slots this replica holds."""

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        stop: threading.Event | None = None,
        *,
        replica: Replica | None = None,
        compaction: Compaction | None = None,
        immediate: ImmediatePolls | None = None,
        listeners: Sequence[MarketListener] = (),
    ) -> None:
        self.jobs = list(jobs)
        self.compaction = compaction
        self.stop = stop or threading.Event()
        self.replica = replica
        # The realtime listeners' requests for immediate polls (poller.triggers).
        self.immediate = immediate or ImmediatePolls(share=0.0)
        # They watch ``stop``: started with the loop, ended with it.
        self.listeners = list(listeners)
        lease = replica.lease_seconds if replica is not None else PollerSettings().lease_seconds
        self.database = DatabaseBackoff(DATABASE_BACKOFF_BASE_SECONDS, lease / 2)
        self._thread: threading.Thread | None = None
        # Each worker, with the lock its job holds while writing (none for the heartbeat).
        self._workers: list[tuple[StreamWorker, threading.Lock | None]] = []
        self.crashed = False
        # Set when another replica moved a stream's history to another source while this
        # one polled: ``exmeta poll`` then stops and says so (exit 2).
        self.refused: SourceMismatchError | None = None

    def _guarded(self, job: StreamJob, interval: float, slot: _SlotStart) -> Callable[[], None]:
        def run() -> None:
            if self.stop.is_set() or not self.database.ready():
                return
            urgent, ticket = self.immediate.claim(job.stream)
            try:
                lease = None
                if self.replica is not None:
                    lease = self._lease(self.replica, job.stream, interval, urgent)
                    self.database.succeeded()
                    if lease is None:
                        log.debug("%s slot not due or held by another replica", job.stream)
                        return
            except SQLAlchemyError as exc:
                self.database.failed(f"{job.stream} lease", exc)
                return
            slot.at = _schedule_clock()
            try:
                recorded = job.run(lease)
                self._settle(job, ticket, recorded)
            except SQLAlchemyError as exc:
                # Not written, or its commit unconfirmed (the job logs an outcome only once
                # committed); the next poll compares with whatever did commit.
                self.database.failed(f"{job.stream} poll", exc)
                return
            except SourceMismatchError as exc:
                # Every later poll would be refused too, and hold the lease from a replica
                # of the stream's own source: stop this replica instead.
                log.critical("%s; stopping this replica", exc)
                self.refused = exc
                self.stop.set()
                return
            except Exception:
                log.exception("%s poll failed; retrying at the next interval", job.stream)
                return
            self.database.succeeded()

        return run

    def _lease(self, replica: Replica, stream: str, interval: float, urgent: bool) -> Lease | None:
        """The slot's lease, or None if it is not due or another replica holds it.

        A holder that missed its slot is replaced when its lease lapses: if that comes
        before this replica's next tick, ask again right then rather than up to an interval
        later (with replicas started together, their ticks fall in step with the slot the
        holder missed, and so with the lapse: a tick just before it cost a whole interval).
        """
        got = replica.acquire(stream, interval, at_once=urgent)
        if isinstance(got, Refused) and got.lapses_in is not None and got.lapses_in < interval:
            if self.stop.wait(got.lapses_in + LAPSE_MARGIN_SECONDS):
                return None
            got = replica.acquire(stream, interval, at_once=urgent)
        return got if isinstance(got, Lease) else None

    def _settle(self, job: StreamJob, ticket: int, recorded: Recorded) -> None:
        """Tie the signals this poll answered to it (core.signals); a poll that failed, or
        found no lease, leaves them to the next one."""
        if recorded.outcome == "error":
            return
        signal_id = self.immediate.answered(job.stream, ticket, SIGNAL_RECORD_WAIT_SECONDS)
        if signal_id is None:
            return
        with job.writer.engine.begin() as conn:
            signals.settle(
                conn,
                job.stream,
                signal_id,
                recorded.observation_id,
                recorded.observed_at,
                changed=recorded.outcome == "changed",
            )

    def _bookkeeping(self, action: Callable[[], None], what: str) -> None:
        """Register, heartbeat or fold, unless the database is being left alone for now."""
        if not self.database.ready():
            return
        try:
            action()
        except SQLAlchemyError as exc:
            self.database.failed(what, exc)
            return
        self.database.succeeded()

    def run(self) -> None:
        """Poll every job now, then on its interval, until ``stop`` is set.

        Should the loop itself, or a worker, fail (a bug: each task already catches its
        own errors), it sets ``stop`` and ``crashed`` rather than leave a process that
        looks alive but polls nothing: ``exmeta poll`` then exits non-zero and its
        supervisor restarts it.
        """
        try:
            self._loop()
        except Exception:
            log.critical("the poll loop failed; stopping this replica", exc_info=True)
            self.crashed = True
            self.stop.set()
        finally:
            for worker, _ in self._workers:
                worker.close()

    def _worker_crashed(self, name: str) -> None:
        log.critical("the %s worker failed; stopping this replica", name, exc_info=True)
        self.crashed = True
        self.stop.set()

    def _loop(self) -> None:
        tasks: list[tuple[str, float, Callable[[], None], threading.Lock | None, _SlotStart | None]]
        tasks = []
        for s in self.jobs:
            start = _SlotStart()
            task = self._guarded(s.job, s.interval, start)
            tasks.append((s.job.stream, s.interval, task, s.job.write_lock, start))
        if self.replica is not None:
            replica = self.replica
            self._bookkeeping(replica.register, "registering the replica")
            heartbeat = partial(self._bookkeeping, replica.heartbeat, "heartbeat")
            tasks.append(("heartbeat", replica.heartbeat_seconds, heartbeat, None, None))
        if self.compaction is not None:
            fold = partial(self._bookkeeping, self.compaction, "folding old polls")
            tasks.append(("compaction", self.compaction.interval, fold, None, None))
        scheduler = schedule.Scheduler()
        slots = []
        workers: dict[str, StreamWorker] = {}
        for name, interval, task, write_lock, slot in tasks:
            worker = StreamWorker(name, task, self._worker_crashed)
            self._workers.append((worker, write_lock))
            workers[name] = worker
            # schedule types the interval as int, but builds a timedelta: fractions work.
            dispatch = _dispatcher(worker, slot)
            job = scheduler.every(interval).seconds.do(dispatch)  # type: ignore[arg-type]
            slots.append((job, timedelta(seconds=interval), slot))
        log.info(
            "polling %s", ", ".join(f"{s.job.stream} every {s.interval:g}s" for s in self.jobs)
        )
        # Each task once now, by hand: the scheduler's run_all() sleeps between jobs, and
        # every wait here is on ``stop`` (under libfaketime, which our clock-skew tests
        # use, time.sleep fails outright).
        for job, _, _ in slots:
            job.job_func()
        _keep_to_slots(slots)
        for listener in self.listeners:
            listener.start()
        while not self.stop.is_set():
            for stream in self.immediate.take_asked():
                if stream in workers:
                    workers[stream].dispatch(at_once=True)
            scheduler.run_pending()
            _keep_to_slots(slots)
            idle = scheduler.idle_seconds
            # An immediate poll asked for cuts the wait short; a stop is seen within it.
            self.immediate.wait(timeout=min(max(idle or 0.0, 0.01), 0.5))

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="poller", daemon=True)
        self._thread.start()

    def shutdown(self, grace_seconds: float) -> bool:
        """Stop polling and release the leases; True if every poll ended within the grace
        period.

        Past the grace period a poll may still be in an HTTP request (until its deadline);
        we still wait for a database write that is under way, then leave that daemon
        thread behind. Its leases are released either way: a write it might still attempt
        is then fenced off.
        """
        self.stop.set()
        self.immediate.wake()
        ends_at = time.monotonic() + grace_seconds
        ended = True
        if self._thread is not None:
            self._thread.join(grace_seconds)
            ended = not self._thread.is_alive()
        for listener in self.listeners:
            # A listener ends within a read's wait, or a connect's timeout at worst.
            listener.join(max(0.0, ends_at - time.monotonic()))
        for worker, write_lock in list(self._workers):
            if worker.join(max(0.0, ends_at - time.monotonic())):
                continue
            ended = False
            if write_lock is not None:
                with write_lock:
                    log.warning(
                        "%s poll still in flight after %.1fs; leaving it",
                        worker.name,
                        grace_seconds,
                    )
        if self.replica is not None:
            self.replica.sign_off([s.job.stream for s in self.jobs])
        return ended


def _installed_version() -> str:
    """exmeta's version as installed; a checkout run from source has no metadata."""
    try:
        return importlib.metadata.version("exmeta")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def say_whether_the_budget_suffices(settings: Settings, market: str, limit: int) -> None:
    """One line whenever a market's weight limit is learnt or changes: a warning if its
    weight budget cannot pay for the configured intervals (with the interval each stream
    gets instead), else a note that it can. A futures market's line starts with its name."""
    plan = plan_for(settings, settings.enabled_streams(), limit, market)
    market_name = "" if market == "spot" else f"{market} "
    level = logging.WARNING if plan.starved else logging.INFO
    log.log(level, "%s%s", market_name, plan.describe())


def retrying_client(
    settings: Settings,
    stop: threading.Event,
    shared: SharedBudget | None = None,
    stream: str = "exchange_info",
) -> RetryingClient:
    """The replica's one way to the Binance API ``stream`` is polled on (its market): one
    gate and one weight budget for all of that market's jobs, since Binance counts weight
    per IP and per API; the base URL is ``core.config.base_url``'s."""
    market = catalogue.stream(stream).market
    return RetryingClient(
        BinanceClient(settings.binance, base_url(settings, stream)),
        RetryPolicy.from_settings(settings),
        RateGate(),
        WeightBudget(
            settings.poller.weight_budget,
            on_limit=partial(say_whether_the_budget_suffices, settings, market),
        ),
        wait=stop.wait,
        shared=shared,
    )


def build_poller(
    settings: Settings, engine: Engine, replica_id: str, *, new_source: bool = False
) -> Poller:
    """Every enabled stream's job, as the catalogue (core.streams) declares it; signed ones
    only once the key passed its safety check.

    The streams' sources are claimed first, before any request is sent (core.ingest);
    ``new_source`` moves a history held by another source to the configured one. Raises
    SourceMismatchError (core.ingest) when a stream's history is another source's, and
    SigningKeyError or UnsafeKeyError (poller.signing, poller.signed_jobs) when the
    configured key cannot or must not be used.
    """
    claim_sources(engine, settings.stream_sources(), replica_id, new_source=new_source)
    stop = threading.Event()
    clients: dict[str, RetryingClient] = {}  # one per market (its API), spot's first
    for declared in catalogue.CATALOGUE:
        if declared.market not in clients:
            shared = SharedBudget(engine, replica_id, market=declared.market)
            clients[declared.market] = retrying_client(settings, stop, shared, declared.name)
    client = clients["spot"]
    tolerance = settings.poller.server_time_tolerance()
    intervals = settings.stream_intervals()
    enabled = settings.enabled_streams()
    jobs = [
        ScheduledJob(
            stream_job(
                declared,
                clients[declared.market],
                StreamWriter(engine, declared.name, tolerance),
                replica_id,
                deadline_seconds=deadline_seconds(settings.binance, intervals[declared.name]),
            ),
            intervals[declared.name],
        )
        for declared in catalogue.CATALOGUE
        if declared.name in enabled and not declared.needs_key
    ]
    jobs += [
        ScheduledJob(job, interval)
        for job, interval in signed_jobs(settings, engine, client, replica_id)
    ]
    replica = Replica(
        engine,
        replica_id,
        settings.poller.lease_seconds,
        settings.poller.heartbeat_seconds,
    )
    detail = settings.poller.observation_detail()
    compaction = None
    if detail is not None:
        interval = settings.poller.compaction_interval_seconds
        compaction = Compaction(engine, detail, interval, stop)
    immediate = ImmediatePolls(settings.realtime.suspicion_weight_share)
    for scheduled in jobs:
        declared = catalogue.stream(scheduled.job.stream)
        immediate.register(
            declared.name, declared.market, declared.weight, scheduled.job.client.budget
        )
    listeners = (
        build_listeners(settings, engine, replica_id, immediate, stop)
        if settings.realtime.enabled
        else []
    )
    return Poller(
        jobs,
        stop,
        replica=replica,
        compaction=compaction,
        immediate=immediate,
        listeners=listeners,
    )
