"""The poll loop: a ``schedule.Scheduler`` per replica, stopped by an event.

Jobs run on a worker thread so that a stop request (SIGTERM, Ctrl-C) is answered within
the grace period even while an HTTP read is stuck; a database write in progress is
always allowed to finish, because a write cut short would only be rolled back, but a
write finished is history kept.
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

from core import leases, replicas
from core.config import PollerSettings, Settings
from core.db import database_error
from core.ingest import StreamWriter
from core.leases import Lease
from poller.account_jobs import signed_jobs, system_status_job
from poller.binance import BinanceClient
from poller.job import StreamJob, exchange_info_job
from poller.retry import RateGate, RetryingClient, RetryPolicy, SharedBudget, WeightBudget

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

    def acquire(self, stream: str, interval: float) -> Lease | None:
        with self.engine.begin() as conn:
            return leases.acquire(conn, stream, self.replica_id, interval, self.lease_seconds)

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

    def ready(self) -> bool:
        return self.clock() >= self._retry_at

    def failed(self, what: str, exc: SQLAlchemyError) -> None:
        self.delay = self.base if self.failures == 0 else min(self.cap, 2 * self.delay)
        self.failures += 1
        self._retry_at = self.clock() + self.delay
        log.warning(
            "%s: database unavailable (%s); next attempt in %.1fs",
            what,
            database_error(exc),
            self.delay,
        )

    def succeeded(self) -> None:
        if self.failures:
            log.info("database reachable again after %d failed attempt(s)", self.failures)
        self.failures = 0
        self.delay = 0.0
        self._retry_at = float("-inf")


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
    """When the poll that just ran had its slot: the lease acquired (the lease's next due
    time is counted from then, on the database's clock, so asking one period later is
    never early), or the poll started when there are no leases."""

    at: datetime | None = None


def _keep_to_slots(slots: Sequence[tuple[schedule.Job, timedelta, _SlotStart | None]]) -> None:
    """A poll that had its slot is next due one interval after the slot began, not one
    interval after it ended (schedule's own rule, kept for the heartbeat and for a replica
    that found the slot held by another)."""
    now = _schedule_clock()
    for job, period, start in slots:
        if start is not None and start.at is not None:
            job.next_run = next_slot(start.at, period, now)
            start.at = None


class Poller:
    """Runs the jobs on their intervals; with ``replica``, only the slots this replica holds."""

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        stop: threading.Event | None = None,
        replica: Replica | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.stop = stop or threading.Event()
        self.replica = replica
        lease = replica.lease_seconds if replica is not None else PollerSettings().lease_seconds
        self.database = DatabaseBackoff(DATABASE_BACKOFF_BASE_SECONDS, lease / 2)
        self.write_lock = threading.Lock()
        for scheduled in self.jobs:
            scheduled.job.write_lock = self.write_lock
        self._thread: threading.Thread | None = None
        self.crashed = False

    def _guarded(self, job: StreamJob, interval: float, slot: _SlotStart) -> Callable[[], None]:
        def run() -> None:
            if self.stop.is_set() or not self.database.ready():
                return
            try:
                lease = None
                if self.replica is not None:
                    lease = self.replica.acquire(job.stream, interval)
                    self.database.succeeded()
                    if lease is None:
                        log.debug("%s slot not due or held by another replica", job.stream)
                        return
            except SQLAlchemyError as exc:
                self.database.failed(f"{job.stream} lease", exc)
                return
            slot.at = _schedule_clock()
            try:
                job.run(lease)
            except SQLAlchemyError as exc:
                # Not written, or its commit unconfirmed (the job logs an outcome only once
                # committed); the next poll compares with whatever did commit.
                self.database.failed(f"{job.stream} poll", exc)
                return
            except Exception:
                log.exception("%s poll failed; retrying at the next interval", job.stream)
                return
            self.database.succeeded()

        return run

    def _bookkeeping(self, action: Callable[[], None], what: str) -> None:
        """Register or heartbeat, unless the database is being left alone for now."""
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

        Should the loop itself fail (a bug: each task already catches its own errors), it
        sets ``stop`` and ``crashed`` rather than leave a process that looks alive but
        polls nothing: ``exmeta poll`` then exits non-zero and its supervisor restarts it.
        """
        try:
            self._loop()
        except Exception:
            log.critical("the poll loop failed; stopping this replica", exc_info=True)
            self.crashed = True
            self.stop.set()

    def _loop(self) -> None:
        tasks: list[tuple[float, Callable[[], None], _SlotStart | None]] = []
        for scheduled in self.jobs:
            start = _SlotStart()
            tasks.append(
                (scheduled.interval, self._guarded(scheduled.job, scheduled.interval, start), start)
            )
        if self.replica is not None:
            replica = self.replica
            self._bookkeeping(replica.register, "registering the replica")
            heartbeat = partial(self._bookkeeping, replica.heartbeat, "heartbeat")
            tasks.append((replica.heartbeat_seconds, heartbeat, None))
        scheduler = schedule.Scheduler()
        slots = [
            # schedule types the interval as int, but builds a timedelta: fractions work.
            (scheduler.every(interval).seconds.do(task), timedelta(seconds=interval), start)  # type: ignore[arg-type]
            for interval, task, start in tasks
        ]
        log.info(
            "polling %s", ", ".join(f"{s.job.stream} every {s.interval:g}s" for s in self.jobs)
        )
        # Each task once now, by hand: the scheduler's run_all() sleeps between jobs, and
        # every wait here is on ``stop`` (under libfaketime, which our clock-skew tests
        # use, time.sleep fails outright).
        for _, task, _ in tasks:
            task()
        _keep_to_slots(slots)
        while not self.stop.is_set():
            scheduler.run_pending()
            _keep_to_slots(slots)
            idle = scheduler.idle_seconds
            self.stop.wait(timeout=min(max(idle or 0.0, 0.01), 0.5))

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="poller", daemon=True)
        self._thread.start()

    def shutdown(self, grace_seconds: float) -> bool:
        """Stop polling and release the leases; True if the loop ended within the grace period.

        Past the grace period the loop may be stuck in an HTTP read; we still wait for a
        database write that is under way, then leave the daemon thread behind. Its leases
        are released either way: a write it might still attempt is then fenced off.
        """
        self.stop.set()
        ended = True
        if self._thread is not None:
            self._thread.join(grace_seconds)
            if self._thread.is_alive():
                ended = False
                with self.write_lock:
                    log.warning("poll still in flight after %.1fs; leaving it", grace_seconds)
        if self.replica is not None:
            self.replica.sign_off([s.job.stream for s in self.jobs])
        return ended


