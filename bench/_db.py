"""A throwaway migrated database for benchmarks: embedded, or EXMETA_BENCH_DATABASE_URL."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

import migrations
from bench._procs import sigterm_as_interrupt
from core.config import DatabaseSettings
from core.db import create_db_engine
from exmeta.embedded import EmbeddedPostgres

# ../shared beside the checkout; a git worktree sits one level deeper (wt/<name>).
SHARED_FIXTURES = next(
    (
        parent / "shared" / "fixtures" / "binance"
        for parent in Path(__file__).resolve().parents[2:4]
        if (parent / "shared" / "fixtures" / "binance").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "binance",
)
TEST_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def fixture(name: str) -> Path:
    """A real exchangeInfo snapshot: the tests' copy, or ../shared's full set."""
    for candidate in (TEST_FIXTURES / name, SHARED_FIXTURES / "exchange_info" / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"fixture {name} not found in {TEST_FIXTURES} or {SHARED_FIXTURES}")


@contextmanager
def bench_engine() -> Iterator[Engine]:
    """A migrated throwaway database, dropped (and its embedded server stopped) however the
    benchmark ends: normally, on an error, on Ctrl-C or on SIGTERM."""
    admin = os.environ.get("EXMETA_BENCH_DATABASE_URL")
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="exmeta-bench-") as tmp:
        embedded = None if admin else EmbeddedPostgres(Path(tmp) / "pgdata")
        name = f"exmeta_bench_{uuid.uuid4().hex[:8]}"
        created = False
        engine = None
        try:
            if embedded is not None:
                embedded.start()
                admin = embedded.url()
            assert admin is not None
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            created = True
            url = make_url(admin).set(database=name).render_as_string(hide_password=False)
            engine = create_db_engine(url, DatabaseSettings(), application_name="exmeta-bench")
            migrations.upgrade(engine)
            yield engine
        finally:
            if engine is not None:
                engine.dispose()
            if created and admin is not None:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if embedded is not None:
                embedded.stop("immediate")
