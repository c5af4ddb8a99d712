"""Counting what the database returns to a piece of code: proof that a read is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def rows_read(engine: Engine) -> Iterator[list[int]]:
    """Collects the number of rows each statement sent meanwhile returned."""
    counted: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if cursor.description is not None:
            counted.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", count)
    try:
        yield counted
    finally:
        event.remove(engine, "after_cursor_execute", count)
