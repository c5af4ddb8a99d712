"""A symbol's history is read window by window and page by page, never whole.

``from``/``to`` are applied in SQL and the answer pages with ``limit`` and ``next``: a
page reads the versions in force during its own entries, so it reads as many rows late
in a long history as early in it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core import history
from core.config import Settings
from tests.api_client import error, ok, ts
from tests.builders import at, exchange_info, record_exchange_info, symbol
from tests.reads import rows_read

T0 = at("2024-07-01T00:00:00")
STEPS = 30  # BTCUSDT changes once a second: its status, and every third time its tick size
T_DELIST = T0 + timedelta(seconds=STEPS + 1)
NOW = T0 + timedelta(minutes=5)


def btc(step: int) -> dict[str, Any]:
    tick = "0.10000000" if (step // 3) % 2 else "0.01000000"
    return symbol("BTCUSDT", status="BREAK" if step % 2 else "TRADING", tick_size=tick)


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    for step in range(STEPS + 1):
        document = exchange_info(btc(step), symbol("ETHUSDT"))
        record_exchange_info(engine, document, T0 + timedelta(seconds=step))
    record_exchange_info(engine, exchange_info(symbol("ETHUSDT")), T_DELIST)
    return create_app(Settings(), api_engine, clock=lambda: NOW).test_client()


def get(client: FlaskClient, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/symbols/BTCUSDT/history?{urlencode(params)}")
    return ok(response, schemas.SymbolHistory)


def all_pages(client: FlaskClient, limit: int, **window: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {**window, "limit": limit}
    while True:
        body = get(client, **params)
        assert len(body["versions"]) <= limit
        found.extend(body["versions"])
        if body["next"] is None:
            return found
        params["next"] = body["next"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
@pytest.mark.parametrize(
    "window",
    [
        {},
        {"from": ts(T0 + timedelta(seconds=10, milliseconds=500))},
        {"to": ts(T0 + timedelta(seconds=20))},
        {
            "from": ts(T0 + timedelta(seconds=5)),
            "to": ts(T0 + timedelta(seconds=25, milliseconds=1)),
        },
        {"from": ts(T0 + timedelta(seconds=STEPS, milliseconds=500))},
    ],
)
def test_pages_of_any_size_add_up_to_the_whole_window(
    client: FlaskClient, limit: int, window: dict[str, str]
) -> None:
    whole = get(client, **window)
    assert whole["next"] is None

    assert all_pages(client, limit, **window) == whole["versions"]


def test_the_whole_history_is_every_change_in_order(client: FlaskClient) -> None:
    versions = get(client)["versions"]

    assert len(versions) == STEPS + 2  # the listing, a change a second, the delisting
    assert [v["valid_from"] for v in versions] == [
        ts(T0 + timedelta(seconds=s)) for s in range(STEPS + 2)
    ]
    assert [v["valid_to"] for v in versions] == [v["valid_from"] for v in versions[1:]] + [None]
    assert versions[-1]["listed"] is False
    assert {c["field"] for c in versions[3]["changes"]} == {
        "status",
        "filters.PRICE_FILTER.tickSize",
    }


def test_a_window_starts_with_the_version_in_force_at_from(client: FlaskClient) -> None:
    versions = get(client, **{"from": ts(T0 + timedelta(seconds=10, milliseconds=500))})["versions"]

    assert versions[0]["valid_from"] == ts(T0 + timedelta(seconds=10))
    assert versions[0]["changes"] == [{"field": "status", "old": "BREAK", "new": "TRADING"}]
    after_delisting = get(client, **{"from": ts(NOW - timedelta(seconds=1))})["versions"]
    assert [(v["valid_from"], v["listed"]) for v in after_delisting] == [(ts(T_DELIST), False)]


def test_a_page_reads_as_many_rows_late_in_the_history_as_early(
    engine: Engine, client: FlaskClient
) -> None:
    def reads(second: int) -> int:
        start = T0 + timedelta(seconds=second, milliseconds=500)
        with rows_read(engine) as counted, engine.connect() as conn:
            page = history.symbol_history(conn, "BTCUSDT", start, None, limit=3)
        assert len(page.entries) == 3
        return sum(counted)

    assert reads(6) == reads(12) == reads(18)


def test_a_forged_cursor_is_a_400(client: FlaskClient) -> None:
    response = client.get("/v1/symbols/BTCUSDT/history?next=bm90IGpzb24")
    error(response, 400, "invalid_cursor")
