"""Migrations: they run both ways, and they build exactly what the models describe."""

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import migrations
from core.config import DatabaseSettings
from core.db import create_db_engine
from core.models import Base
from tests.conftest import DatabaseServer


@pytest.fixture
def empty_engine(pg_server: DatabaseServer) -> Iterator[Engine]:
    engine = create_db_engine(pg_server.create_database("exmeta_migrations"), DatabaseSettings())
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    assert tables(empty_engine) == set(Base.metadata.tables)
    migrations.downgrade(empty_engine, "base")
    assert tables(empty_engine) == set()
    migrations.upgrade(empty_engine)
    assert tables(empty_engine) == set(Base.metadata.tables)


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_each_revision_downgrades_cleanly_to_the_one_before(empty_engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config(empty_engine))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert len(revisions) >= 4
    for revision in revisions:
        migrations.upgrade(empty_engine, revision)
    for previous in [*reversed(revisions[:-1]), "base"]:
        migrations.downgrade(empty_engine, previous)
    assert tables(empty_engine) == set()
