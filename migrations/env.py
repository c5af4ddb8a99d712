"""Alembic environment: runs online against the engine the caller hands over (`exmeta
migrate`), or, for a bare `alembic upgrade`, an engine built from the settings that every
command reads (core.config.load_settings: the environment, EXMETA_DATABASE__URL).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from core.config import ConfigError, load_settings
from core.db import create_db_engine, without_time_limits
from core.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration: {exc}") from None
    url = settings.database.url.reveal()
    if not url:
        raise SystemExit("set EXMETA_DATABASE__URL, or run `exmeta migrate`")
    return create_db_engine(url, settings.database)


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
