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
from tests.api_client import error, ok, ts
from tests.builders import exchange_info, record_exchange_info
from tests.scripts import (
    BTC,
    EXPECTED,
    NOW,
    T0,
    T1,
    T2,
    T3,
    T4,
    T_QUIET,
    expected,
    listed_object,
    record_script,
    summary,
)


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    record_script(engine)
    return create_app(Settings(), api_engine, clock=lambda: NOW).test_client()


def feed(client: FlaskClient, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/changes?{urlencode(params, doseq=True)}")
    return ok(response, schemas.ChangeFeed)


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
