"""How an observation is dated when the body carries Binance's ``serverTime``.

``serverTime`` is the best timestamp there is for a snapshot (it is when Binance built
it), but it is a field of the body, written by a clock we do not run: a glitch at the
exchange or a proxy in between can put anything there. The stream's ordering rule
(an observation no newer than the last applied one is ``stale``) makes a single date in
the future fatal: every real poll after it is stale until the wall clock catches up.

So ``serverTime`` is trusted only where it can be true. The response was built after the
request was sent and before it was received; on the database clock (the one every
replica shares, DESIGN §6) that is the request's window. A ``serverTime`` within the
window widened by the tolerance dates the observation. Outside it, the observation is
dated by the database clock at the end of the window, and the disagreement is recorded:

- ahead (later than the response was received): no body is built in the future, so the
  content is from within the window and is applied, dated by the database clock; the end
  of the window (when the write took its stream's lock) dates a change no earlier than it
  could have been seen, and with the same clock and instant a body without ``serverTime``
  gets.
- behind (earlier than the request was sent): the content may be older than the request
  (a cache or a replay in between), so applying it could undo newer history; it is
  recorded ``stale`` and changes nothing. Binance's own clock cannot lag the world by
  seconds without every trader's signed request failing (``recvWindow``); a database
  clock running ahead by more than the tolerance makes every poll ``stale``, loudly
  (counted, logged, a gap in ``/readyz``): a gap is honest, a reverted change is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Skew(StrEnum):
    """How a ``serverTime`` outside its request's window disagrees with the database clock."""

    AHEAD = "ahead"
    BEHIND = "behind"


@dataclass(frozen=True, slots=True)
class RequestWindow:
    """When a poll's request was sent and its response received, on the database clock."""

    sent_at: datetime
    received_at: datetime


def date_observation(
    server_time: datetime, window: RequestWindow, tolerance: timedelta
) -> tuple[datetime, Skew | None]:
    """The observation's time, and how ``server_time`` disagrees (None: it is that time).

    The bounds are inclusive: a ``serverTime`` exactly ``tolerance`` off still dates it.
    """
    if server_time > window.received_at + tolerance:
        return window.received_at, Skew.AHEAD
    if server_time < window.sent_at - tolerance:
        return window.received_at, Skew.BEHIND
    return server_time, None
