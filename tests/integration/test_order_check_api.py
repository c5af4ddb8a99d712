"""GET /v1/symbols/{symbol}/check applies the rules in force at as_of to one order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import StreamWriter
from core.order_check import NEEDS_REFERENCE
from poller.job import StreamJob
from tests.api_client import error, ok, ts
from tests.builders import client_for, exchange_info_job
from tests.scripts import NOW, T0, T1, T2, T4, record_script
from tests.signed_sim import API_TOKEN, control, jobs_by_stream, register_key, sim_settings

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

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
    assert after["order"] == {
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.1",
        "quote_quantity": None,
        "price": "100.01",
        "reference_price": None,
        "iceberg_quantity": None,
    }
    assert after["evidence"]["observed_before"] == ts(T1)
    # on the tick in force then: 0.01 before, 0.10 after
    assert before["nearest"] == {"price": "100.01000000", "quantity": "0.10000000"}
    assert after["nearest"] == {"price": "100.00000000", "quantity": "0.10000000"}


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
        ({"reference_price": "0"}, "invalid_parameter"),
        ({"iceberg_quantity": "-0.1"}, "invalid_parameter"),
        ({"type": "MARKET"}, "invalid_parameter"),  # with ORDER's price: MARKET has none
        ({"quantity": None}, "invalid_parameter"),  # neither quantity nor quote_quantity
        ({"quote_quantity": "10"}, "invalid_parameter"),  # both, and on a LIMIT order
        ({"quote_quantity": "-5", "quantity": None}, "invalid_parameter"),
    ],
)
def test_bad_input_is_a_400(client: FlaskClient, change: dict[str, Any], code: str) -> None:
    params = {k: v for k, v in {**ORDER, **change}.items() if v is not None}
    error(client.get(f"/v1/symbols/BTCUSDT/check?{urlencode(params)}"), 400, code)


def test_a_market_order_sized_in_the_quote_asset(client: FlaskClient) -> None:
    """The recorded symbols do not say quoteOrderQtyMarketAllowed: such orders are refused
    for that, and every other rule is still applied to them."""
    order = {"side": "BUY", "type": "MARKET", "quote_quantity": "250", "as_of": ts(T0)}
    body = check(client, "BTCUSDT", **order)
    assert (body["order"]["quantity"], body["order"]["quote_quantity"]) == (None, "250")
    assert [v["rule"] for v in body["violations"]] == ["quoteOrderQtyMarketAllowed"]
    assert [u["rule"] for u in body["not_checked"]] == ["LOT_SIZE", "MARKET_LOT_SIZE", "account"]
    assert body["nearest"]["quantity"] is None
    # 250 / 0.1 = 2500 BTC: above MARKET_LOT_SIZE's 1000
    priced = check(client, "BTCUSDT", reference_price="0.1", **order)
    assert [v["rule"] for v in priced["violations"]] == [
        "quoteOrderQtyMarketAllowed",
        "MARKET_LOT_SIZE.maxQty",
    ]
    assert [u["rule"] for u in priced["not_checked"]] == ["account"]
    small = check(client, "BTCUSDT", **{**order, "quote_quantity": "1"})
    assert [v["rule"] for v in small["violations"]] == [
        "quoteOrderQtyMarketAllowed",
        "NOTIONAL.minNotional",
    ]


def test_a_market_order_with_a_price_is_refused_saying_what_to_send(client: FlaskClient) -> None:
    params = urlencode({**ORDER, "type": "MARKET"})
    message = error(client.get(f"/v1/symbols/BTCUSDT/check?{params}"), 400, "invalid_parameter")
    assert "reference_price" in message


@pytest.fixture
def polled_sim(engine: Engine, sim: SimServer) -> tuple[Settings, dict[str, StreamJob]]:
    """The sim's exchangeInfo (real 2023-09 rows) and its docs-example account, polled."""
    register_key(sim)
    settings = sim_settings(sim)
    exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), "test").run()
    jobs = jobs_by_stream(settings, engine)
    jobs["account"].run()
    return settings, jobs


REAL_ORDER = {"side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": "26000.00"}


def sim_check(
    engine: Engine, settings: Settings, headers: dict[str, str] | None = None, **params: str
) -> dict[str, Any]:
    client = create_app(settings, engine, streams=settings.enabled_streams()).test_client()
    response = client.get(f"/v1/symbols/BTCUSDT/check?{urlencode(params)}", headers=headers)
    return ok(response, schemas.OrderCheck)


def test_percent_price_by_side_is_not_checked_without_a_reference_price(
    api_engine: Engine, polled_sim: tuple[Settings, dict[str, StreamJob]]
) -> None:
    body = sim_check(api_engine, polled_sim[0], AUTH, **REAL_ORDER)
    assert body["accepted"] is True
    assert body["not_checked"] == [{"rule": "PERCENT_PRICE_BY_SIDE", "reason": NEEDS_REFERENCE}]


def test_percent_price_by_side_and_iceberg_parts_with_their_parameters(
    api_engine: Engine, polled_sim: tuple[Settings, dict[str, StreamJob]]
) -> None:
    body = sim_check(
        api_engine,
        polled_sim[0],
        AUTH,
        **{**REAL_ORDER, "reference_price": "5000", "iceberg_quantity": "0.00009"},
    )
    assert body["violations"] == [
        {
            "rule": "PERCENT_PRICE_BY_SIDE.bidMultiplierUp",
            "message": "price 26000.00 is above 25000 (reference 5000 * 5)",
        },
        {
            "rule": "ICEBERG_PARTS.limit",
            "message": "12 parts (ceil(0.001 / 0.00009)) is above 10",
        },
    ]
    assert body["not_checked"] == []
    assert body["nearest"] == {"price": "25000.00000000", "quantity": "0.00100000"}


def test_the_account_is_checked_only_for_the_bearer_of_the_token(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    polled_sim: tuple[Settings, dict[str, StreamJob]],
) -> None:
    settings, jobs = polled_sim
    asked = {**REAL_ORDER, "reference_price": "26000", "as_of": ts(datetime.now(UTC))}
    anonymous = sim_check(api_engine, settings, **asked)
    assert anonymous["not_checked"] == [
        {"rule": "account", "reason": "needs the bearer token of the account routes"}
    ]
    assert sim_check(api_engine, settings, AUTH, **asked) == {
        **anonymous,
        "not_checked": [],
    }

    control(sim, "PATCH", "/account", {"fields": {"canTrade": False, "permissions": ["MARGIN"]}})
    jobs["account"].run()
    body = sim_check(api_engine, settings, AUTH, **REAL_ORDER, reference_price="26000")
    assert [v["rule"] for v in body["violations"]] == ["account.canTrade"]
    # MARGIN is one of BTCUSDT's permissions (a flat list: any of them will do)
    assert body["accepted"] is False
