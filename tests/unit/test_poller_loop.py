"""The poll loop: never a process that looks alive but polls nothing; polls on their interval."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import cast

import pytest
from sqlalchemy import Engine

from poller.job import StreamJob
from poller.runner import Poller, Replica, ScheduledJob, next_slot
from tests.e2e.processes import wait_for


class BrokenReplica(Replica):
    """Registering fails with an error no task expects: a bug, not a database outage."""

    def register(self) -> None:
        raise RuntimeError("a bug in the bookkeeping")


def test_a_failed_loop_stops_the_replica_and_says_it_crashed() -> None:
    stop = threading.Event()
    poller = Poller([], stop, replica=BrokenReplica(cast(Engine, None), "r1", lease_seconds=5))
    poller.run()  # returns instead of raising in its thread
    assert poller.crashed
    assert stop.is_set()


def test_a_loop_told_to_stop_is_not_a_crash() -> None:
    stop = threading.Event()
    stop.set()
    poller = Poller([], stop)
    poller.run()
    assert not poller.crashed


class SlowJob:
    """A poll that takes ``seconds``; records when each run started (monotonic)."""

    stream = "exchange_info"

    def __init__(self, seconds: float) -> None:
        self.write_lock = threading.Lock()
        self.seconds = seconds
        self.starts: list[float] = []

    def run(self, lease: object) -> None:
        self.starts.append(time.monotonic())
        time.sleep(self.seconds)


def test_polls_keep_to_their_interval_however_long_each_takes() -> None:
    """A 0.3 s interval and 0.2 s polls: a poll starts every 0.3 s, not 0.2 s after the last
    one ended (every 0.5 s, as schedule alone would run it)."""
    job = SlowJob(0.2)
    stop = threading.Event()
    poller = Poller([ScheduledJob(cast(StreamJob, job), 0.3)], stop)
    poller.start()
    try:
        stop.wait(2.6)
    finally:
        poller.shutdown(5)
    gaps = [b - a for a, b in pairwise(job.starts)]
    assert len(gaps) >= 6, job.starts
    assert 0.25 < statistics.median(gaps) < 0.4, gaps


def test_the_next_slot_is_on_the_grid_and_skips_the_slots_a_long_run_missed() -> None:
    began = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    second = timedelta(seconds=1)
    # A short run: the next slot one period after this one began.
    assert next_slot(began, second, began + timedelta(milliseconds=40)) == began + second
    # Started late and ran long, but ended before the next slot: still on the grid.
    assert next_slot(began, second, began + timedelta(milliseconds=990)) == began + second
    # Ran 2.5 periods: the two slots it overlapped are skipped, not run back to back.
    assert next_slot(began, second, began + timedelta(seconds=2.5)) == began + 3 * second
    # A clock that stepped back while it ran: the next slot, not one in the past.
    assert next_slot(began, second, began - timedelta(seconds=5)) == began + second


class StuckJob:
    """A poll that hangs until released (an answer trickling in, a write waiting on a lock)."""

    stream = "exchange_info"

    def __init__(self) -> None:
        self.write_lock = threading.Lock()
        self.release = threading.Event()
        self.runs = 0

    def run(self, lease: object) -> None:
        self.runs += 1
        self.release.wait(30)


class CountingJob:
    """A quick poll that says when it has run ``wanted`` times."""

    stream = "system_status"

    def __init__(self, wanted: int) -> None:
        self.write_lock = threading.Lock()
        self.wanted = wanted
        self.runs = 0
        self.done = threading.Event()

    def run(self, lease: object) -> None:
        self.runs += 1
        if self.runs >= self.wanted:
            self.done.set()


def test_a_stuck_stream_keeps_no_other_stream_from_its_slots_and_never_overlaps_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="poller.runner")
    stuck, other = StuckJob(), CountingJob(wanted=5)
    stop = threading.Event()
    poller = Poller(
        [
            ScheduledJob(cast(StreamJob, stuck), 0.1),
            ScheduledJob(cast(StreamJob, other), 0.1),
        ],
        stop,
    )
    poller.start()
    try:
        assert other.done.wait(10)  # five polls of the other stream while the first hangs
        assert stuck.runs == 1  # its slots meanwhile were skipped, not run beside it...
        assert "exchange_info slot skipped" in caplog.text  # ...and the log says so
        stuck.release.set()
        assert wait_for(lambda: stuck.runs >= 2, 10)  # free again: it polls on its next slot
    finally:
        stuck.release.set()
        assert poller.shutdown(5)
