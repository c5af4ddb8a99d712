"""A weight budget too small for the intervals is said: once in the log, in /readyz and
/metrics (issue 18, point 8).

The issue's case: real 2022 responses, whose REQUEST_WEIGHT limit was 1,200 a minute,
polled every second with the default budget of 25 %: 300 weight a minute against the
1,260 that exchangeInfo (20) and the system status (1) need every second.
"""

import logging
from typing import cast

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from api import create_app
from binance_sim.server import SimServer
from binance_sim.state import SimState
from core.config import replace_section
from poller.runner import build_poller
from tests.api_client import PRIMARY
from tests.builders import poller_settings, sim_urls
from tests.conftest import FIXTURES
from tests.e2e.processes import scalar, wait_for

STARVED_2022 = (
    "weight budget 300/min (25% of the exchange's 1,200/min) < 1,260/min needed by the"
    " configured intervals: on average exchange_info every ~4.2 s instead of 1 s,"
    " system_status every ~4.2 s instead of 1 s"
)
STARVED_2400 = (
    "weight budget 600/min (25% of the exchange's 2,400/min) < 1,260/min needed by the"
    " configured intervals: on average exchange_info every ~2.1 s instead of 1 s,"
    " system_status every ~2.1 s instead of 1 s"
)


def budget_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "poller.runner" and r.getMessage().startswith("weight budget")
    ]


def test_a_starving_budget_is_said_once_at_start_and_once_when_the_limit_changes(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    document = orjson.loads((FIXTURES / "2022-11-28_2124.json").read_bytes())
    settings = replace_section(
        poller_settings("http://unused"),
        "poller",
        exchange_info_interval=1.0,
        system_status_interval=1.0,
    )
    with SimServer(SimState(document)) as sim:
        settings = replace_section(settings, "binance", **sim_urls(sim.url))
        poller = build_poller(settings, engine, "r0")
        poller.start()
        try:
            assert wait_for(lambda: bool(budget_lines(caplog)), 30)
            assert wait_for(
                lambda: cast(int, scalar(engine, "SELECT count(*) FROM observations")) >= 6,
                10,
            )  # a few seconds of polls: the limit, learnt by every job, is still said once
            assert budget_lines(caplog) == [(logging.WARNING, STARVED_2022)]

            document["rateLimits"][0]["limit"] = 2400
            requests.put(
                f"{sim.url}/_sim/exchange-info", json=document, timeout=5
            ).raise_for_status()
            assert wait_for(lambda: len(budget_lines(caplog)) == 2, 20)
        finally:
            assert poller.shutdown(5)
    assert budget_lines(caplog) == [
        (logging.WARNING, STARVED_2022),
        (logging.WARNING, STARVED_2400),
    ]

    last_poll = scalar(engine, "SELECT max(observed_at) FROM observations")
    app = create_app(settings, engine, clock=lambda: last_poll, streams=settings.enabled_streams())
    client = app.test_client()
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json) == (
        200,
        {
            "status": "ready",  # slower polls, but every answer is sound
            "reasons": [STARVED_2400],
            "last_successes": ready.json["last_successes"],
            "database": PRIMARY,
        },
    )
    metrics = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for s in family.samples
    }
    spot = (("market", "spot"),)
    assert metrics[("exmeta_weight_budget_per_minute", spot)] == 600
    assert metrics[("exmeta_weight_needed_per_minute", spot)] == 1260
    assert metrics[("exmeta_effective_interval_seconds", (("stream", "exchange_info"),))] == (
        pytest.approx(2.1)
    )
