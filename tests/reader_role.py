"""A connection acting as the analysts' role: what a login in ``exmeta_reader`` may read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from core.timeparse import format_instant


@contextmanager
def reader_connection(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection to ``engine``'s database after ``SET ROLE exmeta_reader``."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")
        yield conn
        conn.rollback()


CHANGES_COLUMNS = (
    "changed_at, observed_before, observation_id, stream, entity, key, field, old, new"
)


def view_rows(engine: Engine) -> list[dict[str, Any]]:
    """The ``changes`` view as the reader role sees it, instants spelled as the API does."""
    with reader_connection(engine) as conn:
        rows = conn.execute(
            f"SELECT {CHANGES_COLUMNS} FROM changes ORDER BY changed_at, entity, key, field"
        ).fetchall()
    names = [c.strip() for c in CHANGES_COLUMNS.split(",")]
    return [
        {
            n: format_instant(v) if isinstance(v, datetime) else v
            for n, v in zip(names, r, strict=True)
        }
        for r in rows
    ]
