"""Immediate polls: how the realtime listeners reach the poll loop without running a poll.

A listener's thread only says "poll this stream now" (``ask``); the loop (poller.runner)
picks the request up at once, dispatches the stream's worker as it would for a slot, and
that poll takes the lease due or not. So the loop stays the one place that decides when a
poll runs, and a listener never waits on Binance or the database for a poll: it asks
first and records its signal (core.signals) after, while the poll is already under way.
Each request gets a ticket; a poll answers the requests made before it started, and ties
their signals to itself once they are recorded (``answered``). A request that comes while
its stream's poll is in flight starts another beside it (poller.runner.StreamWorker): the
poll in flight may have fetched before the change.

What listeners may spend is capped: the immediate polls of one market may use at most
``share`` of its weight budget over any minute, so a flood of suspicions (a market that
goes quiet, a busy account) can never eat the weight the slots and other systems on the
IP need. A request past the cap is refused, and the listener records the signal unpolled.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from poller.retry import WeightBudget

_WINDOW_SECONDS = 60.0


@dataclass
class _Stream:
    market: str
    weight: int
    budget: WeightBudget
    asked: bool = False
    urgent: bool = False
    tickets: int = 0  # requests made so far; a poll answers those up to its claim's
    unrecorded: set[int] = field(default_factory=set)  # tickets whose signal is being recorded
    # Recorded signals (core.signals) by ticket, until a poll answers them.
    signals: dict[int, int] = field(default_factory=dict)


@dataclass
class _Spent:
    polls: deque[tuple[float, int]] = field(default_factory=deque)

    def in_window(self, now: float) -> int:
        while self.polls and self.polls[0][0] <= now - _WINDOW_SECONDS:
            self.polls.popleft()
        return sum(weight for _, weight in self.polls)


class ImmediatePolls:
    """Requests for immediate polls, between the listeners' threads and the poll loop."""

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self._clock = clock
        self._lock = threading.Lock()
        # The same lock: a poll waits on it for the signals of its requests to be recorded.
        self._recording = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._streams: dict[str, _Stream] = {}
        self._spent: dict[str, _Spent] = {}

    def register(self, stream: str, market: str, weight: int, budget: WeightBudget) -> None:
        """A stream that may be polled at once; ``budget`` is its market's weight budget."""
        with self._lock:
            self._streams[stream] = _Stream(market, weight, budget)
            self._spent.setdefault(market, _Spent())

    def allow(self, stream: str) -> bool:
        """Whether an immediate poll of ``stream`` fits its market's share now; if it
        does, its weight is counted as spent. One already asked for and not yet started
        costs nothing more: one exchangeInfo poll answers every symbol's suspicion."""
        with self._lock:
            declared = self._streams.get(stream)
            if declared is None:
                return False
            if declared.urgent:
                return True  # the poll asked for and not yet started answers this one too
            now = self._clock()
            spent = self._spent[declared.market]
            allowance = self.share * declared.budget.budget
            if spent.in_window(now) + declared.weight > allowance:
                return False
            spent.polls.append((now, declared.weight))
            return True

    def ask(self, stream: str) -> int:
        """Poll ``stream`` now (never blocks); the request's ticket, for ``recorded``."""
        with self._lock:
            declared = self._streams[stream]
            declared.asked = declared.urgent = True
            declared.tickets += 1
            declared.unrecorded.add(declared.tickets)
            ticket = declared.tickets
        self._wake.set()
        return ticket

    def recorded(self, stream: str, ticket: int, signal_id: int | None) -> None:
        """The signal that made request ``ticket`` is on record as ``signal_id`` (None: it
        could not be recorded); the poll answering it may now tie it to itself."""
        with self._recording:
            declared = self._streams[stream]
            declared.unrecorded.discard(ticket)
            if signal_id is not None:
                declared.signals[ticket] = signal_id
            self._recording.notify_all()

    def take_asked(self) -> list[str]:
        """The streams asked for since the loop last looked (the loop's side)."""
        with self._lock:
            asked = [name for name, s in self._streams.items() if s.asked]
            for name in asked:
                self._streams[name].asked = False
            return asked

    def claim(self, stream: str) -> tuple[bool, int]:
        """For a poll starting now: whether one was asked for (so it need not be due),
        and the last ticket it answers (requests made before it started)."""
        with self._lock:
            declared = self._streams.get(stream)
            if declared is None:
                return False, 0
            urgent, declared.urgent = declared.urgent, False
            return urgent, declared.tickets

    def answered(self, stream: str, ticket: int, timeout: float) -> int | None:
        """For a poll that was recorded: the newest signal of the requests up to ``ticket``,
        which it now answers (None: none). Waits up to ``timeout`` for signals still being
        recorded (a few milliseconds: the listener asked before it wrote); one recorded
        later is answered by the next poll. A poll that failed does not call this: its
        requests' signals wait for the next one."""
        with self._recording:
            declared = self._streams.get(stream)
            if declared is None:
                return None
            self._recording.wait_for(
                lambda: not any(t <= ticket for t in declared.unrecorded), timeout
            )
            taken = [t for t in declared.signals if t <= ticket]
            return max((declared.signals.pop(t) for t in taken), default=None)

    def wait(self, timeout: float) -> None:
        """The loop's idle wait: up to ``timeout`` seconds, cut short by ``ask`` or ``wake``."""
        self._wake.wait(timeout)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()
