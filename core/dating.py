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

Either way the content is applied as usual, dated by the database clock at the end of
the window (when the write took its stream's lock: the instant a body without
``serverTime`` gets, and never before the change could have been seen):

- ahead (later than the response was received): no body is built in the future, so the
  content is from within the window.
- behind (earlier than the request was sent): Binance's own clock cannot lag the world by
  seconds without every trader's signed request failing (``recvWindow``), so this is the
  database's clock running ahead, or a proxy. Refusing the content would freeze the
  stream for as long as the clocks disagree, which is the failure this rule exists to
  prevent; a cache replaying an old body is indistinguishable from a body without
  ``serverTime``, which is applied too.
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
