"""The export's change feed (core.changes.window_changes) reads a whole window in one pass;
it must say exactly what paging through the API's feed to the end says."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from core.changes import Change, changes, window_changes
from core.streams import feed_streams
from tests.futures_replay import USDM_AT, record_usdm_replay
from tests.scripts import T0, T1, T2, T3, T4, T5, record_script

EARLIEST = T0 - timedelta(days=365)


def paged(
    engine: Engine,
    market: str,
    start: datetime,
    end: datetime,
    symbol: str | None = None,
    limit: int = 3,
) -> list[Change]:
    """Every change of the window, page by page (small pages: many cursors crossed)."""
    found: list[Change] = []
    cursor: str | None = None
    with engine.connect() as conn:
        while True:
            page = changes(
                conn,
                start,
                end,
                streams=feed_streams(market),
                symbol=symbol,
                limit=limit,
                cursor=cursor,
            )
            found.extend(page.changes)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor


def whole(
    engine: Engine,
    market: str,
    start: datetime,
    end: datetime,
    symbols: Sequence[str] | None = None,
) -> list[Change]:
    with engine.connect() as conn:
        return window_changes(conn, start, end, streams=feed_streams(market), symbols=symbols)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (EARLIEST, T5 + timedelta(minutes=1)),  # everything, listings included
        (T1 + timedelta(seconds=1), T3),  # a window cutting the history
        (T2, T2 + timedelta(microseconds=1)),  # one instant: a status flip
        (T4, T4 + timedelta(microseconds=1)),  # one instant: a delisting
        (T5 + timedelta(minutes=1), T5 + timedelta(minutes=2)),  # nothing changed
    ],
)
def test_a_window_is_the_feed_read_to_its_end(
    engine: Engine, start: datetime, end: datetime
) -> None:
    record_script(engine)
    expected = paged(engine, "spot", start, end)
    assert whole(engine, "spot", start, end) == expected
    if start == EARLIEST:  # the comparison is not between two empty lists
        assert {c.field for c in expected} >= {"listed", "status", "filters.PRICE_FILTER.tickSize"}


def test_symbols_keep_those_symbols_changes_in_the_feeds_order(engine: Engine) -> None:
    record_script(engine)
    end = T5 + timedelta(minutes=1)
    expected = sorted(
        paged(engine, "spot", EARLIEST, end, "ETHUSDT")
        + paged(engine, "spot", EARLIEST, end, "BTCUSDT"),
        key=lambda c: c.position,
    )
    assert {c.key for c in expected} == {"ETHUSDT", "BTCUSDT"}
    assert whole(engine, "spot", EARLIEST, end, ["ETHUSDT", "BTCUSDT"]) == expected


def test_a_futures_window_is_the_feed_read_to_its_end(engine: Engine) -> None:
    record_usdm_replay(engine)
    end = USDM_AT[-1] + timedelta(days=1)
    expected = paged(engine, "usdm", EARLIEST, end, limit=500)
    assert len(expected) > 100
    assert whole(engine, "usdm", EARLIEST, end) == expected
