"""/metrics after a scripted run against the sim: it parses, and it matches the log."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api import create_app
from binance_sim.server import SimServer
from core.config import DatabaseSettings, Settings
from core.db import create_db_engine
from core.ingest import StreamWriter
from poller.job import exchange_info_job
from tests.builders import client_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def add_fault(sim: SimServer, **fault: object) -> None:
    assert requests.post(f"{sim.url}/_sim/faults", json=fault, timeout=5).status_code == 201


def scrape(engine: Engine, now: datetime) -> Samples:
    response = create_app(Settings(), engine, clock=lambda: now).test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def query(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


@pytest.fixture
def scripted_run(engine: Engine, sim: SimServer) -> None:
    """Eight polls: clean, retried, failed in several ways, paused, and a change."""
    job = exchange_info_job(
        client_for(sim.url, max_attempts=3), StreamWriter(engine, "exchange_info"), "test"
    )
    job.run()  # changed: the first snapshot
    add_fault(sim, kind="status", status=503, count=2)
    job.run()  # unchanged, after two retries
    add_fault(sim, kind="truncated", count=3)
    job.run()  # error: truncated three times
    add_fault(sim, kind="geo_block", status=200)
    job.run()  # error: binance_error, not retried
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    job.run()  # changed: one symbol version closed and one opened
    add_fault(sim, kind="rate_limit", retry_after=30)
    job.run()  # error: rate_limited
    job.run()  # error: rate_limited_pause, nothing sent


@pytest.mark.usefixtures("scripted_run")
def test_metrics_counters_match_the_observation_log_and_the_sim(
    engine: Engine, api_engine: Engine, sim: SimServer
) -> None:
    now = datetime.now(UTC) + timedelta(seconds=5)
    samples = scrape(api_engine, now)

    def polls(outcome: str) -> float:
        return value(samples, "exmeta_polls_total", stream="exchange_info", outcome=outcome)

    assert (polls("changed"), polls("unchanged"), polls("error")) == (2, 1, 4)
    for outcome, n in query(engine, "SELECT outcome, count(*) FROM observations GROUP BY 1"):
        assert polls(outcome) == n
    errors = {
        dict(labels)["error_class"]: v
        for (name, labels), v in samples.items()
        if name == "exmeta_poll_errors_total"
    }
    assert errors == {
        "truncated": 1,
        "binance_error": 1,
        "rate_limited": 1,
        "rate_limited_pause": 1,
    }
    sim_requests = requests.get(f"{sim.url}/_sim/requests", timeout=5).json()["requests"]
    assert value(samples, "exmeta_binance_requests_total", stream="exchange_info") == len(
        sim_requests
    )
    assert len(sim_requests) == 1 + 3 + 3 + 1 + 1 + 1  # the pause sent nothing
    assert value(samples, "exmeta_retries_total", stream="exchange_info") == 4
    [(backoff_ms, duration_ms, count)] = query(
        engine, "SELECT sum(backoff_ms), sum(duration_ms), count(*) FROM observations"
    )
    assert backoff_ms > 0
    assert value(samples, "exmeta_backoff_seconds_total", stream="exchange_info") == (
        backoff_ms / 1000
    )
    assert value(samples, "exmeta_poll_duration_seconds_count", stream="exchange_info") == count
    assert value(samples, "exmeta_poll_duration_seconds_sum", stream="exchange_info") == (
        duration_ms / 1000
    )
    assert (
        value(samples, "exmeta_poll_duration_seconds_bucket", stream="exchange_info", le="+Inf")
        == count
    )
    for table, n in query(
        engine,
        "SELECT 'symbol_versions', count(*) FROM symbol_versions UNION ALL"
        " SELECT 'symbol_filter_versions', count(*) FROM symbol_filter_versions UNION ALL"
        " SELECT 'rate_limit_versions', count(*) FROM rate_limit_versions",
    ):
        assert value(samples, "exmeta_versions_written_total", table=table) == n
    assert value(samples, "exmeta_versions_written_total", table="symbol_versions") == 12 + 1
    [(last_success,)] = query(
        engine, "SELECT max(observed_at) FROM observations WHERE outcome <> 'error'"
    )
    assert value(
        samples, "exmeta_seconds_since_last_success", stream="exchange_info"
    ) == pytest.approx((now - last_success).total_seconds())
    [(last_weight,)] = query(
        engine,
        "SELECT used_weight FROM observations WHERE used_weight IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    assert value(samples, "exmeta_used_weight", stream="exchange_info") == last_weight


def test_metrics_of_an_empty_log_say_no_success_yet(api_engine: Engine) -> None:
    samples = scrape(api_engine, datetime.now(UTC))

    assert value(samples, "exmeta_seconds_since_last_success", stream="exchange_info") == float(
        "inf"
    )
    assert value(samples, "exmeta_versions_written_total", table="symbol_versions") == 0
    assert not [name for name, _ in samples if name == "exmeta_polls_total"]


def test_metrics_without_a_database_is_a_503(engine: Engine) -> None:
    unreachable = create_db_engine(
        "postgresql://exmeta@127.0.0.1:1/exmeta", DatabaseSettings(connect_timeout_seconds=1)
    )
    try:
        response = create_app(Settings(), unreachable).test_client().get("/metrics")
    finally:
        unreachable.dispose()

    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"]["code"] == "database_unavailable"
