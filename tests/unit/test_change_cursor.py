"""The change feed's cursor: opaque, exact to the microsecond, and refused when forged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.changes import decode_cursor, encode_cursor
from core.cursors import CursorError


def test_a_cursor_round_trips_exactly() -> None:
    position = (
        datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "symbol",
        "BTCUSDT",
        "filters.PRICE_FILTER.tickSize",
    )
    token = encode_cursor(position)
    assert "BTCUSDT" not in token
    assert decode_cursor(token) == position


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        "WyJ4Il0",  # ["x"]
        "WyIyMDI0LTA1LTAxVDAwOjAwOjAwIiwiYSIsImIiLCJjIl0",  # a naive time
        "WyIyMDI0LTA1LTAxVDAwOjAwOjAwWiIsMSwiYiIsImMiXQ",  # entity not a string
    ],
)
def test_a_forged_cursor_is_refused(token: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(token)
