"""The change feed: a scripted sequence of changes comes back complete, in order, once each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from api import create_app, schemas
from core.config import Settings
from tests.builders import at, exchange_info, record_exchange_info, symbol
from tests.integration.test_api import error, ok, ts

T0 = at("2024-05-01T00:00:00")
T_QUIET = T0 + timedelta(seconds=5)  # an unchanged poll: the evidence before T1
T1 = T0 + timedelta(seconds=10)
T2 = T0 + timedelta(seconds=20)
T3 = T0 + timedelta(seconds=30)
T4 = T0 + timedelta(seconds=40)
T5 = T0 + timedelta(seconds=50)
NOW = T0 + timedelta(minutes=1)

BTC = symbol("BTCUSDT")
ETH = symbol("ETHUSDT")
BNB = symbol("BNBUSDT")


BTC_TICK = symbol("BTCUSDT", tick_size="0.10000000")
ETH_BREAK = symbol("ETHUSDT", status="BREAK")
BTC_MARKET = symbol("BTCUSDT", tick_size="0.10000000", market_max_qty="2000.00000000")
SCRIPT = [
    (T0, exchange_info(BTC, ETH)),
    (T_QUIET, exchange_info(BTC, ETH)),
    (T1, exchange_info(BTC_TICK, ETH)),
    (T2, exchange_info(BTC_TICK, ETH_BREAK)),
    (T3, exchange_info(BTC_TICK, ETH_BREAK, BNB)),
    (T4, exchange_info(BTC_TICK, BNB)),
    (T5, exchange_info(BTC_MARKET, BNB, weight_limit=5000)),
]


def record_script(engine: Engine) -> None:
    """A tick size change, a status flip, a listing, a delisting, a rate-limit change."""
    for when, document in SCRIPT:
        record_exchange_info(engine, document, when)


def listed_object(sym: dict[str, Any]) -> dict[str, Any]:
    return {**sym, "filters": sorted(sym["filters"], key=lambda f: f["filterType"])}


EXPECTED = [
    (T1, "symbol", "BTCUSDT", "filters.PRICE_FILTER.tickSize", "0.01000000", "0.10000000"),
    (T2, "symbol", "ETHUSDT", "status", "TRADING", "BREAK"),
    (T3, "symbol", "BNBUSDT", "listed", None, listed_object(BNB)),
    (T4, "symbol", "ETHUSDT", "listed", listed_object(symbol("ETHUSDT", status="BREAK")), None),
    (T5, "rate_limit", "REQUEST_WEIGHT:MINUTE:1", "limit", 6000, 5000),
    (
        T5,
        "symbol",
        "BTCUSDT",
        "filters.MARKET_LOT_SIZE.maxQty",
        "1000.00000000",
        "2000.00000000",
    ),
]


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    record_script(engine)
    return create_app(Settings(), api_engine, clock=lambda: NOW).test_client()


def feed(client: FlaskClient, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/changes?{urlencode(params, doseq=True)}")
    return ok(response, schemas.ChangeFeed)


def summary(changes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (c["changed_at"], c["entity"], c["key"], c["field"], c["old"], c["new"]) for c in changes
    ]


def expected(*rows: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [(ts(r[0]), *r[1:]) for r in rows]


def test_every_change_comes_back_once_in_order_with_old_and_new(client: FlaskClient) -> None:
    body = feed(client, **{"from": ts(T0 + timedelta(seconds=1)), "to": ts(NOW)})
    assert summary(body["changes"]) == expected(*EXPECTED)
    assert body["next"] is None


def test_each_change_names_its_observation_and_the_poll_before_it(
    client: FlaskClient, engine: Engine
) -> None:
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT observed_at, id FROM observations")).all())
    body = feed(client, **{"from": ts(T1), "to": ts(T3)})
    assert [(c["observation_id"], c["observed_before"]) for c in body["changes"]] == [
        (ids[T1], ts(T_QUIET)),
        (ids[T2], ts(T1)),
    ]
    assert {c["stream"] for c in body["changes"]} == {"exchange_info"}


def test_the_first_observation_lists_everything_it_saw(client: FlaskClient) -> None:
    body = feed(client, **{"from": ts(T0), "to": ts(T_QUIET)})
    assert [(c["entity"], c["key"], c["field"], c["old"]) for c in body["changes"]] == [
        ("rate_limit", "RAW_REQUESTS:MINUTE:5", "listed", None),
        ("rate_limit", "REQUEST_WEIGHT:MINUTE:1", "listed", None),
        ("symbol", "BTCUSDT", "listed", None),
        ("symbol", "ETHUSDT", "listed", None),
    ]
    assert body["changes"][2]["new"] == listed_object(BTC)
    assert all(c["observed_before"] is None for c in body["changes"])


def test_the_window_is_half_open(client: FlaskClient) -> None:
    body = feed(client, **{"from": ts(T2), "to": ts(T4)})
    assert summary(body["changes"]) == expected(*EXPECTED[1:3])


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_with_a_small_limit_returns_the_same_list(client: FlaskClient, limit: int) -> None:
    window = {"from": ts(T0), "to": ts(NOW)}
    whole = feed(client, **window)["changes"]
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {**window, "limit": limit}
    while True:
        body = feed(client, **params)
        assert len(body["changes"]) <= limit
        pages.extend(body["changes"])
        if body["next"] is None:
            break
        params["next"] = body["next"]
    assert pages == whole
    assert len(whole) == 4 + len(EXPECTED)


def test_symbol_keeps_only_that_symbols_changes(client: FlaskClient) -> None:
    body = feed(client, **{"from": ts(T1), "to": ts(NOW), "symbol": "BTCUSDT"})
    assert summary(body["changes"]) == expected(EXPECTED[0], EXPECTED[5])


def test_field_keeps_the_named_fields_and_those_under_a_prefix(client: FlaskClient) -> None:
    body = feed(client, **{"from": ts(T1), "to": ts(NOW), "field": ["status", "filters"]})
    assert summary(body["changes"]) == expected(EXPECTED[0], EXPECTED[1], EXPECTED[5])


def test_exclude_field_is_repeatable(client: FlaskClient) -> None:
    body = feed(
        client,
        **{
            "from": ts(T1),
            "to": ts(NOW),
            "exclude_field": ["filters.MARKET_LOT_SIZE.maxQty", "listed"],
        },
    )
    assert summary(body["changes"]) == expected(EXPECTED[0], EXPECTED[1], EXPECTED[4])


def test_default_window_is_the_last_hour(engine: Engine, api_engine: Engine) -> None:
    record_script(engine)
    later = create_app(
        Settings(), api_engine, clock=lambda: T1 + timedelta(hours=1, milliseconds=1)
    ).test_client()
    body = feed(later)
    assert summary(body["changes"]) == expected(*EXPECTED[1:])


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2024-05-01T00:01:00Z&to=2024-05-01T00:00:00Z", "invalid_window"),
        ("from=2024-05-01T00:00:00", "invalid_time"),
        ("to=now", "invalid_time"),
        ("limit=0", "invalid_parameter"),
        ("limit=1001", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("stream=balances", "invalid_parameter"),
        ("next=not-a-cursor", "invalid_cursor"),
        ("next=WyJ4Il0", "invalid_cursor"),
        ("field=", "invalid_parameter"),
        ("symbol=", "invalid_parameter"),
        ("cursor=abc", "unknown_parameter"),
    ],
)
def test_bad_input_is_a_400(client: FlaskClient, query: str, code: str) -> None:
    error(client.get(f"/v1/changes?{query}"), 400, code)


def test_a_filter_added_to_a_listed_symbol_is_each_of_its_fields(
    engine: Engine, api_engine: Engine
) -> None:
    record_exchange_info(engine, exchange_info(BTC), T0)
    iceberg = {**BTC, "filters": [*BTC["filters"], {"filterType": "ICEBERG_PARTS", "limit": 10}]}
    record_exchange_info(engine, exchange_info(iceberg), T1)
    record_exchange_info(engine, exchange_info(BTC), T2)
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    body = feed(client, **{"from": ts(T1), "to": ts(NOW)})
    assert summary(body["changes"]) == expected(
        (T1, "symbol", "BTCUSDT", "filters.ICEBERG_PARTS.filterType", None, "ICEBERG_PARTS"),
        (T1, "symbol", "BTCUSDT", "filters.ICEBERG_PARTS.limit", None, 10),
        (T2, "symbol", "BTCUSDT", "filters.ICEBERG_PARTS.filterType", "ICEBERG_PARTS", None),
        (T2, "symbol", "BTCUSDT", "filters.ICEBERG_PARTS.limit", 10, None),
    )
