"""A bare `alembic upgrade` (migrations/env.py without an engine handed over) reads the
database settings as every command does, through core.config.load_settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from core.config import DatabaseSettings
from core.db import create_db_engine
from tests.conftest import DatabaseServer
from tests.e2e.processes import REPO, cli_env


def alembic_upgrade(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(REPO / "migrations" / "alembic.ini"),
            "upgrade",
            "head",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bad_database_url_is_refused_by_the_settings_loader_in_one_line(tmp_path: Path) -> None:
    done = alembic_upgrade(
        cli_env(EXMETA_DATABASE__URL="mysql://exmeta:hunter2@db/exmeta"), tmp_path
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("configuration: [database] url (EXMETA_DATABASE__URL) is not a PostgreSQL URL")
    )
    assert "hunter2" not in done.stderr


def test_the_configured_url_is_migrated(pg_server: DatabaseServer, tmp_path: Path) -> None:
    url = pg_server.create_database("exmeta_alembic_env")

    done = alembic_upgrade(cli_env(EXMETA_DATABASE__URL=url), tmp_path)

    assert done.returncode == 0, done.stderr
    engine = create_db_engine(url, DatabaseSettings())
    try:
        assert "symbol_versions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
