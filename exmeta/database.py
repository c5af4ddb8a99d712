"""The database a command works on: the configured one or an embedded server, and
engines whose every failure is one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from core.config import Settings
from core.db import API_ROLE, create_db_engine, redact_url
from exmeta.embedded import EmbeddedError, EmbeddedPostgres, default_data_dir
from exmeta.errors import CliError

EMBEDDED_DATABASE = "exmeta"

T = TypeVar("T")


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL: the configured one, or an embedded server's (started if needed).

    An embedded server this process started, or adopted from an owner that is gone, is
    stopped when the block ends; one that another running `exmeta` command started is
    left alone (EmbeddedPostgres.start).
    """
    url = settings.database.url.reveal()
    if url:
        yield url
        return
    data_dir = Path(settings.database.embedded_data_dir or default_data_dir()).expanduser()
    server = EmbeddedPostgres(data_dir)
    owned = False
    try:
        owned = server.start()
        url = server.ensure_database(EMBEDDED_DATABASE)
    except EmbeddedError as exc:
        raise CliError(f"embedded PostgreSQL: {exc}") from None
    print(f"embedded PostgreSQL: data directory {data_dir}", file=sys.stderr)
    print(f"embedded PostgreSQL: psql {url}", file=sys.stderr)
    try:
        yield url
    finally:
        if owned:
            server.stop()


@contextmanager
def engine(
    settings: Settings, url: str, name: str, *, read_only_role: str | None = None
) -> Iterator[Engine]:
    """An engine for one command; any database problem becomes a one-line exit 2."""
    built = create_db_engine(
        url, settings.database, application_name=f"exmeta-{name}", read_only_role=read_only_role
    )
    try:
        yield built
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())  # libpq adds a hint on a second line
        raise CliError(f"cannot reach the database at {redact_url(url)}: {reason}", 2) from None
    except DBAPIError as exc:
        # e.g. a table missing: an unmigrated database cannot answer either.
        reason = " ".join(str(exc.orig).split())
        raise CliError(f"cannot read the database: {reason}", 2) from None
    finally:
        built.dispose()


@contextmanager
def api_database(settings: Settings) -> Iterator[str]:
    """The URL the API connects with: its own login if configured, else the database's."""
    own = settings.api.database_url.reveal()
    if own:
        yield own
        return
    with database(settings) as url:
        yield url


@contextmanager
def api_engine(settings: Settings, url: str, name: str) -> Iterator[Engine]:
    """An engine that reads as the API does, acting as its role; checked to connect and
    to find the schema.

    A login that cannot act as the role fails here in one line (exit 2), not as a 503
    on every request; a database not migrated too, not as the route's internal error
    (exit 1) with its traceback logged.
    """
    with engine(settings, url, name, read_only_role=API_ROLE) as built:
        with built.connect() as conn:
            # Every answer's evidence starts from the streams' heads.
            conn.execute(text("SELECT 1 FROM stream_heads LIMIT 0"))
        yield built


def read(settings: Settings, name: str, query: Callable[[Connection], T]) -> T:
    """Run one read-only ``query`` with the operator's login (not the API's role)."""
    with (
        database(settings) as url,
        engine(settings, url, name) as built,
        built.connect() as conn,
    ):
        return query(conn)


def migrate(settings: Settings, url: str) -> None:
    """Bring the schema at ``url`` to the newest revision."""
    import migrations

    with engine(settings, url, "migrate") as built:
        migrations.upgrade(built)
