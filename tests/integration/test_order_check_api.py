"""GET /v1/symbols/{symbol}/check applies the rules in force at as_of to one order."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core.config import Settings
from tests.integration.test_api import error, ok, ts
from tests.integration.test_changes import NOW, T0, T1, T2, T4, record_script

ORDER = {"side": "BUY", "type": "LIMIT", "quantity": "0.1", "price": "100.01"}


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    record_script(engine)
    return create_app(Settings(), api_engine, clock=lambda: NOW).test_client()


def check(client: FlaskClient, symbol: str, **params: Any) -> dict[str, Any]:
    return ok(client.get(f"/v1/symbols/{symbol}/check?{urlencode(params)}"), schemas.OrderCheck)


def test_the_same_price_passes_before_a_tick_change_and_fails_after(client: FlaskClient) -> None:
    before = check(client, "BTCUSDT", as_of=ts(T0), **ORDER)
    assert (before["accepted"], before["violations"]) == (True, [])
    after = check(client, "BTCUSDT", as_of=ts(T1), **ORDER)
    assert after["accepted"] is False
    assert after["violations"] == [
        {"rule": "PRICE_FILTER.tickSize", "message": "price 100.01 is not a multiple of 0.10000000"}
    ]
    assert after["order"] == {"side": "BUY", "type": "LIMIT", "quantity": "0.1", "price": "100.01"}
    assert after["evidence"]["observed_before"] == ts(T1)


def test_a_symbol_in_break_refuses_every_order(client: FlaskClient) -> None:
    body = check(client, "ETHUSDT", as_of=ts(T2), **ORDER)
    assert [v["rule"] for v in body["violations"]] == ["status"]


def test_a_market_order_needs_no_price(client: FlaskClient) -> None:
    body = check(client, "BTCUSDT", side="SELL", type="MARKET", quantity="1")
    assert body["accepted"] is True
    assert body["order"]["price"] is None


def test_a_symbol_not_listed_then_is_404(client: FlaskClient) -> None:
    error(
        client.get(f"/v1/symbols/ETHUSDT/check?as_of={ts(T4)}&{urlencode(ORDER)}"),
        404,
        "symbol_not_listed",
    )


def test_before_any_observation_is_404(client: FlaskClient) -> None:
    early = "2024-04-30T00:00:00Z"
    error(
        client.get(f"/v1/symbols/BTCUSDT/check?as_of={early}&{urlencode(ORDER)}"),
        404,
        "not_observed",
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"side": "HOLD"}, "invalid_parameter"),
        ({"side": None}, "invalid_parameter"),
        ({"quantity": "0"}, "invalid_parameter"),
        ({"quantity": "-1"}, "invalid_parameter"),
        ({"quantity": "NaN"}, "invalid_parameter"),
        ({"quantity": "1e100000"}, "invalid_parameter"),
        ({"price": "abc"}, "invalid_parameter"),
        ({"price": "Infinity"}, "invalid_parameter"),
        ({"type": ""}, "invalid_parameter"),
        ({"as_of": "now"}, "invalid_time"),
        ({"qty": "1"}, "unknown_parameter"),
    ],
)
def test_bad_input_is_a_400(client: FlaskClient, change: dict[str, Any], code: str) -> None:
    params = {k: v for k, v in {**ORDER, **change}.items() if v is not None}
    error(client.get(f"/v1/symbols/BTCUSDT/check?{urlencode(params)}"), 400, code)
