"""Engines and sessions: the one way every side reaches PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.abc import RV, PQGen

# psycopg's own deadline error (3.2+), raised only by the waits we give a timeout to.
from psycopg.errors import _WaitTimeout
from psycopg.types.json import set_json_loads
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from core.config import DatabaseSettings, postgres_url

# The role the API acts as (migration 0070): it may read what the API serves, nothing more.
API_ROLE = "exmeta_api"


def redact_url(url: str | URL) -> str:
    return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)


def create_db_engine(
    url: str,
    settings: DatabaseSettings,
    *,
    application_name: str = "exmeta",
    pool_size: int = 5,
    pre_ping: bool = True,
    read_only_role: str | None = None,
) -> Engine:
    """An engine whose connections notice a dead peer and never wait forever.

    Every bound is ``statement_timeout_seconds``. Keepalives and ``tcp_user_timeout``
    make a TCP connection whose peer vanished fail within seconds rather than the
    kernel's two hours; ``statement_timeout`` bounds a query that hangs on the server
    side (waiting for a lock included); ``idle_in_transaction_session_timeout`` lets the
    server end a session whose client went silent in the middle of a transaction, so
    the row locks it holds (a stream's head, a lease) do not stall the other replicas.
    None of these helps when something between us and the server (a proxy, a NAT, a
    load balancer) keeps acknowledging our packets but stops forwarding them:
    ``_AnswerDeadline`` connections give up on their own clock then.

    ``pre_ping`` tests each connection before use (a round trip): worth it for the
    poller, which must not lose a poll to a connection that died in the pool (a
    PostgreSQL restart kills them all); the API skips it, since a stale connection costs
    one 503 and SQLAlchemy then discards the whole pool.

    With ``read_only_role``, every connection acts as that role from its start-up packet
    (no extra round trip, nothing a pool reset undoes), and its transactions are read
    only. The role's grants are what refuses a write; read-only transactions only make
    the refusal earlier and explicit.
    """
    statement_ms = int(settings.statement_timeout_seconds * 1000)
    options = (
        f"-c statement_timeout={statement_ms}"
        f" -c idle_in_transaction_session_timeout={statement_ms} -c TimeZone=UTC"
    )
    if read_only_role is not None:
        options += f" -c role={read_only_role} -c default_transaction_read_only=on"
    engine = create_engine(
        postgres_url(url),
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={
            "connect_timeout": max(1, int(settings.connect_timeout_seconds)),
            "application_name": application_name,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": statement_ms,
            "options": options,
        },
    )

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> _AnswerDeadline:
        connection = _AnswerDeadline.connect(*cargs, **cparams)
        connection.answer_timeout = settings.statement_timeout_seconds
        return connection

    event.listen(engine, "connect", _use_orjson)
    return engine


class _AnswerDeadline(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for a server that stopped answering.

    psycopg waits on the socket without a deadline of its own. Every exchange with the
    server (a query, a ``COPY`` chunk, a commit, a pre-ping) goes through ``wait``; past
    ``answer_timeout`` the connection is closed, mid-protocol as it is, and the error
    is one SQLAlchemy counts as a disconnect: the connection is discarded, not pooled.
    A transaction cut off this way was never committed by us (the server rolls it back
    when it notices the session is gone), or its commit is unconfirmed: the caller
    reports it as not written either way.
    """

    answer_timeout: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        deadline = self.answer_timeout if timeout is None else timeout
        try:
            return super().wait(gen, interval, deadline)
        except _WaitTimeout:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from the database within {deadline:g} s; connection closed"
            ) from None


@contextmanager
def without_time_limits(conn: Connection) -> Iterator[None]:
    """Lift ``conn``'s time bounds for the rest of its transaction: for work expected to
    take long, such as a migration building an index over millions of versions.

    The server's statement and idle-in-transaction timeouts are set to none with ``SET
    LOCAL`` (they come back with the next transaction), and the client-side answer
    deadline is off until the block ends. Keepalives still notice a peer that vanished.
    """
    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
    driver = conn.connection.driver_connection
    if not isinstance(driver, _AnswerDeadline):
        yield
        return
    saved = driver.answer_timeout
    driver.answer_timeout = None
    try:
        yield
    finally:
        driver.answer_timeout = saved


def database_error(exc: SQLAlchemyError) -> str:
    """The driver's own message in one line, without SQLAlchemy's SQL echo and help link."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _use_orjson(dbapi_connection: Any, _record: Any) -> None:
    """Decode jsonb with orjson: a whole-exchange answer carries ~20,000 ``raw`` objects."""
    set_json_loads(orjson.loads, dbapi_connection)
