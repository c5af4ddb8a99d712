"""The retry policy, the rate gate and the weight budget, on a clock the test moves."""

import random

import pytest

from core.config import Settings
from core.request_budget import Report
from poller.binance import Response, deadline_seconds
from poller.retry import RateGate, RetryPolicy, WeightBudget, retryable, unreported
from tests.sim_client import FakeClock


@pytest.mark.parametrize("seed", range(50))
def test_backoff_grows_with_each_retry_and_stays_under_the_cap(seed: int) -> None:
    policy = RetryPolicy(max_attempts=6, base_seconds=0.5, cap_seconds=4)
    rng = random.Random(seed)

    delays = [policy.backoff(retry, rng) for retry in range(1, 6)]

    assert delays[:4] == sorted(delays[:4])  # up to the cap, each wait is at least the last
    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1
    assert all(2 <= d <= 4 for d in delays[3:])  # capped: 4 s at most, half of it fixed


def test_backoff_is_jittered() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=8)
    rng = random.Random(1)

    assert len({policy.backoff(2, rng) for _ in range(20)}) == 20


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (Response(503, b"{}", 1, error_class="http_status"), True),
        (Response(500, b"{}", 1, error_class="http_status"), True),
        (Response(None, None, 1, error_class="timeout"), True),
        (Response(None, None, 1, error_class="connection"), True),
        (Response(200, None, 1, error_class="truncated"), True),
        (Response(200, None, 1, error_class="connection_reset"), True),
        (Response(400, b"{}", 1, error_class="http_status"), False),
        (Response(403, b"{}", 1, error_class="http_status"), False),
        (Response(451, b"{}", 1, error_class="http_status"), False),
        (Response(200, None, 1, error_class="too_large"), False),
        (Response(200, b"{}", 1), False),
    ],
)
def test_only_server_errors_timeouts_and_cut_bodies_are_retried(
    response: Response, expected: bool
) -> None:
    assert retryable(response) is expected


def test_rate_gate_stays_closed_for_the_longest_pause_asked() -> None:
    clock = FakeClock(100.0)
    gate = RateGate(clock)
    assert gate.remaining() == 0

    gate.close_for(10, "HTTP 418")
    gate.close_for(3, "HTTP 429")  # a shorter pause does not reopen a longer one
    clock.now = 105.0

    assert gate.remaining() == 5
    assert gate.reason == "HTTP 418"
    clock.now = 110.0
    assert gate.remaining() == 0


def test_weight_budget_waits_for_the_next_minute_only_when_over_budget() -> None:
    clock = FakeClock(60 * 1000 + 20.0)  # 20 s into a minute
    budget = WeightBudget(0.25, limit=1200, clock=clock)  # 300 per minute

    budget.note(300)
    assert budget.wait_seconds() == 0  # at the budget is within it
    budget.note(320)
    assert budget.wait_seconds() == pytest.approx(40.5)  # to the next minute, and a margin
    budget.note(None)  # a response without the header changes nothing
    assert budget.wait_seconds() == pytest.approx(40.5)
    clock.now = 60 * 1001 + 1.0
    assert budget.wait_seconds() == 0  # a new window: the old count no longer applies


def test_the_deadline_is_the_read_timeout_kept_below_the_interval() -> None:
    settings = Settings()  # timeout_seconds = 8: room for a 6 MB exchangeInfo

    assert deadline_seconds(settings.binance, 10) == 8
    assert deadline_seconds(settings.binance, 1) == pytest.approx(0.9)


def test_nothing_unreported_is_no_report() -> None:
    assert unreported(None, None, 100.0) is None


def test_a_used_weight_is_reported_with_its_age() -> None:
    assert unreported((480, 97.5), None, 100.0) == Report(480, 2.5)


def test_a_pause_is_reported_with_the_time_it_has_left() -> None:
    report = unreported(None, (130.0, "HTTP 429 seen by a"), 100.0)

    assert report == Report(None, 0.0, 30.0, "HTTP 429 seen by a")


def test_a_pause_already_over_is_not_reported_but_the_weight_still_is() -> None:
    assert unreported(None, (100.0, "HTTP 418 seen by a"), 100.0) is None
    assert unreported((20, 99.0), (99.5, "HTTP 418 seen by a"), 100.0) == Report(20, 1.0)


def test_the_budget_reports_the_exchange_limit_when_first_learnt_and_when_it_changes() -> None:
    told: list[int] = []
    budget = WeightBudget(0.25, on_limit=told.append)

    for limit in (6000, 6000, 1200, 1200, 1200, 6000):  # every job learns it, again and again
        budget.learn_limit(limit)

    assert told == [6000, 1200, 6000]
    assert budget.budget == 1500
