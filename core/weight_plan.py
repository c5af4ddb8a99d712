"""Whether the weight budget covers the configured intervals, and what it leaves if not.

The budget is ``[poller] weight_budget`` of the exchange's REQUEST_WEIGHT per minute; once
a minute's used weight is above it, every request waits for the next minute
(poller.retry). When the intervals need more weight per minute than that, nothing fails:
the streams poll on their intervals until the minute's budget is spent, then all wait
together. Each stream therefore polls, on average, ``needed / budget`` times less often
than configured. That is correct, but silent unless said: the poller logs this plan when
the exchange's limit becomes known or changes, and the API shows it in ``/readyz`` and
``/metrics``, both from the one function here.

The arithmetic counts each stream's request weight per poll (core.streams); the signed
streams' occasional server-time measurement (weight 1 every few minutes) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core import streams as catalogue
from core.config import Settings

# The REQUEST_WEIGHT per minute before the exchange's own rateLimits are known (notes §8.1).
DEFAULT_WEIGHT_LIMIT = 6000


@dataclass(frozen=True)
class WeightPlan:
    limit: int  # the exchange's REQUEST_WEIGHT per minute
    budget_per_minute: float
    needed_per_minute: float
    intervals: Mapping[str, float]  # as configured, seconds
    effective_intervals: Mapping[str, float]  # on average, under the budget

    @property
    def starved(self) -> bool:
        return self.needed_per_minute > self.budget_per_minute

    def describe(self) -> str:
        """One line: the budget against the need and, if starved, each stream's interval."""
        head = (
            f"weight budget {self.budget_per_minute:,.0f}/min"
            f" ({self.budget_per_minute / self.limit:.0%} of the exchange's {self.limit:,}/min)"
        )
        if not self.starved:
            return (
                f"{head} covers the {self.needed_per_minute:,.0f}/min the configured intervals need"
            )
        slower = ", ".join(
            f"{stream} every ~{_two_digits(self.effective_intervals[stream])} s instead of"
            f" {interval:g} s"
            for stream, interval in self.intervals.items()
        )
        return (
            f"{head} < {self.needed_per_minute:,.0f}/min needed by the configured intervals:"
            f" on average {slower}"
        )


def weight_plan(
    intervals: Mapping[str, float], weights: Mapping[str, int], limit: int, fraction: float
) -> WeightPlan:
    """The plan for streams polled every ``intervals[s]`` seconds at ``weights[s]`` a poll,
    under ``fraction`` of ``limit`` weight per minute."""
    needed = sum(60.0 * weights[stream] / interval for stream, interval in intervals.items())
    budget = fraction * limit
    slowdown = max(1.0, needed / budget)
    return WeightPlan(
        limit=limit,
        budget_per_minute=budget,
        needed_per_minute=needed,
        intervals=dict(intervals),
        effective_intervals={s: interval * slowdown for s, interval in intervals.items()},
    )


def plan_for(
    settings: Settings, streams: Iterable[str], limit: int | None, market: str = "spot"
) -> WeightPlan:
    """The plan of those of ``streams`` polled on ``market``, on these settings' intervals,
    under that market's ``limit`` (None: not known yet, the default). Binance counts weight
    per API (notes §14), so each market's streams are paid from its own budget; the API's
    ``/readyz`` and ``/metrics`` report spot's, the one that weight can starve (the futures
    streams cost 1 a poll against a limit of thousands)."""
    intervals = settings.stream_intervals()
    return weight_plan(
        {s: intervals[s] for s in streams if catalogue.stream(s).market == market},
        settings.poll_weights(),
        DEFAULT_WEIGHT_LIMIT if limit is None else limit,
        settings.poller.weight_budget,
    )


def _two_digits(seconds: float) -> str:
    """4.2, 42, 420: two significant digits, never in exponent form."""
    return f"{float(f'{seconds:.2g}'):g}"
