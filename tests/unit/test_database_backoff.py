"""The poller's back-off from a database that is away, on a clock the test moves."""

import logging

import pytest
from sqlalchemy.exc import OperationalError

from poller.runner import DatabaseBackoff
from tests.sim_client import FakeClock

REFUSED = OperationalError(
    "SELECT 1",
    {},
    Exception('connection to server at "127.0.0.1", port 1 failed: Connection refused\nIs it up?'),
)


def test_each_failure_doubles_the_wait_up_to_the_cap_and_a_success_resets_it() -> None:
    clock = FakeClock(100.0)
    backoff = DatabaseBackoff(base=0.5, cap=3.0, clock=clock)
    waits = []
    for _ in range(5):
        assert backoff.ready()
        backoff.failed("exchange_info lease", REFUSED)
        waits.append(backoff.delay)
        clock.now += backoff.delay - 0.01
        assert not backoff.ready()  # the database is left alone until the wait is over
        clock.now += 0.01
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]

    backoff.succeeded()
    backoff.failed("heartbeat", REFUSED)
    assert backoff.delay == 0.5


def test_a_failure_is_one_warning_line_with_the_drivers_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="poller.runner")
    backoff = DatabaseBackoff(base=1.0, cap=4.0, clock=FakeClock(0.0))
    backoff.failed("exchange_info poll", REFUSED)
    backoff.succeeded()

    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "WARNING",
            "exchange_info poll: database unavailable (Exception: connection to server at"
            ' "127.0.0.1", port 1 failed: Connection refused); next attempt in 1.0s',
            None,
        ),
        ("INFO", "database reachable again after 1 failed attempt(s)", None),
    ]
