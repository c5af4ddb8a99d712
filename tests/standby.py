"""A primary and a real streaming hot standby of it (``pg_basebackup -R``), for the tests
of the API reading from a standby. Both are servers of the build under test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

import migrations
from core.config import DatabaseSettings
from core.db import create_db_engine
from exmeta.embedded import EmbeddedPostgres
from tests.conftest import postgres_under_test

DATABASE = "exmeta"


@dataclass(frozen=True, slots=True)
class Replicated:
    primary: EmbeddedPostgres
    standby: EmbeddedPostgres
    writer: Engine  # the migrated database on the primary, as its owner

    @property
    def standby_url(self) -> str:
        return self.standby.url(DATABASE)

    def both_url(self) -> str:
        """One URL for the primary, then the standby: libpq connects to the first that
        answers, so new connections fail over to the standby once the primary is down."""
        hosts = [f"127.0.0.1:{s.port}" for s in (self.primary, self.standby)]
        url = make_url(self.primary.url(DATABASE)).set(host=None, port=None)
        return url.update_query_pairs([("host", h) for h in hosts]).render_as_string()

    def on_standby(self, sql: str) -> object:
        """One statement on the standby as its superuser (replay control, positions)."""
        with psycopg.connect(self.standby.url(DATABASE), autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
        return None if row is None else row[0]

    def wait_until_standby(self, position: str, lsn: str, timeout: float = 30) -> None:
        """Wait until the standby's ``position`` (``receive`` or ``replay``) reaches ``lsn``."""
        deadline = time.monotonic() + timeout
        while not self.on_standby(f"SELECT pg_last_wal_{position}_lsn() >= '{lsn}'::pg_lsn"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby's {position} did not reach {lsn}")
            time.sleep(0.05)

    def primary_position(self) -> str:
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def wait_for_replay(self) -> None:
        self.wait_until_standby("replay", self.primary_position())


@contextlib.contextmanager
def replicated(directory: Path) -> Iterator[Replicated]:
    """A migrated ``exmeta`` database on a primary, and a standby replaying it; both
    servers are stopped when the block ends, however it ends."""
    primary = postgres_under_test(directory / "primary")
    standby = postgres_under_test(directory / "standby")
    with contextlib.ExitStack() as stack:
        stack.callback(primary.stop, "immediate")
        stack.callback(standby.stop, "immediate")  # callbacks run last first: the standby
        primary.start()
        writer = create_db_engine(primary.ensure_database(DATABASE), DatabaseSettings())
        stack.callback(writer.dispose)
        migrations.upgrade(writer)
        standby.replicate(primary)
        standby.start()
        yield Replicated(primary, standby, writer)
