"""/metrics after a scripted run against the sim: it parses, and it matches the log."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

import migrations
from api import create_app
from binance_sim.server import SimServer
from core.config import DatabaseSettings, Settings
from core.db import create_db_engine
from core.ingest import Fetched, StreamWriter
from tests.builders import (
    client_for,
    exchange_info,
    exchange_info_job,
    record_exchange_info,
    record_failure,
    symbol,
)
from tests.conftest import DatabaseServer
from tests.reads import rows_scanned, statements_sent

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


def record_polls(engine: Engine, start: datetime, n: int) -> datetime:
    """``n`` polls a second apart, every fifth failed; the last one a success."""
    document = exchange_info(symbol("BTCUSDT"))
    when = start
    for i in range(n):
        when = start + timedelta(seconds=i)
        if i % 5 == 4 and i != n - 1:
            record_failure(engine, when)
        else:
            record_exchange_info(engine, document, when)
    return when


def test_a_scrape_reads_as_much_of_the_log_after_a_thousand_polls_as_after_ten(
    engine: Engine, api_engine: Engine
) -> None:
    def scanned(now: datetime) -> dict[str, int]:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE observations"))  # as autovacuum would have
        app = create_app(Settings(), api_engine, clock=lambda: now)
        with statements_sent(api_engine) as sent:
            assert app.test_client().get("/metrics").status_code == 200
        return {t: rows_scanned(engine, sent, t) for t in ("observations", "symbol_versions")}

    start = datetime(2025, 1, 1, tzinfo=UTC)
    last = record_polls(engine, start, 10)
    after_ten = scanned(last)
    last = record_polls(engine, last + timedelta(seconds=1), 1000)
    after_a_thousand = scanned(last)

    # Ten rows are read as fast whole as by an index: the planner may do either then.
    assert after_a_thousand["observations"] <= after_ten["observations"] <= 20
    assert after_a_thousand["symbol_versions"] == after_ten["symbol_versions"] == 0


def test_the_totals_start_from_the_log_the_migration_finds(pg_server: DatabaseServer) -> None:
    engine = create_db_engine(pg_server.create_database("exmeta_totals"), DatabaseSettings())
    try:
        migrations.upgrade(engine, "0100")
        with engine.begin() as conn:
            for i, (outcome, error_class, attempts, ms) in enumerate(
                [
                    ("changed", None, 1, 20),
                    ("unchanged", None, None, 30),
                    ("error", "http_error", 3, 4000),
                    ("unchanged", None, 2, 30),
                ]
            ):
                conn.execute(
                    text(
                        "INSERT INTO observations (stream, replica_id, observed_at, requested_at,"
                        " duration_ms, outcome, error_class, attempts, backoff_ms) VALUES"
                        " ('system_status', 'old', :t, :t, :ms, :outcome, :error, :attempts, 5)"
                    ),
                    {
                        "t": datetime(2025, 1, 1, 0, 0, i, tzinfo=UTC),
                        "ms": ms,
                        "outcome": outcome,
                        "error": error_class,
                        "attempts": attempts,
                    },
                )
            conn.execute(
                text(
                    "INSERT INTO system_status_versions (system, valid_from, status, raw,"
                    " content_hash, opened_by) SELECT 'binance', observed_at, 0, '{}', '\\x00', id"
                    " FROM observations WHERE outcome = 'changed'"
                )
            )
        migrations.upgrade(engine)
        StreamWriter(engine, "system_status").record(
            Fetched(
                stream="system_status",
                replica_id="new",
                requested_at=datetime(2025, 1, 1, 0, 1, tzinfo=UTC),
                duration_ms=60,
                server_time=datetime(2025, 1, 1, 0, 1, tzinfo=UTC),
                error_class="timeout",
                attempts=2,
                backoff_ms=100,
            )
        )
        samples = scrape(engine, datetime(2025, 1, 1, 0, 2, tzinfo=UTC))
    finally:
        engine.dispose()

    def stream_value(name: str, **labels: str) -> float:
        return value(samples, name, stream="system_status", **labels)

    assert stream_value("exmeta_polls_total", outcome="changed") == 1
    assert stream_value("exmeta_polls_total", outcome="unchanged") == 2
    assert stream_value("exmeta_polls_total", outcome="error") == 2
    assert stream_value("exmeta_poll_errors_total", error_class="http_error") == 1
    assert stream_value("exmeta_poll_errors_total", error_class="timeout") == 1
    assert stream_value("exmeta_binance_requests_total") == 1 + 1 + 3 + 2 + 2
    assert stream_value("exmeta_retries_total") == 0 + 0 + 2 + 1 + 1
    assert stream_value("exmeta_backoff_seconds_total") == (4 * 5 + 100) / 1000
    assert stream_value("exmeta_poll_duration_seconds_count") == 5
    assert stream_value("exmeta_poll_duration_seconds_sum") == (20 + 30 + 4000 + 30 + 60) / 1000
    assert stream_value("exmeta_poll_duration_seconds_bucket", le="0.025") == 1
    assert stream_value("exmeta_poll_duration_seconds_bucket", le="0.05") == 3
    assert stream_value("exmeta_poll_duration_seconds_bucket", le="0.1") == 4
    assert stream_value("exmeta_poll_duration_seconds_bucket", le="2.5") == 4
    assert stream_value("exmeta_poll_duration_seconds_bucket", le="5") == 5
    assert value(samples, "exmeta_versions_written_total", table="system_status_versions") == 1
