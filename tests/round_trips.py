"""Counting the round trips a piece of code makes to PostgreSQL, from the wire.

libpq's own trace (``PQtrace``) logs every protocol message a pooled connection sends
while it is checked out. The client waits for the server after a simple ``Query``
(BEGIN, ROLLBACK) and after each ``Sync``, which closes one extended-protocol statement
or, in pipeline mode, all the statements sent before it. Counting those sees all the
traffic, whether it went through SQLAlchemy or straight to the driver's cursor, which
SQLAlchemy's events do not see. Left out: the round trip in which psycopg prepares a
statement, once per connection, at its ``prepare_threshold``-th use (a named ``Parse``
and a ``Sync``, no ``Execute``): the price of sparing every later use the parsing and
planning.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine, event


class Trace:
    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def sent(self) -> list[str]:
        """The messages sent to the server, in order: type and contents."""
        self.file.seek(0)
        lines = self.file.read().decode(errors="replace").splitlines()
        return [ln.split("\t", 2)[2] for ln in lines if ln.split("\t", 1)[0] == "F"]

    def round_trips(self) -> int:
        count = executed = 0
        for message in self.sent():
            kind = message.split("\t", 1)[0]
            if kind == "Query":
                count += 1
            elif kind == "Execute":
                executed += 1
            elif kind == "Sync":
                count += executed > 0
                executed = 0
        return count


@contextmanager
def traced(engine: Engine) -> Iterator[Trace]:
    """The trace of every connection ``engine``'s pool hands out while the block runs."""
    with tempfile.TemporaryFile() as file:

        def start(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            assert isinstance(dbapi_connection, psycopg.Connection)
            dbapi_connection.pgconn.trace(file.fileno())
            dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

        def stop(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.pgconn.untrace()  # flushes what libpq buffered

        event.listen(engine, "checkout", start)
        event.listen(engine, "checkin", stop)
        try:
            yield Trace(file)
        finally:
            event.remove(engine, "checkout", start)
            event.remove(engine, "checkin", stop)
