"""No key, secret or signature ends up in the logs, the database or an API answer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import Engine, text

from api import create_app
from binance_sim.server import SimServer
from core.models import Base
from core.redact import install, settings_secrets
from tests.signed_sim import (
    API_KEY,
    API_SECRET,
    API_TOKEN,
    control,
    jobs_by_stream,
    logged_requests,
    query_value,
    register_key,
    sim_settings,
)

API_ROUTES = [
    "/v1/account",
    "/v1/account/balances",
    "/v1/account/commission/BTCUSDT",
    "/v1/system-status",
    "/v1/delistings",
    "/v1/wallet/networks",
    "/v1/wallet/USDT",
    "/v1/margin/pairs",
    "/v1/margin/pairs?type=isolated",
    "/v1/margin/delistings",
    "/v1/observations?limit=10000",
    "/v1/observations?outcome=error",
    "/readyz",
    "/openapi.json",
]


def database_text(engine: Engine) -> str:
    """Every row of every table as text, raw bodies included."""
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            parts += conn.execute(text(f"SELECT t::text FROM {table.name} t")).scalars()
        parts += [
            bytes(b).decode() for b in conn.execute(text("SELECT body FROM raw_bodies")).scalars()
        ]
    return "\n".join(parts)


def test_signed_polls_leak_no_key_secret_or_signature(
    engine: Engine, api_engine: Engine, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=("BTCUSDT",), binance={"recv_window_ms": 2000})
    # As `exmeta` does on its handlers: the filter sees every record that is written.
    redacting = install([caplog.handler], settings_secrets(settings))
    try:
        with caplog.at_level(logging.DEBUG):
            schedule = [{"delistTime": 1767225600000, "symbols": ["ETHBTC"]}]
            control(sim, "PUT", "/delist-schedule", {"schedule": schedule})
            jobs = jobs_by_stream(settings, engine)
            for job in jobs.values():
                assert job.run().outcome == "changed"
            control(sim, "PUT", "/clock", {"offset_ms": 4000})  # a -1021 and a re-signed retry
            assert jobs["account"].run().outcome == "unchanged"
            control(
                sim,
                "POST",
                "/faults",
                {"kind": "status", "status": 503, "endpoint": "/api/v3/account", "count": 3},
            )
            assert jobs["account"].run().outcome == "error"  # three signed attempts, all 503
            requests.get(f"{sim.url}/_sim/state", timeout=5)
    finally:
        caplog.handler.removeFilter(redacting)

    signed = [r for r in logged_requests(sim) if "signature=" in r["query"]]
    signatures = {query_value(r, "signature") for r in signed}
    assert len(signatures) >= 6
    assert any(r["status"] == 400 for r in signed)  # the -1021 really happened
    needles = [API_KEY, API_SECRET, *signatures, *(quote(s, safe="") for s in signatures)]

    logs = caplog.text
    assert "/api/v3/account?" in logs  # urllib3 did log the signed request line...
    assert "signature=***" in logs  # ...and the filter masked it
    for needle in needles:
        assert needle not in logs

    stored = database_text(engine)
    assert "commissionRates" in stored  # the dump is real: it holds the account
    for needle in needles:
        assert needle not in stored

    client = create_app(
        settings, api_engine, clock=lambda: datetime.now(UTC), streams=settings.enabled_streams()
    ).test_client()
    answers = [
        client.get(route, headers={"Authorization": f"Bearer {API_TOKEN}"}) for route in API_ROUTES
    ]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    for answer in answers:
        for needle in [*needles, API_TOKEN]:
            assert needle.encode() not in answer.data
