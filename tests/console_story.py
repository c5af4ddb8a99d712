"""The history the console's browser tests look at: one the sim made and the real jobs
polled, with a HALT, a tick-size change, a delisting announcement and a gap in it.

Every stream is polled once first (every market, the wallet, margin and the account), so
each part of the console has something to show; then BTCUSDT's story is played one step
at a time, each step seen by the next poll of its stream (and ETHBTC's MARKET_LOT_SIZE
churns once). The instants are the polls'
own (``Recorded.observed_at``), so the tests ask the console about the very instants the
database holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from binance_sim.server import SimServer
from core.ingest import Recorded
from poller.runner import build_poller
from tests.signed_sim import control, register_key, sim_settings

SYMBOL = "BTCUSDT"
CHURNING = "ETHBTC"
OLD_TICK = "0.01000000"
NEW_TICK = "0.10000000"
DELIST_AT = 1924992000000  # 2031-01-01T00:00Z: an announcement still scheduled
# The API under test is told this interval, so a pause of GAP_SECONDS between two polls
# of exchangeInfo is a gap (over 3 intervals without a successful poll).
EXCHANGE_INFO_INTERVAL = 1
GAP_SECONDS = 3.6


@dataclass(frozen=True, slots=True)
class Story:
    """When each step was seen: the observation that recorded it."""

    first_poll: datetime
    tick_changed: datetime
    halted: datetime
    delisting_announced: datetime
    gap_from: datetime  # the last poll before the gap
    resumed: datetime  # the first poll after it, which saw TRADING again
    last_poll: datetime


def _seen(recorded: Recorded) -> datetime:
    assert recorded.outcome in ("changed", "unchanged"), recorded
    # exchangeInfo is dated by the sim's serverTime (whole ms): a pause keeps each
    # step's instant after the one before.
    time.sleep(0.05)
    return recorded.observed_at


def play_story(sim: SimServer, engine: Engine) -> Story:
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=(SYMBOL,))
    jobs = {
        scheduled.job.stream: scheduled.job
        for scheduled in build_poller(settings, engine, "console").jobs
    }
    first = min(_seen(job.run()) for job in jobs.values())
    exchange_info = jobs["exchange_info"]
    _seen(exchange_info.run())

    [price_filter] = [
        f
        for f in control(sim, "GET", f"/symbols/{SYMBOL}", None)["filters"]
        if f["filterType"] == "PRICE_FILTER"
    ]
    assert price_filter["tickSize"] == OLD_TICK, price_filter
    control(
        sim, "PATCH", f"/symbols/{SYMBOL}", {"filters": [{**price_filter, "tickSize": NEW_TICK}]}
    )
    tick_changed = _seen(exchange_info.run())

    # The daily churn the activity view leaves out by default: another symbol's
    # MARKET_LOT_SIZE.maxQty, which Binance moves with the market's volume.
    [market_lot] = [
        f
        for f in control(sim, "GET", f"/symbols/{CHURNING}", None)["filters"]
        if f["filterType"] == "MARKET_LOT_SIZE"
    ]
    churned = {**market_lot, "maxQty": "5000.00000000"}
    assert churned != market_lot
    control(sim, "PATCH", f"/symbols/{CHURNING}", {"filters": [churned]})
    _seen(exchange_info.run())

    control(sim, "PATCH", f"/symbols/{SYMBOL}", {"fields": {"status": "HALT"}})
    halted = _seen(exchange_info.run())

    schedule = [{"delistTime": DELIST_AT, "symbols": [SYMBOL]}]
    control(sim, "PUT", "/delist-schedule", {"schedule": schedule})
    announced = _seen(jobs["delistings"].run())

    gap_from = _seen(exchange_info.run())
    time.sleep(GAP_SECONDS)
    control(sim, "PATCH", f"/symbols/{SYMBOL}", {"fields": {"status": "TRADING"}})
    resumed = _seen(exchange_info.run())
    last = _seen(exchange_info.run())
    return Story(first, tick_changed, halted, announced, gap_from, resumed, last)
