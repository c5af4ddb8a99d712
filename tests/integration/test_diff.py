"""GET /v1/diff equals a diff computed independently from the documents that were recorded."""

from __future__ import annotations

from datetime import timedelta
from itertools import combinations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core.config import Settings
from tests.api_client import error, ok, ts
from tests.builders import exchange_info, record_exchange_info, symbol
from tests.scripts import NOW, SCRIPT, T0, T1, T2, T3, expected_diff, record_script

INSTANTS = [
    T0,
    T0 + timedelta(seconds=7),
    T1,
    T2 - timedelta(milliseconds=1),
    T2,
    T3 + timedelta(seconds=5),
    SCRIPT[-2][0],
    SCRIPT[-1][0],
    NOW,
]


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    record_script(engine)
    return create_app(Settings(), api_engine, clock=lambda: NOW).test_client()


def test_diff_equals_an_independent_computation_for_every_pair_of_instants(
    client: FlaskClient,
) -> None:
    pairs = list(combinations(INSTANTS, 2))
    for start, end in pairs:
        body = ok(client.get(f"/v1/diff?from={ts(start)}&to={ts(end)}"), schemas.StateDiff)
        got = {k: body[k] for k in ("symbols", "rate_limits", "exchange_filters")}
        assert got == expected_diff(start, end), (ts(start), ts(end))
    assert len(pairs) == 36


def test_diff_over_the_whole_script_names_each_kind_of_change(client: FlaskClient) -> None:
    body = ok(client.get(f"/v1/diff?from={ts(T0)}"), schemas.StateDiff)
    assert body["to"] == ts(NOW)
    assert body["symbols"]["added"] == ["BNBUSDT"]
    assert body["symbols"]["removed"] == ["ETHUSDT"]
    assert body["symbols"]["changed"] == [
        {
            "key": "BTCUSDT",
            "changes": [
                {
                    "field": "filters.MARKET_LOT_SIZE.maxQty",
                    "old": "1000.00000000",
                    "new": "2000.00000000",
                },
                {
                    "field": "filters.PRICE_FILTER.tickSize",
                    "old": "0.01000000",
                    "new": "0.10000000",
                },
            ],
        }
    ]
    assert body["rate_limits"]["changed"] == [
        {
            "key": "REQUEST_WEIGHT:MINUTE:1",
            "changes": [{"field": "limit", "old": 6000, "new": 5000}],
        }
    ]
    assert body["evidence"]["from"]["observed_before"] == ts(T0)
    assert body["evidence"]["to"]["observed_before"] == ts(SCRIPT[-1][0])


def test_a_change_undone_in_between_is_no_difference(engine: Engine, api_engine: Engine) -> None:
    btc = symbol("BTCUSDT")
    record_exchange_info(engine, exchange_info(btc), T0)
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT", tick_size="0.1")), T1)
    record_exchange_info(engine, exchange_info(btc), T2)
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    body = ok(client.get(f"/v1/diff?from={ts(T0)}&to={ts(T2)}"), schemas.StateDiff)
    assert body["symbols"] == {"added": [], "removed": [], "changed": []}
    step = ok(client.get(f"/v1/diff?from={ts(T0)}&to={ts(T1)}"), schemas.StateDiff)
    assert [c["key"] for c in step["symbols"]["changed"]] == ["BTCUSDT"]


def test_diff_from_before_any_observation_is_404(client: FlaskClient) -> None:
    before = T0 - timedelta(seconds=1)
    error(client.get(f"/v1/diff?from={ts(before)}&to={ts(T1)}"), 404, "not_observed")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "invalid_parameter"),
        ("to=2024-05-01T00:00:10Z", "invalid_parameter"),
        ("from=2024-05-01T00:00:10Z&to=2024-05-01T00:00:10Z", "invalid_window"),
        ("from=2024-05-01T00:00:20Z&to=2024-05-01T00:00:10Z", "invalid_window"),
        ("from=2024-05-01T00:10:00Z", "invalid_window"),  # after now: to defaults to now
        ("from=yesterday", "invalid_time"),
        ("from=2024-05-01T00:00:10Z&as_of=2024-05-01T00:00:10Z", "unknown_parameter"),
    ],
)
def test_bad_input_is_a_400(client: FlaskClient, query: str, code: str) -> None:
    error(client.get(f"/v1/diff?{query}"), 400, code)
