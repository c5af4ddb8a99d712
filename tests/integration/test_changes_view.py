"""The ``changes`` view says what GET /v1/changes says, row for row, to the reader role."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from api import create_app, schemas
from core.changes import changes
from core.config import Settings
from tests.api_client import ok, ts
from tests.builders import exchange_info, record_exchange_info
from tests.futures_replay import COINM_AT, USDM_AT, record_coinm, record_usdm_replay
from tests.reader_role import CHANGES_COLUMNS, reader_connection, view_rows
from tests.scripts import BTC, NOW, T0, T1, T2, record_script


def api_rows(engine: Engine) -> list[dict[str, Any]]:
    client = create_app(Settings(), engine, clock=lambda: NOW).test_client()
    body = ok(client.get(f"/v1/changes?from={ts(T0)}&to={ts(NOW)}"), schemas.ChangeFeed)
    return list(body["changes"])


def test_the_view_equals_the_feed_over_the_scripted_sequence(
    engine: Engine, api_engine: Engine
) -> None:
    record_script(engine)
    rows = view_rows(engine)
    assert rows == api_rows(api_engine)
    assert len(rows) == 10


def test_the_view_reports_filters_added_and_removed_like_the_feed(
    engine: Engine, api_engine: Engine
) -> None:
    record_exchange_info(engine, exchange_info(BTC), T0)
    iceberg = {**BTC, "filters": [*BTC["filters"], {"filterType": "ICEBERG_PARTS", "limit": 10}]}
    record_exchange_info(engine, exchange_info(iceberg), T1)
    record_exchange_info(engine, exchange_info(BTC), T2)
    rows = view_rows(engine)
    assert rows == api_rows(api_engine)
    assert [r["field"] for r in rows if r["changed_at"] == ts(T2)] == [
        "filters.ICEBERG_PARTS.filterType",
        "filters.ICEBERG_PARTS.limit",
    ]


@pytest.mark.parametrize(
    ("stream", "market", "record", "instants"),
    [
        ("usdm_exchange_info", "usdm", record_usdm_replay, USDM_AT),
        ("coinm_exchange_info", "coinm", record_coinm, COINM_AT),
    ],
)
def test_the_view_equals_the_feed_over_a_futures_replay(
    engine: Engine,
    stream: str,
    market: str,
    record: Callable[[Engine], object],
    instants: list[datetime],
) -> None:
    """The real USD-M files (and the COIN-M fixture, changed a day later) as the view and
    the feed (core.changes, asked for the stream) list them: the same rows, in order."""
    record(engine)
    with engine.connect() as conn:
        page = changes(
            conn,
            instants[0],
            instants[-1] + timedelta(seconds=1),
            streams=(stream,),
            limit=100_000,
        )
    feed = [
        (
            c.changed_at,
            c.observed_before,
            c.observation_id,
            c.stream,
            c.entity,
            c.key,
            c.field,
            c.old,
            c.new,
        )
        for c in page.changes
    ]
    with reader_connection(engine) as conn:
        view = conn.execute(
            f"SELECT {CHANGES_COLUMNS} FROM changes WHERE market = %s"
            ' ORDER BY changed_at, entity, key COLLATE "C", field COLLATE "C"',
            (market,),
        ).fetchall()
    assert len(view) > 10
    assert view == feed
