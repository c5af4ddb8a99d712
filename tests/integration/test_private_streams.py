"""The account's activity stays private: its poll log, gaps and metrics need the token.

A balance version opens whenever the account trades, so the times at which the account
stream's polls were ``changed``, and any count of them, tell when the account traded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from api import create_app
from core.config import ApiSettings, Secret, Settings
from core.timeparse import format_instant
from tests.builders import (
    account_document,
    at,
    commission_document,
    exchange_info,
    record_exchange_info,
    record_stream,
    symbol,
)

T0 = at("2025-03-01T12:00:00")
TOKEN = "t0ken-for-the-private-streams"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAMS = ("exchange_info", "account", "account_commission")
WINDOW = (
    f"from={quote(format_instant(T0) or '')}"
    f"&to={quote(format_instant(T0 + timedelta(minutes=5)) or '')}"
)


@pytest.fixture
def traded(engine: Engine) -> None:
    """The account polled three times; its BTC balance changed (it traded) at +20 s."""
    for seconds, btc in ((0, "1.0"), (10, "1.0"), (20, "2.0")):
        when = T0 + timedelta(seconds=seconds)
        record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), when)
        record_stream(engine, "account", account_document(btc=btc), when)
        record_stream(engine, "account_commission", [commission_document()], when)


def client(engine: Engine) -> FlaskClient:
    settings = Settings(api=ApiSettings(token=Secret(TOKEN)))
    app = create_app(settings, engine, clock=lambda: T0 + timedelta(minutes=5), streams=STREAMS)
    return app.test_client()


def observations(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.data[:500]
    found: list[dict[str, Any]] = response.json["observations"]
    return found


@pytest.mark.usefixtures("traded")
@pytest.mark.parametrize("stream", ["account", "account_commission"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong"])
def test_a_private_streams_poll_log_needs_the_token(
    api_engine: Engine, stream: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    url = f"/v1/observations?stream={stream}&outcome=changed&{WINDOW}"

    response = client(api_engine).get(url, headers=headers)

    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"]["code"] == "unauthorized"
    assert "observations" not in response.json


@pytest.mark.usefixtures("traded")
def test_the_token_shows_when_the_account_changed(api_engine: Engine) -> None:
    url = f"/v1/observations?stream=account&outcome=changed&{WINDOW}"

    found = observations(client(api_engine).get(url, headers=AUTH))

    assert [o["observed_at"] for o in found] == [
        format_instant(T0),
        format_instant(T0 + timedelta(seconds=20)),
    ]


@pytest.mark.usefixtures("traded")
def test_the_whole_poll_log_leaves_private_streams_out_without_the_token(
    api_engine: Engine,
) -> None:
    anonymous = client(api_engine).get(f"/v1/observations?{WINDOW}")
    with_token = client(api_engine).get(f"/v1/observations?{WINDOW}", headers=AUTH)

    assert {o["stream"] for o in observations(anonymous)} == {"exchange_info"}
    assert anonymous.json is not None
    assert {g["stream"] for g in anonymous.json["gaps"]} <= {"exchange_info"}
    assert {o["stream"] for o in observations(with_token)} == set(STREAMS)
    assert with_token.json is not None
    assert {g["stream"] for g in with_token.json["gaps"]} == set(STREAMS)  # all went quiet


@pytest.mark.usefixtures("traded")
def test_the_whole_poll_log_with_a_wrong_token_is_refused(api_engine: Engine) -> None:
    response = client(api_engine).get(
        f"/v1/observations?{WINDOW}", headers={"Authorization": "Bearer wrong"}
    )

    assert response.status_code == 401


@pytest.mark.usefixtures("traded")
def test_metrics_show_nothing_that_dates_or_counts_the_accounts_changes(
    api_engine: Engine,
) -> None:
    response = client(api_engine).get("/metrics", headers=AUTH)  # the token changes nothing
    assert response.status_code == 200
    samples = [
        s
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    ]

    tables = {s.labels["table"] for s in samples if s.name == "exmeta_versions_written_total"}
    assert "symbol_versions" in tables
    assert not tables & {"account_versions", "balance_versions", "commission_versions"}
    private = [s for s in samples if s.labels.get("stream") in {"account", "account_commission"}]
    assert private  # their health stays visible: last success, requests sent
    assert {s.name for s in private} <= {
        "exmeta_seconds_since_last_success",
        "exmeta_binance_requests_total",
        "exmeta_retries_total",
        "exmeta_backoff_seconds_total",
        "exmeta_poll_errors_total",
        "exmeta_polls_total",
        "exmeta_used_weight",
        "exmeta_server_time_rejected_total",  # the exchange's clock, not the account's doing
        "exmeta_effective_interval_seconds",  # the settings against the budget
    }
    assert {s.labels["outcome"] for s in private if s.name == "exmeta_polls_total"} <= {
        "error",
        "stale",
    }
    assert (
        sum(s.value for s in samples if s.name == "exmeta_polls_total")
        == 3  # exchange_info: changed once, unchanged twice
    )
