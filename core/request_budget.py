"""The IP's standing with Binance, shared by every replica through one row (DESIGN §6, §9).

Binance counts request weight, and bans, per IP; replicas on one deployment reach it
through what we must assume is one IP (behind one NAT, or one host for a laptop), and we
cannot tell otherwise, so ``request_budget`` holds one row for all of them per market,
since Binance counts weight per IP and per API (spot, USD-M, COIN-M; notes §14):

- ``used_weight`` / ``weight_window``: the latest ``X-MBX-USED-WEIGHT-1M`` any replica was
  told, and the minute it was counted in. The header is already the IP's total, whoever
  sent the requests, so the latest figure of the newest window is the whole truth: within
  one window the count only grows, and a figure from an older window is no longer news.
  Merging by ``(window, greatest)`` makes the row independent of the order in which
  replicas report.
- ``paused_until`` / ``pause_reason``: after a 429 or 418, ``clock_timestamp()`` plus its
  ``Retry-After``; a later, shorter pause never shortens a longer one.

Every time is the database's ``clock_timestamp()``, never a replica's: replicas' clocks
may be skewed, and a pause computed on a clock five minutes behind would end five minutes
late, or one ahead would end at once. A replica reports how long ago (on its monotonic
clock) it was told a weight, and the database dates it.

The row may be missing (a fresh or emptied database): that reads as "not paused, nothing
used", and the first report creates it. A time never set is ``'-infinity'`` (it loses
every ``greatest``), which is only ever compared, never subtracted from.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

# What the next request must wait for, as of now on the database clock: the pause left, and
# (when the current window's weight is above the budget) the time to the next window.
# '-infinity' (never paused, never counted) is kept out of every subtraction: PostgreSQL
# before 17 refuses to subtract infinite timestamps, and the row would never be written.
_STANDING = """
    greatest(0, extract(epoch FROM
        greatest(paused_until, clock_timestamp()) - clock_timestamp()))::float8 AS paused_seconds,
    pause_reason,
    CASE WHEN used_weight > CAST(:budget AS float8)
          AND weight_window = date_trunc('minute', clock_timestamp())
         THEN extract(epoch FROM weight_window + interval '1 minute' - clock_timestamp())::float8
         ELSE 0 END AS wait_seconds
"""

_READ = text(f"SELECT {_STANDING} FROM request_budget WHERE market = :market")

_REPORT = text(
    "INSERT INTO request_budget AS b"
    " (market, used_weight, weight_window, paused_until, pause_reason)"
    " VALUES (:market, coalesce(CAST(:used AS integer), 0),"
    "  CASE WHEN CAST(:used AS integer) IS NULL THEN '-infinity' ELSE date_trunc('minute',"
    "   clock_timestamp() - make_interval(secs => CAST(:age AS float8))) END,"
    "  CASE WHEN CAST(:pause AS float8) IS NULL THEN '-infinity'"
    "   ELSE clock_timestamp() + make_interval(secs => CAST(:pause AS float8)) END,"
    "  coalesce(CAST(:reason AS text), ''))"
    " ON CONFLICT (market) DO UPDATE SET"
    " used_weight = CASE"
    "  WHEN excluded.weight_window > b.weight_window THEN excluded.used_weight"
    "  WHEN excluded.weight_window = b.weight_window"
    "   THEN greatest(b.used_weight, excluded.used_weight)"
    "  ELSE b.used_weight END,"
    " weight_window = greatest(b.weight_window, excluded.weight_window),"
    " paused_until = greatest(b.paused_until, excluded.paused_until),"
    " pause_reason = CASE WHEN excluded.paused_until > b.paused_until"
    "  THEN excluded.pause_reason ELSE b.pause_reason END"
    f" RETURNING {_STANDING}"
)


@dataclass(frozen=True, slots=True)
class Standing:
    """What the next request must wait for, by the database's clock (0: nothing)."""

    paused_seconds: float
    pause_reason: str
    wait_seconds: float


OPEN = Standing(0.0, "", 0.0)


@dataclass(frozen=True, slots=True)
class Report:
    """What one replica was told: a used weight ``age_seconds`` ago, and/or a pause."""

    used_weight: int | None = None
    age_seconds: float = 0.0
    pause_seconds: float | None = None
    pause_reason: str | None = None


def standing(
    conn: Connection, budget: float, report: Report | None = None, market: str = "spot"
) -> Standing:
    """The IP's standing on ``market`` against ``budget`` (weight per minute), after
    ``report`` if any.

    One statement either way: a read when there is nothing to report, else an upsert that
    returns the merged row, so a replica shares its news and learns the others' at once.
    """
    if report is None:
        row = conn.execute(_READ, {"budget": budget, "market": market}).first()
    else:
        row = conn.execute(
            _REPORT,
            {
                "budget": budget,
                "market": market,
                "used": report.used_weight,
                "age": report.age_seconds,
                "pause": report.pause_seconds,
                "reason": report.pause_reason,
            },
        ).first()
    if row is None:
        return OPEN
    return Standing(row.paused_seconds, row.pause_reason, row.wait_seconds)