def _installed_version() -> str:
    """exmeta's version as installed; a checkout run from source has no metadata."""
    try:
        return importlib.metadata.version("exmeta")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# The read timeout in force is at most this share of the stream's interval, so that a poll
# whose answer is stuck ends (and is recorded) before the next one is due.
READ_TIMEOUT_SHARE_OF_INTERVAL = 0.9


def read_timeout(settings: Settings, interval: float) -> float:
    """``[binance] timeout_seconds`` (sized for a 6 MB body), kept below the interval."""
    return min(settings.binance.timeout_seconds, READ_TIMEOUT_SHARE_OF_INTERVAL * interval)


def retrying_client(
    settings: Settings, stop: threading.Event, shared: SharedBudget | None = None
) -> RetryingClient:
    """The replica's one way to Binance: one gate and one budget for all of its jobs."""
    return RetryingClient(
        BinanceClient(settings.binance),
        RetryPolicy.from_settings(settings),
        RateGate(),
        WeightBudget(settings.poller.weight_budget),
        wait=stop.wait,
        shared=shared,
    )


def build_poller(settings: Settings, engine: Engine, replica_id: str) -> Poller:
    """Every enabled stream's job; signed ones only once the key passed its safety check.

    Raises SigningKeyError or UnsafeKeyError (poller.signing, poller.account_jobs) when
    the configured key cannot or must not be used.
    """
    stop = threading.Event()
    client = retrying_client(settings, stop, SharedBudget(engine, replica_id))
    interval = settings.poller.exchange_info_interval
    tolerance = settings.poller.server_time_tolerance()
    jobs = [
        ScheduledJob(
            exchange_info_job(
                client,
                StreamWriter(engine, "exchange_info", tolerance),
                replica_id,
                read_timeout=read_timeout(settings, interval),
            ),
            interval,
        ),
        ScheduledJob(
            system_status_job(client, StreamWriter(engine, "system_status", tolerance), replica_id),
            settings.poller.system_status_interval,
        ),
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
    return Poller(jobs, stop, replica)
