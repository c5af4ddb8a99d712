"""Alembic environment: runs online against the engine the caller hands over."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine

from core.config import DatabaseSettings
from core.db import create_db_engine, without_time_limits
from core.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    url = os.environ.get("EXMETA_DATABASE__URL", "")
    if not url:
        raise SystemExit("set EXMETA_DATABASE__URL, or run `exmeta migrate`")
    return create_db_engine(url, DatabaseSettings())


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        # Serialise concurrent `exmeta migrate` runs (two compose services, two hosts).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7201500001)")
        # An index built over millions of versions may take minutes: the statement
        # timeout that guards the poller and the API must not cut a migration short.
        with without_time_limits(connection):
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
