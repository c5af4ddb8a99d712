"""What stands between a poll and Binance: retries, the rate-limit pause, the weight budget.

Binance bans an IP that keeps calling after a 429 (418, from 2 minutes up to 3 days), and
a ban takes every other system behind the same IP down with it, so the rules here are
about never earning one (DESIGN §9):

- 5xx answers, timeouts and bodies cut short are retried, at most ``max_attempts`` requests
  per poll, with exponential back-off and jitter. Each attempt builds its request anew, so
  a signed request gets a fresh timestamp and signature instead of replaying a stale one.
- 4xx answers are never retried: the same request would get the same answer.
- 429 and 418 are not retried either: they close a ``RateGate`` shared by every job of
  the replica, and nothing is sent to Binance until their ``Retry-After`` has passed.
- When the last ``X-MBX-USED-WEIGHT-1M`` is above the budget, the next request waits for
  the next minute window, before Binance has to complain.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.config import Settings
from poller.binance import BinanceClient, Response

log = logging.getLogger(__name__)

# Failures where the same request may well succeed a moment later.
RETRYABLE_ERRORS = frozenset({"timeout", "connection", "connection_reset", "truncated"})
# Binance sends Retry-After with every 429 and 418; should one come without, this is long
# enough to let any 1-minute window roll over.
DEFAULT_PAUSE_SECONDS = 60.0
# The REQUEST_WEIGHT per minute before the exchange's own rateLimits are known (notes §8.1).
DEFAULT_WEIGHT_LIMIT = 6000
# Our clock and Binance's disagree a little on where a minute starts.
WINDOW_MARGIN_SECONDS = 0.5

# One attempt: sends one request (built anew, e.g. freshly signed) with this read timeout.
Attempt = Callable[[float | None], Response]
Wait = Callable[[float], bool]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        b = settings.binance
        return cls(b.max_attempts, b.backoff_base_seconds, b.backoff_cap_seconds)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (1, 2, ...): "equal jitter".

        Half of ``min(cap, base * 2^(retry-1))`` is fixed and half is random. Full jitter
        (all of it random) spreads replicas slightly better, but may wait less before the
        third attempt than before the second; with equal jitter each wait is at least as
        long as the one before, which is what "back off" promises an overloaded server.
        """
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retryable(response: Response) -> bool:
    if response.error_class in RETRYABLE_ERRORS:
        return True
    return response.status is not None and 500 <= response.status < 600


class RateGate:
    """Closed after a 429 or 418 until its Retry-After has passed; shared by all jobs.

    In-process: a replica's jobs share one client and so one gate. The pause is not yet
    shared with other replicas through the database; with leases only a stream's holder
    calls Binance for it, so this matters when replicas hold different streams.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open_at = 0.0
        self.reason = ""

    def close_for(self, seconds: float, reason: str) -> None:
        with self._lock:
            open_at = self._clock() + seconds
            if open_at > self._open_at:
                self._open_at = open_at
                self.reason = reason

    def remaining(self) -> float:
        """Seconds until requests may be sent again (0: open)."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())


class WeightBudget:
    """Keeps this replica's used weight per minute under ``fraction`` of the exchange limit.

    Binance counts weight in fixed windows aligned on whole minutes (notes §8.1) and tells
    the count after each request; past the budget, the next request waits for the next
    window rather than spending the rest of the limit, which other systems on the same IP
    (and other replicas) need too.
    """

    def __init__(
        self,
        fraction: float,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fraction = fraction
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0

    @property
    def budget(self) -> float:
        return self.fraction * self.limit

    def note(self, used_weight: int | None) -> None:
        """Remember the used weight Binance reported with the latest response."""
        if used_weight is None:
            return
        with self._lock:
            self._window = int(self._clock() // 60)
            self._used = used_weight

    def wait_seconds(self) -> float:
        """How long the next request must wait (0: it may go now)."""
        with self._lock:
            now = self._clock()
            if int(now // 60) != self._window or self._used <= self.budget:
                return 0.0
            return (self._window + 1) * 60 - now + WINDOW_MARGIN_SECONDS


class RetryingClient:
    """``BinanceClient.get`` behind the retry policy, the rate gate and the weight budget.

    One per replica, shared by its jobs, because the gate and the budget are about the
    IP's standing with Binance, not about one stream. ``wait`` sleeps and returns True if
    the replica is stopping (``threading.Event.wait``), so no back-off delays a shutdown.
    """

    def __init__(
        self,
        client: BinanceClient,
        policy: RetryPolicy,
        gate: RateGate,
        budget: WeightBudget,
        wait: Wait,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.gate = gate
        self.budget = budget
        self._wait = wait
        self._rng = rng or random.Random()

    def get(self, path: str, read_timeout: float | None = None) -> Response:
        """An unsigned GET of ``path``, with retries, the gate and the weight budget."""
        return self.fetch(lambda timeout: self.client.get(path, read_timeout=timeout), read_timeout)

    def fetch(self, attempt: Attempt, read_timeout: float | None = None) -> Response:
        """Call ``attempt`` (one request, built anew each time, so re-signed) until done.

        When the gate is closed nothing is sent and the answer is a ``rate_limited_pause``
        error with no attempts. The poll is recorded rather than skipped, so that the
        observation log (and the gaps and metrics built on it) says why nothing was seen.
        """
        started = time.monotonic()
        waited = 0.0
        attempts = 0
        while True:
            paused = self.gate.remaining()
            if paused > 0:
                if attempts == 0:
                    return _paused(paused, self.gate.reason, started)
                break  # another job was told to stop: keep the last answer, send nothing
            delay = self.budget.wait_seconds()
            if delay > 0:
                log.info(
                    "used weight above %.0f of %d; waiting %.1f s for the next minute",
                    self.budget.budget,
                    self.budget.limit,
                    delay,
                )
                waited += delay
                if self._wait(delay):
                    return _stopped(started, attempts, waited)
            attempts += 1
            response = attempt(read_timeout)
            self.budget.note(response.used_weight)
            if response.status in (429, 418):
                response = self._pause(response)
                break
            if attempts >= self.policy.max_attempts or not retryable(response):
                break
            delay = self.policy.backoff(attempts, self._rng)
            log.info(
                "attempt %d failed (%s %s); retrying in %.2f s",
                attempts,
                response.error_class,
                response.status,
                delay,
            )
            waited += delay
            if self._wait(delay):
                break
        return replace(
            response,
            duration_ms=_elapsed_ms(started),
            attempts=attempts,
            backoff_ms=int(waited * 1000),
        )

    def _pause(self, response: Response) -> Response:
        banned = response.status == 418
        pause = DEFAULT_PAUSE_SECONDS if response.retry_after is None else response.retry_after
        self.gate.close_for(pause, f"HTTP {response.status}")
        log.warning(
            "Binance answered %s; no request for %.0f s%s",
            response.status,
            pause,
            " (IP banned)" if banned else "",
        )
        return replace(response, error_class="ip_banned" if banned else "rate_limited")


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _paused(remaining: float, reason: str, started: float) -> Response:
    return Response(
        None,
        None,
        _elapsed_ms(started),
        error_class="rate_limited_pause",
        error_message=f"paused after {reason}; {remaining:.1f} s left, no request sent",
        attempts=0,
    )


def _stopped(started: float, attempts: int, waited: float) -> Response:
    return Response(
        None,
        None,
        _elapsed_ms(started),
        error_class="stopped",
        error_message="the replica stopped while waiting for the weight budget",
        attempts=attempts,
        backoff_ms=int(waited * 1000),
    )
