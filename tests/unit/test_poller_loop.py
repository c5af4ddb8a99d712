"""The poll loop never leaves a process that looks alive but polls nothing."""

from __future__ import annotations

import threading
from typing import cast

from sqlalchemy import Engine

from poller.runner import Poller, Replica


class BrokenReplica(Replica):
    """Registering fails with an error no task expects: a bug, not a database outage."""

    def register(self) -> None:
        raise RuntimeError("a bug in the bookkeeping")


def test_a_failed_loop_stops_the_replica_and_says_it_crashed() -> None:
    stop = threading.Event()
    poller = Poller([], stop, BrokenReplica(cast(Engine, None), "r1", lease_seconds=5))
    poller.run()  # returns instead of raising in its thread
    assert poller.crashed
    assert stop.is_set()


def test_a_loop_told_to_stop_is_not_a_crash() -> None:
    stop = threading.Event()
    stop.set()
    poller = Poller([], stop)
    poller.run()
    assert not poller.crashed
