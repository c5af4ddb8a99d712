"""The realtime listeners' pure parts: what a silence is, what immediate polls may cost."""

import random
import threading
import time

import pytest

from core.config import ConfigError, load_settings
from poller.job import SendOrder
from poller.listener import (
    MIN_GAPS,
    SpotSilences,
    backoff_seconds,
    silence_limit,
    stream_path,
)
from poller.retry import WeightBudget
from poller.runner import StreamWorker
from poller.triggers import ImmediatePolls
from tests.realtime_fakes import Clock, RecordingSink


def trade(symbol: str, ms: int) -> dict[str, object]:
    return {"e": "trade", "E": ms, "s": symbol}


def feed(silences: SpotSilences, symbol: str, every: float, count: int, start: float) -> float:
    """``count`` trades of ``symbol`` every ``every`` seconds from ``start``; the last one's time."""
    at = start
    for n in range(count):
        at = start + n * every
        silences.event(trade(symbol, int(at * 1000)), at)
        silences.tick(at)
    return at


def test_a_symbol_silent_well_beyond_its_cadence_is_suspected_once_with_its_last_event_time() -> (
    None
):
    sink = RecordingSink()
    silences = SpotSilences("exchange_info", sink, ("ETHBTC",), factor=5, floor=0.5)
    last = feed(silences, "ETHBTC", 0.1, MIN_GAPS + 3, 0.0)
    silences.tick(last + 0.45)
    assert sink.signals == []
    silences.tick(last + 0.55)
    silences.tick(last + 5.0)
    assert sink.signals == [("exchange_info", "silence", "ETHBTC", int(last * 1000))]
    # Its next trade ends the silence, and says so (a symbol back from BREAK trades again);
    # the next silence is a new suspicion.
    back = feed(silences, "ETHBTC", 0.1, 2, last + 6.0)
    assert sink.signals[1] == ("exchange_info", "resumed", "ETHBTC", int((last + 6.0) * 1000))
    silences.tick(back + 0.6)
    assert [s[1] for s in sink.signals] == ["silence", "resumed", "silence"]


def test_a_quiet_but_regular_symbol_is_never_suspected() -> None:
    sink = RecordingSink()
    silences = SpotSilences("exchange_info", sink, (), factor=5, floor=0.5)
    start = 0.0
    for n in range(50):  # a miniTicker entry every 10 s, for over 8 minutes
        at = start + n * 10.0
        silences.event({"e": "24hrMiniTicker", "E": int(at * 1000), "s": "SLOWBTC"}, at)
        for step in range(1, 10):
            silences.tick(at + step)
    assert sink.signals == []


def test_no_suspicion_before_the_cadence_is_learnt_nor_across_a_reconnection() -> None:
    sink = RecordingSink()
    silences = SpotSilences("exchange_info", sink, ("ETHBTC",), factor=5, floor=0.5)
    last = feed(silences, "ETHBTC", 0.1, MIN_GAPS, 0.0)  # one gap short
    silences.tick(last + 60)
    assert sink.signals == []
    last = feed(silences, "ETHBTC", 0.1, MIN_GAPS + 1, last + 61)
    silences.connected(first=False, now=last + 30)  # away 30 s: no silence of ETHBTC's
    silences.tick(last + 30.1)
    assert sink.signals == [("exchange_info", "reconnected", None, None)]


def test_a_traded_symbols_mini_ticker_entries_do_not_count() -> None:
    sink = RecordingSink()
    silences = SpotSilences("exchange_info", sink, ("ETHBTC",), factor=5, floor=0.5)
    last = feed(silences, "ETHBTC", 0.1, MIN_GAPS + 2, 0.0)
    silences.event({"e": "24hrMiniTicker", "E": 1, "s": "ETHBTC"}, last + 0.4)
    silences.tick(last + 0.6)
    assert [s[1] for s in sink.signals] == ["silence"]


def test_the_silence_limit_has_a_floor() -> None:
    assert silence_limit(0.01, 5, 0.5) == 0.5
    assert silence_limit(2.0, 5, 0.5) == 10.0


def test_immediate_polls_never_spend_more_than_their_share_of_the_budget_in_a_minute() -> None:
    clock = Clock()
    immediate = ImmediatePolls(share=0.2, clock=clock)
    budget = WeightBudget(0.25, limit=6000)  # 1,500 a minute; a fifth of it is 300
    immediate.register("exchange_info", "spot", 20, budget)
    sink = RecordingSink(immediate)
    for second in range(120):  # a hundred suspicions a second for two minutes
        clock.now = 1000.0 + second
        for n in range(100):
            sink.signal("exchange_info", "silence", f"S{n}BTC")
    assert len(sink.signals) == 12_000
    # 300 weight a minute is 15 polls of 20: 30 over two minutes, never 16 within one.
    assert sink.polled == 2 * 15


