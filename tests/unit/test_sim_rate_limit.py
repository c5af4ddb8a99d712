"""The sim's 429 back-off: who is banned and who was only in flight.

A client with several jobs can have a request in flight when another one's 429 comes back;
it could not have read that 429, so it is answered as over the limit too (429), not as
ignoring the 429 (418). A call that reaches the sim more than ``IN_FLIGHT_SECONDS`` after a
429 has left it is banned.
"""

from binance_sim.state import (
    BAN_SECONDS,
    EXCHANGE_INFO_PATH,
    IN_FLIGHT_SECONDS,
    SYSTEM_STATUS_PATH,
    USDM_EXCHANGE_INFO_PATH,
    Fault,
    FaultKind,
    SimState,
)
from tests.sim_client import FakeClock

T0 = 1_700_000_000.0


def limited_sim(clock: FakeClock) -> SimState:
    state = SimState.from_file(clock=clock)
    state.add_fault(Fault(FaultKind.RATE_LIMIT, retry_after=3))
    return state


def kind_and_retry_after(fault: Fault | None) -> tuple[FaultKind, int] | None:
    return None if fault is None else (fault.kind, fault.retry_after_seconds)


def test_a_call_in_flight_when_the_429_left_is_answered_429_with_the_time_left() -> None:
    clock = FakeClock(T0)
    state = limited_sim(clock)
    assert kind_and_retry_after(state.take_fault(EXCHANGE_INFO_PATH)) == (FaultKind.RATE_LIMIT, 3)

    clock.now = T0 + 0.5  # the 429 is still being sent
    before_it_left = state.take_fault(SYSTEM_STATUS_PATH, received_at=T0 + 0.4)
    clock.now = T0 + 0.6
    state.told_of_rate_limit(EXCHANGE_INFO_PATH)
    clock.now = T0 + 0.6 + IN_FLIGHT_SECONDS  # handled now, reached the sim within the allowance
    within = state.take_fault(SYSTEM_STATUS_PATH, received_at=T0 + 0.6 + IN_FLIGHT_SECONDS)

    assert kind_and_retry_after(before_it_left) == (FaultKind.RATE_LIMIT, 3)  # 2.5 s left
    assert kind_and_retry_after(within) == (FaultKind.RATE_LIMIT, 2)  # 1.9 s left
    clock.now = T0 + 3.5
    assert state.take_fault(EXCHANGE_INFO_PATH) is None  # waited out: nobody was banned


def test_a_call_after_the_allowance_is_banned_and_the_ban_outlasts_the_back_off() -> None:
    clock = FakeClock(T0)
    state = limited_sim(clock)
    state.take_fault(EXCHANGE_INFO_PATH)
    clock.now = T0 + 0.01
    state.told_of_rate_limit(EXCHANGE_INFO_PATH)

    clock.now = T0 + 0.02 + IN_FLIGHT_SECONDS
    banned = state.take_fault(SYSTEM_STATUS_PATH)
    clock.now = T0 + 3.5  # the 429's Retry-After has passed, the ban has not
    still_banned = state.take_fault(EXCHANGE_INFO_PATH)

    assert kind_and_retry_after(banned) == (FaultKind.IP_BAN, BAN_SECONDS)
    assert kind_and_retry_after(still_banned) == (FaultKind.IP_BAN, BAN_SECONDS)


def test_the_allowance_runs_from_the_first_429_sent_and_on_its_market_only() -> None:
    clock = FakeClock(T0)
    state = limited_sim(clock)
    state.take_fault(EXCHANGE_INFO_PATH)
    state.take_fault(SYSTEM_STATUS_PATH, received_at=T0)  # a 429 to a call in flight
    clock.now = T0 + 0.1
    state.told_of_rate_limit(SYSTEM_STATUS_PATH)  # that one left first
    clock.now = T0 + 0.2
    state.told_of_rate_limit(EXCHANGE_INFO_PATH)  # the first 429, later: changes nothing

    after = T0 + 0.15 + IN_FLIGHT_SECONDS
    clock.now = after
    assert state.take_fault(USDM_EXCHANGE_INFO_PATH, received_at=after) is None
    banned = state.take_fault(EXCHANGE_INFO_PATH, received_at=after)
    assert kind_and_retry_after(banned) == (FaultKind.IP_BAN, BAN_SECONDS)
