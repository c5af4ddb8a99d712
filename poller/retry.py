"""What stands between a poll and Binance: retries, the rate-limit pause, the weight budget.

Binance bans an IP that keeps calling after a 429 (418, from 2 minutes up to 3 days), and
a ban takes every other system behind the same IP down with it, so the rules here are
about never earning one (DESIGN §9):

- 5xx answers, timeouts and bodies cut short are retried, at most ``max_attempts`` requests
  per poll, with exponential back-off and jitter. Each attempt builds its request anew, so
  a signed request gets a fresh timestamp and signature instead of replaying a stale one.
  All of them, back-offs included, fit inside the poll's deadline (poller.binance), so a
  retry never makes a poll outlast its stream's slot.
- 4xx answers are never retried: the same request would get the same answer.
- 429 and 418 are not retried either: nothing is sent to Binance, by any job of any
  replica, until their ``Retry-After`` has passed.
- When the last ``X-MBX-USED-WEIGHT-1M`` is above the budget, the next request waits for
  the next minute window, before Binance has to complain.

Binance judges the IP, not the replica, so the pause and the used weight are shared
through the database (``SharedBudget`` over core.request_budget), which every replica
consults before each request. Each replica also keeps its own ``RateGate`` and
``WeightBudget``: they answer without a round trip while they already know the answer
(a pause in force, a window already spent), and they alone decide while the database
is unreachable. Then a poll cannot be recorded anyway, and what this replica saw itself
(its own 429s and used weights, which Binance counts for the whole IP) still keeps it
from earning a ban; the others learn of it when the database is back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from core import request_budget
from core.config import Settings
from core.db import database_error
from core.request_budget import Report, Standing
from core.weight_plan import DEFAULT_WEIGHT_LIMIT
from poller.binance import BinanceClient, Deadline, Response

log = logging.getLogger(__name__)

# Failures where the same request may well succeed a moment later.
RETRYABLE_ERRORS = frozenset({"timeout", "connection", "connection_reset", "truncated"})
# Binance sends Retry-After with every 429 and 418; should one come without, this is long
# enough to let any 1-minute window roll over.
DEFAULT_PAUSE_SECONDS = 60.0
# Our clock and Binance's disagree a little on where a minute starts.
WINDOW_MARGIN_SECONDS = 0.5

# One attempt: sends one request (built anew, e.g. freshly signed), ended by the deadline.
Attempt = Callable[[Deadline], Response]
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

    In-process: a replica's jobs share one client and so one gate. Other replicas learn of
    the pause through ``SharedBudget``; a pause learnt from them closes this gate too.
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
    """Keeps the used weight per minute under ``fraction`` of the exchange limit.

    Binance counts weight in fixed windows aligned on whole minutes (notes §8.1) and tells
    the IP's count after each request; past the budget, the next request waits for the next
    window rather than spending the rest of the limit, which other systems on the same IP
    need too. This is what the replica saw itself; ``SharedBudget`` adds what the others saw.
    """

    def __init__(
        self,
        fraction: float,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        clock: Callable[[], float] = time.time,
        on_limit: Callable[[int], None] | None = None,
    ) -> None:
        self.fraction = fraction
        self.limit = limit
        self._clock = clock
        self._on_limit = on_limit
        self._learnt = False
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0

    @property
    def budget(self) -> float:
        return self.fraction * self.limit

    def learn_limit(self, limit: int) -> None:
        """Size the budget on the exchange's REQUEST_WEIGHT limit, as recorded.

        Every job learns it once and again when the exchange's rate limits change; the
        first time and each change (not each job's report) is passed to ``on_limit``.
        """
        with self._lock:
            news = not self._learnt or limit != self.limit
            self.limit = limit
            self._learnt = True
            if news and self._on_limit is not None:
                self._on_limit(limit)

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


class SharedBudget:
    """This replica's side of the IP's standing in the database (core.request_budget).

    One statement per request: before each, the standing is read and, in the same
    statement, the used weight this replica was last told is reported. Reporting with the
    next request rather than after each response keeps it to one statement; a weight
    above the budget and a 429/418 pause are reported at once, since those are what the
    other replicas must not wait to hear. Returns None while the database is unreachable:
    the in-process gate and budget decide meanwhile, and what could not be reported is
    reported with the first statement that succeeds (a pause only if it is not over).
    """

    def __init__(
        self,
        engine: Engine,
        replica_id: str,
        clock: Callable[[], float] = time.monotonic,
        market: str = "spot",
    ) -> None:
        self.market = market  # whose row: Binance counts weight per API
        # Autocommit: a read is one round trip with no BEGIN/ROLLBACK around it.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.replica_id = replica_id
        self._clock = clock
        self._lock = threading.Lock()
        self._weight: tuple[int, float] | None = None  # unreported: used weight, told at
        self._pause: tuple[float, str] | None = None  # unreported: ends at, reason
        self._reachable = True

    def check(self, budget: float) -> Standing | None:
        """The standing before a request, against ``budget`` weight per minute."""
        return self._exchange(budget)

    def note(self, used_weight: int | None, budget: float) -> None:
        """Remember the used weight Binance reported; report it now if above ``budget``."""
        if used_weight is None:
            return
        with self._lock:
            self._weight = (used_weight, self._clock())
        if used_weight > budget:
            self._exchange(budget)

    def pause(self, seconds: float, status: int, budget: float) -> None:
        """Tell every replica that Binance asked for ``seconds`` of silence."""
        with self._lock:
            self._pause = (self._clock() + seconds, f"HTTP {status} seen by {self.replica_id}")
        self._exchange(budget)

    def retell_pause(self, budget: float) -> None:
        """Report a pause the database missed, now that this replica is paused anyway.

        While paused, a replica sends nothing and so has no request to report it with.
        """
        with self._lock:
            missed = self._pause is not None
        if missed:
            self._exchange(budget)

    def _exchange(self, budget: float) -> Standing | None:
        with self._lock:
            weight, pause = self._weight, self._pause
        try:
            with self._engine.connect() as conn:
                report = unreported(weight, pause, self._clock())
                standing = request_budget.standing(conn, budget, report, self.market)
        except SQLAlchemyError as exc:
            if self._reachable:
                log.warning(
                    "shared rate-limit state unreachable (%s); this replica's own gate and"
                    " budget decide until it is back",
                    database_error(exc),
                )
            self._reachable = False
            return None
        if not self._reachable:
            log.info("shared rate-limit state reachable again")
        self._reachable = True
        with self._lock:
            if self._weight is weight:
                self._weight = None
            if self._pause is pause:
                self._pause = None
        return standing


def unreported(
    weight: tuple[int, float] | None, pause: tuple[float, str] | None, now: float
) -> Report | None:
    """What to tell the database, as of ``now``: ages and time left, not instants.

    ``weight`` is (used weight, when told) and ``pause`` (when it ends, reason), both on
    this replica's monotonic clock, which only the database can place in time. A pause
    already over is news to nobody.
    """
    if pause is not None and pause[0] <= now:
        pause = None
    if weight is None and pause is None:
        return None
    used, told_at = weight or (None, now)
    if pause is None:
        return Report(used, now - told_at)
    return Report(used, now - told_at, pause[0] - now, pause[1])


class RetryingClient:
    """``BinanceClient.get`` behind the retry policy, the rate gate and the weight budget.

    One per replica and market, shared by the market's jobs, because the gate and the
    budget are about the IP's standing with that Binance API, not about one stream; ``shared`` (if given) extends them
    to every replica on the database. ``wait`` sleeps and returns True if the replica is
    stopping (``threading.Event.wait``), so no back-off delays a shutdown.
    """

    def __init__(
        self,
        client: BinanceClient,
        policy: RetryPolicy,
        gate: RateGate,
        budget: WeightBudget,
        wait: Wait,
        rng: random.Random | None = None,
        shared: SharedBudget | None = None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.gate = gate
        self.budget = budget
        self.shared = shared
        self._wait = wait
        self._rng = rng or random.Random()

    def get(self, path: str, deadline: Deadline | None = None) -> Response:
        """An unsigned GET of ``path``, with retries, the gate and the weight budget."""
        return self.fetch(lambda d: self.client.get(path, deadline=d), deadline)

    def fetch(self, attempt: Attempt, deadline: Deadline | None = None) -> Response:
        """Call ``attempt`` (one request, built anew each time, so re-signed) until done.

        When the gate is closed nothing is sent and the answer is a ``rate_limited_pause``
        error with no attempts. The poll is recorded rather than skipped, so that the
        observation log (and the gaps and metrics built on it) says why nothing was seen.

        Every attempt and back-off fits before ``deadline`` (default: the client's
        ``timeout_seconds``), which starts with the first request: a retry whose back-off
        would end past it is not made, and the last answer stands. So a poll's requests
        never outlast its stream's deadline, retries included.
        """
        deadline = deadline or self.client.deadline()
        started = time.monotonic()
        waited = 0.0
        attempts = 0
        while True:
            paused, delay = self._clearance()
            if paused > 0:
                if attempts == 0:
                    return _paused(paused, self.gate.reason, started)
                break  # another job was told to stop: keep the last answer, send nothing
            if delay > 0:
                if attempts > 0 and delay >= deadline.left():
                    break  # the budget's next minute comes after the deadline
                log.info(
                    "used weight above %.0f of %d; waiting %.1f s for the next minute",
                    self.budget.budget,
                    self.budget.limit,
                    delay,
                )
                waited += delay
                if self._wait(delay):
                    return _stopped(started, attempts, waited)
                continue  # a pause may have begun meanwhile: look again before sending
            attempts += 1
            deadline.start()
            response = attempt(deadline)
            self.budget.note(response.used_weight)
            if self.shared is not None:
                self.shared.note(response.used_weight, self.budget.budget)
            if response.status in (429, 418):
                response = self._pause(response)
                break
            if attempts >= self.policy.max_attempts or not retryable(response):
                break
            delay = self.policy.backoff(attempts, self._rng)
            # DEBUG: the poll's own line says how many attempts it took and why it failed.
            if delay >= deadline.left():
                log.debug(
                    "attempt %d failed (%s); no retry: the %g s deadline is too near",
                    attempts,
                    _why(response),
                    deadline.seconds,
                )
                break
            log.debug("attempt %d failed (%s); retrying in %.2f s", attempts, _why(response), delay)
            waited += delay
            if self._wait(delay):
                break
        return replace(
            response,
            duration_ms=_elapsed_ms(started),
            attempts=attempts,
            backoff_ms=int(waited * 1000),
        )

    def _clearance(self) -> tuple[float, float]:
        """Seconds of pause left, and of waiting for the weight budget, before a request.

        What this replica knows answers first; only when it sees no reason to hold back is
        the database asked what the other replicas saw.
        """
        paused = self.gate.remaining()
        if paused > 0:
            if self.shared is not None:
                self.shared.retell_pause(self.budget.budget)
            return paused, 0.0
        delay = self.budget.wait_seconds()
        if delay > 0 or self.shared is None:
            return 0.0, delay
        standing = self.shared.check(self.budget.budget)
        if standing is not None and standing.paused_seconds > 0:
            self.gate.close_for(standing.paused_seconds, standing.pause_reason)
            return standing.paused_seconds, 0.0
        if standing is not None and standing.wait_seconds > 0:
            return 0.0, standing.wait_seconds + WINDOW_MARGIN_SECONDS
        # Another job may have been told of a 429 during the round trip: look last thing.
        return self.gate.remaining(), 0.0

    def _pause(self, response: Response) -> Response:
        banned = response.status == 418
        pause = DEFAULT_PAUSE_SECONDS if response.retry_after is None else response.retry_after
        self.gate.close_for(pause, f"HTTP {response.status}")
        if self.shared is not None:
            self.shared.pause(pause, response.status or 0, self.budget.budget)
        log.warning(
            "Binance answered %s; no request for %.0f s%s",
            response.status,
            pause,
            " (IP banned)" if banned else "",
        )
        return replace(response, error_class="ip_banned" if banned else "rate_limited")


def _why(response: Response) -> str:
    return response.error_message or f"{response.error_class}, HTTP {response.status}"


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
