"""A page of the change feed costs what it holds, however long the window and however deep.

The feed reads the versions of a page's changes only (keyset pagination in SQL), so the
rows it reads from the database are the same for the first page of a minute and for a
page in the middle of the whole calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core import changes
from core.config import Settings
from tests.api_client import ok, ts
from tests.builders import at, exchange_info, record_exchange_info, symbol
from tests.reads import rows_read

T0 = at("2024-06-01T00:00:00")
FLIPS = 40  # BTCUSDT flips between TRADING and BREAK once a second after T0
T_BURST = T0 + timedelta(seconds=FLIPS + 1)  # then five symbols change two fields at once
NOW = T0 + timedelta(minutes=5)
NAMES = ("ADAUSDT", "BNBUSDT", "DOTUSDT", "ETHUSDT", "XRPUSDT")


def record_history(engine: Engine) -> None:
    others = [symbol(n) for n in NAMES]
    for i in range(FLIPS + 1):
        status = "BREAK" if i % 2 else "TRADING"
        document = exchange_info(symbol("BTCUSDT", status=status), *others)
        record_exchange_info(engine, document, T0 + timedelta(seconds=i))
    burst = [symbol(n, status="BREAK", tick_size="0.10000000") for n in NAMES]
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), *burst), T_BURST)


@pytest.fixture
def history(engine: Engine) -> Engine:
    record_history(engine)
    return engine


def page(
    engine: Engine, start: datetime, end: datetime, limit: int, cursor: str | None = None
) -> tuple[changes.ChangePage, int]:
    with rows_read(engine) as counted, engine.connect() as conn:
        found = changes.changes(conn, start, end, limit=limit, cursor=cursor)
    return found, sum(counted)


def cursor_after(engine: Engine, start: datetime, end: datetime, n: int) -> str:
    """The cursor a client holds after reading the first ``n`` changes."""
    found, _ = page(engine, start, end, n)
    assert found.next_cursor is not None
    return found.next_cursor


def test_a_page_reads_the_same_rows_however_long_the_window_and_deep_the_page(
    history: Engine,
) -> None:
    first = T0 + timedelta(seconds=1)  # after the listings: every change is one flip
    short = first + timedelta(seconds=10)
    calendar = (at("0001-01-01T00:00:00"), at("9999-12-31T00:00:00"))

    def deep(start: datetime, end: datetime, depth: int) -> int:
        return page(history, start, end, 4, cursor_after(history, start, end, depth))[1]

    first_pages = {page(history, first, end, 4)[1] for end in (short, NOW)}
    deep_pages = {
        "10 changes in": deep(first, NOW, 10),
        "30 changes in": deep(first, NOW, 30),
        "30 changes into the whole calendar": deep(*calendar, 30),
    }

    assert len(first_pages) == 1
    assert len(set(deep_pages.values())) == 1, deep_pages


def test_the_whole_calendar_is_a_window_like_any_other(history: Engine, api_engine: Engine) -> None:
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    params = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z", "limit": 3}

    body = ok(client.get(f"/v1/changes?{urlencode(params)}"), schemas.ChangeFeed)

    assert [(c["changed_at"], c["key"]) for c in body["changes"]] == [
        (ts(T0), "RAW_REQUESTS:MINUTE:5"),
        (ts(T0), "REQUEST_WEIGHT:MINUTE:1"),
        (ts(T0), "ADAUSDT"),
    ]
    assert body["next"] is not None


def all_pages(client: FlaskClient, limit: int, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": limit}
    while True:
        body = ok(client.get(f"/v1/changes?{urlencode(query, doseq=True)}"), schemas.ChangeFeed)
        assert len(body["changes"]) <= limit
        found.extend(body["changes"])
        if body["next"] is None:
            return found
        query["next"] = body["next"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
@pytest.mark.parametrize("fields", [{}, {"field": "status"}, {"exclude_field": "status"}])
def test_pages_of_any_size_add_up_to_the_whole_list_across_an_instant(
    history: Engine, api_engine: Engine, limit: int, fields: dict[str, str]
) -> None:
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    window = {"from": ts(T0 + timedelta(seconds=FLIPS - 2)), "to": ts(NOW), **fields}

    whole = all_pages(client, 1000, **window)
    paged = all_pages(client, limit, **window)

    assert paged == whole
    burst = [
        (c["key"], c["field"], c["old"], c["new"]) for c in whole if c["changed_at"] == ts(T_BURST)
    ]
    every = [
        (name, field, old, new)
        for name in NAMES
        for field, old, new in (
            ("filters.PRICE_FILTER.tickSize", "0.01000000", "0.10000000"),
            ("status", "TRADING", "BREAK"),
        )
        if not fields
        or (fields.get("field") == field)
        or (fields.get("exclude_field") not in (None, field))
    ]
    assert burst == every
    # BTCUSDT's last flips (its status, old and new together) before the burst
    flips = [c for c in whole if c["key"] == "BTCUSDT"]
    assert len(flips) == (0 if fields.get("exclude_field") == "status" else 3)
    assert all(c["old"] != c["new"] and c["old"] is not None for c in flips)
