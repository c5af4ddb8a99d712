"""A stream declared in the catalogue alone is polled, checked by /readyz and in /metrics."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from api import create_app
from core import streams
from core.config import Settings
from poller.runner import build_poller

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
# A public stream that reuses system_status's parser and interval setting: a declaration
# is all it is, so whatever shows it below can only have read the catalogue.
EXTRA = replace(
    streams.stream("system_status"),
    name="extra_status",
    path="/sapi/v1/extra/status",
    weight=7,
    tables=(),
    feed=(),
)


@pytest.fixture
def extended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "CATALOGUE", (*streams.CATALOGUE, EXTRA))


@pytest.mark.usefixtures("extended")
def test_settings_derive_the_new_stream() -> None:
    settings = Settings()
    assert settings.enabled_streams() == (
        "exchange_info",
        "system_status",
        "usdm_exchange_info",
        "coinm_exchange_info",
        "extra_status",
    )
    assert settings.stream_intervals()["extra_status"] == settings.poller.system_status_interval
    assert settings.poll_weights()["extra_status"] == 7


@pytest.mark.usefixtures("extended")
def test_the_poller_builds_its_job_from_the_declaration(engine: Engine) -> None:
    settings = Settings()
    poller = build_poller(settings, engine, "r0")
    assert sorted((j.job.stream, j.job.path, j.interval) for j in poller.jobs) == [
        ("coinm_exchange_info", "/dapi/v1/exchangeInfo", 10.0),
        ("exchange_info", "/api/v3/exchangeInfo", 10.0),
        ("extra_status", "/sapi/v1/extra/status", 30.0),
        ("system_status", "/sapi/v1/system/status", 30.0),
        ("usdm_exchange_info", "/fapi/v1/exchangeInfo", 10.0),
    ]


@pytest.mark.usefixtures("extended")
def test_readyz_and_metrics_report_the_new_stream(engine: Engine) -> None:
    settings = Settings()
    app = create_app(settings, engine, clock=lambda: NOW, streams=settings.enabled_streams())
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json is not None
    assert "extra_status: no successful observation yet" in ready.json["reasons"]
    assert "extra_status" in ready.json["last_successes"]

    text = client.get("/metrics").get_data(as_text=True)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    label = (("stream", "extra_status"),)
    assert samples[("exmeta_seconds_since_last_success", label)] == float("inf")
    assert samples[("exmeta_effective_interval_seconds", label)] == 30.0
    # 20 every 10 s, 1 and 7 every 30 s: the new stream's weight is counted.
    assert samples[("exmeta_weight_needed_per_minute", (("market", "spot"),))] == 120 + 2 + 14
