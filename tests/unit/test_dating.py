"""How an observation is dated against its request's window on the database clock."""

from datetime import datetime, timedelta

import pytest

from core.dating import RequestWindow, Skew, date_observation
from tests.builders import at

SENT = at("2026-12-03T07:00:00")
RECEIVED = SENT + timedelta(milliseconds=400)
WINDOW = RequestWindow(SENT, RECEIVED)
TOLERANCE = timedelta(seconds=5)


@pytest.mark.parametrize(
    "server_time",
    [
        SENT,
        RECEIVED,
        SENT + timedelta(milliseconds=200),
        SENT - TOLERANCE,  # the bounds are inclusive
        RECEIVED + TOLERANCE,
    ],
)
def test_a_server_time_within_the_window_and_tolerance_dates_the_observation(
    server_time: datetime,
) -> None:
    assert date_observation(server_time, WINDOW, TOLERANCE) == (server_time, None)


def test_a_server_time_ahead_of_the_receipt_is_replaced_by_the_receipt() -> None:
    ten_years = RECEIVED + timedelta(days=3653)
    assert date_observation(ten_years, WINDOW, TOLERANCE) == (RECEIVED, Skew.AHEAD)
    just_over = RECEIVED + TOLERANCE + timedelta(microseconds=1)
    assert date_observation(just_over, WINDOW, TOLERANCE) == (RECEIVED, Skew.AHEAD)


def test_a_server_time_behind_the_sending_is_replaced_by_the_receipt() -> None:
    an_hour_old = SENT - timedelta(hours=1)
    assert date_observation(an_hour_old, WINDOW, TOLERANCE) == (RECEIVED, Skew.BEHIND)
    just_under = SENT - TOLERANCE - timedelta(microseconds=1)
    assert date_observation(just_under, WINDOW, TOLERANCE) == (RECEIVED, Skew.BEHIND)


def test_with_no_tolerance_only_the_window_itself_is_trusted() -> None:
    none = timedelta(0)
    assert date_observation(RECEIVED, WINDOW, none) == (RECEIVED, None)
    late = RECEIVED + timedelta(milliseconds=1)
    assert date_observation(late, WINDOW, none) == (RECEIVED, Skew.AHEAD)