def test_a_poll_asked_for_and_not_started_answers_later_suspicions_for_free() -> None:
    immediate = ImmediatePolls(share=0.2, clock=Clock())
    immediate.register("exchange_info", "spot", 20, WeightBudget(0.25, limit=6000))
    assert immediate.allow("exchange_info")
    assert immediate.ask("exchange_info") == 1
    for _ in range(100):
        assert immediate.allow("exchange_info")
    assert immediate.ask("exchange_info") == 2
    assert immediate.take_asked() == ["exchange_info"]
    assert immediate.take_asked() == []
    assert immediate.claim("exchange_info") == (True, 2)
    assert immediate.claim("exchange_info") == (False, 2)


def test_a_poll_answers_the_signals_asked_for_before_it_started_once_they_are_recorded() -> None:
    immediate = ImmediatePolls(share=0.2, clock=Clock())
    immediate.register("exchange_info", "spot", 20, WeightBudget(0.25, limit=6000))
    first = immediate.ask("exchange_info")
    _, answers = immediate.claim("exchange_info")  # the poll starts before the signal's record
    later = immediate.ask("exchange_info")  # asked once that poll had started
    recording = threading.Timer(0.05, immediate.recorded, ("exchange_info", first, 11))
    recording.start()
    assert immediate.answered("exchange_info", answers, timeout=5) == 11
    recording.join()
    immediate.recorded("exchange_info", later, 12)
    # The first poll's answer took its own; the later signal is the next poll's.
    assert immediate.answered("exchange_info", answers, timeout=0) is None
    _, next_answers = immediate.claim("exchange_info")
    assert immediate.answered("exchange_info", next_answers, timeout=0) == 12


def test_a_signal_recorded_too_late_for_its_poll_is_answered_by_the_next() -> None:
    immediate = ImmediatePolls(share=0.2, clock=Clock())
    immediate.register("exchange_info", "spot", 20, WeightBudget(0.25, limit=6000))
    slow = immediate.ask("exchange_info")
    _, answers = immediate.claim("exchange_info")
    assert immediate.answered("exchange_info", answers, timeout=0) is None
    immediate.recorded("exchange_info", slow, 5)
    failed = immediate.ask("exchange_info")
    immediate.recorded("exchange_info", failed, None)  # its record failed: nothing to tie
    _, next_answers = immediate.claim("exchange_info")
    assert immediate.answered("exchange_info", next_answers, timeout=0) == 5


def test_a_share_of_zero_polls_nothing() -> None:
    immediate = ImmediatePolls(share=0.0, clock=Clock())
    immediate.register("usdm_exchange_info", "usdm", 1, WeightBudget(0.25, limit=2400))
    assert not immediate.allow("usdm_exchange_info")
    assert not immediate.allow("a_stream_never_registered")


@pytest.mark.parametrize("failures", [0, 1, 3, 10, 40])
def test_reconnection_back_off_is_jittered_under_its_cap(failures: int) -> None:
    rng = random.Random(1)
    delays = [backoff_seconds(failures, 0.5, 30.0, rng) for _ in range(200)]
    assert all(0 <= d <= min(30.0, 0.5 * 2**failures) for d in delays)
    assert len(set(delays)) > 100


def test_a_listener_asks_for_a_combined_stream() -> None:
    assert stream_path(("!miniTicker@arr", "ethbtc@trade")) == (
        "/stream?streams=!miniTicker@arr/ethbtc@trade"
    )


def started(ran: list[int], count: int) -> None:
    deadline = time.monotonic() + 5
    while len(ran) < count and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(ran) == count


def test_an_immediate_poll_asked_during_a_poll_starts_at_once_beside_it() -> None:
    release = threading.Event()
    ran: list[int] = []

    def task() -> None:
        ran.append(1)
        release.wait(5)

    worker = StreamWorker("exchange_info", task, lambda _: None)
    worker.dispatch()
    started(ran, 1)
    worker.dispatch()  # a slot while the poll is in flight: skipped
    worker.dispatch(at_once=True)  # the poll in flight may have fetched before the change
    started(ran, 2)  # while the first is still in flight
    worker.dispatch(at_once=True)  # a third while both are in flight: right after one ends
    assert len(ran) == 2
    release.set()
    started(ran, 3)
    worker.close()
    assert worker.join(5)
    assert len(ran) == 3


def test_a_poll_sent_before_one_that_was_applied_is_overtaken() -> None:
    order = SendOrder()
    slot, immediate, next_slot = order.take(), order.take(), order.take()
    assert not order.overtaken(slot)
    order.applied(immediate)
    assert order.overtaken(slot)
    assert not order.overtaken(immediate)
    assert not order.overtaken(next_slot)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("USDM_STREAM_URL", "https://fstream.binance.com"),
        ("SPOT_API_URL", "https://ws-api.binance.com"),
        ("SILENCE_FACTOR", "1"),
        ("SUSPICION_WEIGHT_SHARE", "1.5"),
        ("RECONNECT_BASE_SECONDS", "60"),
    ],
)
def test_bad_realtime_settings_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[realtime\]"):
        load_settings(environ={f"EXMETA_REALTIME__{key}": value})
