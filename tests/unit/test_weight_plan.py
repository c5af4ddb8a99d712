"""The weight budget's arithmetic: what the intervals need, what the budget leaves them."""

import pytest

from core.config import BinanceSettings, PollerSettings, Secret, Settings
from core.weight_plan import DEFAULT_WEIGHT_LIMIT, plan_for, weight_plan

FUTURES = ("usdm_exchange_info", "coinm_exchange_info")

BOTH_EVERY_SECOND = {"exchange_info": 1.0, "system_status": 1.0}
WEIGHTS = {"exchange_info": 20, "system_status": 1}


def test_the_issues_case_a_quarter_of_2022s_limit_stretches_1_s_polls_to_4_2_s() -> None:
    plan = weight_plan(BOTH_EVERY_SECOND, WEIGHTS, limit=1200, fraction=0.25)

    assert plan.starved
    assert (plan.budget_per_minute, plan.needed_per_minute) == (300, 1260)
    assert plan.effective_intervals == {
        "exchange_info": pytest.approx(4.2),
        "system_status": pytest.approx(4.2),
    }
    assert plan.describe() == (
        "weight budget 300/min (25% of the exchange's 1,200/min) < 1,260/min needed by the"
        " configured intervals: on average exchange_info every ~4.2 s instead of 1 s,"
        " system_status every ~4.2 s instead of 1 s"
    )


def test_a_budget_that_suffices_leaves_the_intervals_as_configured() -> None:
    plan = weight_plan({"exchange_info": 10.0, "system_status": 30.0}, WEIGHTS, 6000, 0.25)

    assert not plan.starved
    assert plan.needed_per_minute == 122
    assert plan.effective_intervals == {"exchange_info": 10.0, "system_status": 30.0}
    assert plan.describe() == (
        "weight budget 1,500/min (25% of the exchange's 6,000/min) covers the 122/min"
        " the configured intervals need"
    )


def test_a_need_exactly_at_the_budget_is_not_starved() -> None:
    plan = weight_plan({"exchange_info": 1.0}, WEIGHTS, limit=4800, fraction=0.25)

    assert plan.needed_per_minute == plan.budget_per_minute == 1200
    assert not plan.starved


def test_long_effective_intervals_are_written_out_in_two_digits() -> None:
    plan = weight_plan({"exchange_info": 60.0}, {"exchange_info": 2000}, limit=10, fraction=1)

    assert plan.effective_intervals["exchange_info"] == 12_000
    assert "exchange_info every ~12000 s instead of 60 s" in plan.describe()


def test_the_plan_of_settings_counts_each_commission_symbol_and_the_default_limit() -> None:
    settings = Settings(
        binance=BinanceSettings(api_key=Secret("k"), api_secret=Secret("s")),
        poller=PollerSettings(
            exchange_info_interval=60,
            account_interval=60,
            system_status_interval=60,
            delistings_interval=300,
            wallet_networks_interval=60,
            margin_pairs_interval=60,
            margin_isolated_pairs_interval=60,
            margin_delistings_interval=300,
            commission_symbols=("BTCUSDT", "ETHUSDT"),
        ),
    )

    plan = plan_for(settings, settings.enabled_streams(), None)

    # Per minute: exchangeInfo 20, system status 1, account 20, delistings 100 / 5, the
    # wallet's networks 10, the margin pairs 1 (cross) and 10 (isolated), the margin
    # delist schedule 100 / 5, and the commission of two symbols at 20 each.
    assert plan.needed_per_minute == 20 + 1 + 20 + 20 + 10 + 1 + 10 + 20 + 40
    assert plan.limit == DEFAULT_WEIGHT_LIMIT
    assert plan.intervals.keys() == set(settings.enabled_streams()) - set(FUTURES)


def test_each_futures_market_is_planned_apart_on_its_own_limit() -> None:
    """Binance counts weight per API: a futures poll costs nothing of spot's budget."""
    settings = Settings(poller=PollerSettings(usdm_exchange_info_interval=0.5))
    usdm = plan_for(settings, settings.enabled_streams(), 2400, "usdm")
    assert (usdm.intervals, usdm.needed_per_minute, usdm.limit) == (
        {"usdm_exchange_info": 0.5},
        120,
        2400,
    )
    spot = plan_for(settings, settings.enabled_streams(), None)
    assert spot.needed_per_minute == 60 * 20 / 10 + 60 * 1 / 30  # exchangeInfo, system status
