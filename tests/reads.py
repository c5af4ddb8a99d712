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


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Collects the statements (and their parameters) sent meanwhile."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def rows_scanned(engine: Engine, sent: list[tuple[str, Any]], table: str) -> int:
    """The rows of ``table`` that the ``sent`` statements read, as EXPLAIN ANALYZE counts
    them (kept or filtered out)."""
    total = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal total
        if node.get("Relation Name") == table:
            # Rows a filter threw away were read all the same.
            found = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            total += int(found * node["Actual Loops"])
        for child in node.get("Plans", []):
            walk(child)

    dbapi = engine.raw_connection()
    try:
        with dbapi.cursor() as cur:  # type: ignore[attr-defined]
            for statement, params in sent:
                if statement.lstrip().upper().startswith("SELECT"):
                    cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
                    [[doc]] = cur.fetchall()
                    walk(doc[0]["Plan"])
    finally:
        dbapi.close()
    return total
