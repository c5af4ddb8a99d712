"""A connection acting as the analysts' role: what a login in ``exmeta_reader`` may read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine


@contextmanager
def reader_connection(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection to ``engine``'s database after ``SET ROLE exmeta_reader``."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")
        yield conn
        conn.rollback()
