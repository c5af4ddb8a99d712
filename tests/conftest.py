"""One way to get PostgreSQL in tests: a real server, never SQLite or a mock.

``EXMETA_TEST_DATABASE_URL`` points at a server to use (a fresh database is created on
it for the run and dropped after); without it an embedded server is started in a
temporary directory and removed after the run: the wheel's, or the build whose programs
are in ``EXMETA_TEST_PG_BINDIR`` (CI runs the database tests again on Debian's
PostgreSQL 15, the oldest major the README claims, with ``/usr/lib/postgresql/15/bin``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

import migrations
from binance_sim.server import SimServer
from core.config import DatabaseSettings
from core.db import API_ROLE, create_db_engine
from core.verify import verify_history
from exmeta.embedded import EmbeddedPostgres

FIXTURES = Path(__file__).parent / "fixtures"
FIGURE = "exmeta-figure"  # the user property a measured figure travels in
FIGURES_SEEN: list[str] = []
TABLES = (
    "symbol_filter_versions",
    "symbol_versions",
    "rate_limit_versions",
    "exchange_filter_versions",
    "account_versions",
    "balance_versions",
    "commission_versions",
    "system_status_versions",
    "delisting_versions",
    "schema_versions",
    "observations",
    "observation_runs",
    "raw_bodies",
    "stream_heads",
    "stream_leases",
    "replicas",
    "request_budget",
    "poll_totals",
    "version_totals",
    "usdm_symbol_versions",
    "usdm_symbol_filter_versions",
    "usdm_asset_versions",
    "usdm_rate_limit_versions",
    "usdm_exchange_filter_versions",
    "coinm_symbol_versions",
    "coinm_symbol_filter_versions",
    "coinm_rate_limit_versions",
    "coinm_exchange_filter_versions",
    "wallet_coin_versions",
    "wallet_network_versions",
    "margin_pair_versions",
    "margin_isolated_pair_versions",
    "margin_delisting_versions",
    "stream_signals",
    "stream_listeners",
)


# The tables of TABLES a test wrote to: those holding rows, and those whose identity
# sequence was drawn from (rows written and deleted again still moved the ids on).
# Emptying only those is what TRUNCATE of all TABLES does, at a fraction of its cost: it
# recreates every table's and index's files, ~50 ms a test for ~36 tables, while a probe
# of which hold rows costs ~1 ms and most tests write to a handful.
_WRITTEN_TABLES = (
    " UNION ".join(f"(SELECT '{t}' FROM {t} LIMIT 1)" for t in TABLES)
    + " UNION SELECT t.relname::text FROM pg_depend d"
    " JOIN pg_class q ON q.oid = d.objid AND q.relkind = 'S'"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " JOIN pg_sequences s ON s.schemaname = current_schema() AND s.sequencename = q.relname"
    " WHERE d.deptype IN ('a', 'i') AND s.last_value IS NOT NULL"
    " AND t.relname = ANY(:tables)"
)


def postgres_under_test(data_dir: Path) -> EmbeddedPostgres:
    """A server of the build under test in ``data_dir``, for every test that starts one."""
    bin_dir = os.environ.get("EXMETA_TEST_PG_BINDIR")
    return EmbeddedPostgres(data_dir, bin_dir=Path(bin_dir) if bin_dir else None)


class DatabaseServer:
    """Creates and drops throwaway databases on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create_database(self, prefix: str = "exmeta_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseServer]:
    url = os.environ.get("EXMETA_TEST_DATABASE_URL")
    if url:
        server = DatabaseServer(url.replace("postgresql+psycopg://", "postgresql://"))
        yield server
        server.drop_all()
        return
    embedded = postgres_under_test(tmp_path_factory.mktemp("pg") / "data")
    embedded.start()
    try:
        yield DatabaseServer(embedded.url())
    finally:
        embedded.stop("immediate")


@pytest.fixture(scope="session")
def database_url(pg_server: DatabaseServer) -> str:
    return pg_server.create_database()


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url, DatabaseSettings(), application_name="exmeta-tests")
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    """The migrated test database, emptied before each test.

    After each test the history it left is checked as ``exmeta verify`` checks it, so
    every history the suite produces is a sound one (the tests of verify's findings
    forge theirs in a database of their own).
    """
    with migrated_engine.begin() as conn:
        written = conn.execute(text(_WRITTEN_TABLES), {"tables": list(TABLES)}).scalars().all()
        if written:
            conn.execute(text(f"TRUNCATE {', '.join(written)} RESTART IDENTITY CASCADE"))
    yield migrated_engine
    with migrated_engine.connect() as conn:
        found = verify_history(conn)
    if found:
        pytest.fail(
            "exmeta verify finds the history this test left unsound:\n"
            + "\n".join(str(f) for f in found[:10]),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def read_only_engine(migrated_engine: Engine, database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(
        database_url,
        DatabaseSettings(),
        application_name="exmeta-tests-api",
        pre_ping=False,
        read_only_role=API_ROLE,
    )
    yield engine
    engine.dispose()


@pytest.fixture
def api_engine(engine: Engine, read_only_engine: Engine) -> Engine:
    """The emptied test database as the API reaches it: acting as exmeta_api, read only.

    Tests write their story through ``engine`` and give the API this one, so every API
    test also shows that the API's role can read all that the routes read.
    """
    return read_only_engine


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """The Binance look-alike on a free loopback port, serving the packaged 12 symbols."""
    with SimServer() as server:
        yield server


@pytest.fixture
def report_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print a measured figure (a takeover time) in the summary of every pytest run.

    Figures travel as the test's user properties, which reach the process that prints the
    summary whether the test ran there or in a worker of ``pytest -n`` (pytest-xdist)."""

    def report(line: str) -> None:
        request.node.user_properties.append((FIGURE, line))

    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # the last report of a test holds all its properties
        FIGURES_SEEN.extend(str(v) for k, v in report.user_properties if k == FIGURE)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    figures = FIGURES_SEEN
    if figures:
        terminalreporter.section("measured figures")
        for line in figures:
            terminalreporter.write_line(line)
