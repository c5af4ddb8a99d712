"""The API acts as ``exmeta_api``: it reads all that its routes serve and can write nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InternalError, ProgrammingError

import migrations
from api import create_app
from core.config import DatabaseSettings, Settings
from core.db import API_ROLE, create_db_engine
from exmeta.cli import main
from tests.api_client import ts
from tests.conftest import postgres_under_test
from tests.scripts import NOW, T1, record_script

WRITES = [
    "INSERT INTO observations (stream, replica_id, observed_at, outcome)"
    " VALUES ('exchange_info', 'x', now(), 'error')",
    "UPDATE symbol_versions SET status = 'HALT'",
    "DELETE FROM symbol_filter_versions",
    "UPDATE observations SET outcome = 'error'",
    "DELETE FROM raw_bodies",
    "UPDATE stream_leases SET holder = 'x'",
    "DELETE FROM replicas",
    "INSERT INTO stream_heads (stream) VALUES ('x')",
    "TRUNCATE account_versions",
    "CREATE TABLE public.scratch (x int)",
]


def refused(engine: Engine, statement: str, *, read_write: bool) -> DBAPIError:
    with engine.connect() as conn:
        if read_write:
            conn.execute(text("SET transaction_read_only = off"))
        with pytest.raises((ProgrammingError, InternalError)) as caught:
            conn.execute(text(statement))
    return caught.value


@pytest.mark.parametrize("statement", WRITES)
def test_the_api_engine_refuses_every_write(api_engine: Engine, statement: str) -> None:
    assert "read-only transaction" in str(refused(api_engine, statement, read_write=False))


@pytest.mark.parametrize("statement", WRITES)
def test_the_role_itself_refuses_writes_once_the_transaction_may_write(
    api_engine: Engine, statement: str
) -> None:
    # default_transaction_read_only is a setting a session may change; the grants are not.
    assert "permission denied" in str(refused(api_engine, statement, read_write=True))


def test_the_api_engine_acts_as_the_api_role(api_engine: Engine) -> None:
    with api_engine.connect() as conn:
        role, read_only = conn.execute(
            text("SELECT current_user, current_setting('transaction_read_only')")
        ).one()
    assert (role, read_only) == (API_ROLE, "on")


@pytest.fixture
def api_login(engine: Engine) -> Iterator[str]:
    """A URL of a fresh LOGIN role in exmeta_api, as README tells an administrator to make."""
    name = f"exmeta_api_login_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN IN ROLE {API_ROLE}"))
        conn.commit()
    try:
        yield engine.url.set(username=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP ROLE {name}"))
            conn.commit()


def test_a_login_in_the_api_role_serves_the_api_and_cannot_write_even_after_reset_role(
    engine: Engine, api_login: str
) -> None:
    record_script(engine)
    login = create_db_engine(api_login, DatabaseSettings(), read_only_role=API_ROLE)
    try:
        client = create_app(Settings(), login, clock=lambda: NOW).test_client()
        for route in (
            f"/v1/symbols?as_of={ts(T1)}",
            "/v1/exchange-info",
            f"/v1/changes?from={ts(T1)}",
            "/v1/replicas",
            "/metrics",
        ):
            assert client.get(route).status_code == 200, route
        with login.connect() as conn:
            conn.execute(text("RESET ROLE"))
            conn.execute(text("SET transaction_read_only = off"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("DELETE FROM symbol_versions"))
    finally:
        login.dispose()


def test_the_read_commands_use_the_api_login_when_one_is_configured(
    engine: Engine,
    api_login: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record_script(engine)
    monkeypatch.delenv("EXMETA_DATABASE__URL", raising=False)
    monkeypatch.setenv("EXMETA_DATABASE__EMBEDDED_DATA_DIR", "/nonexistent/never-started")
    monkeypatch.setenv("EXMETA_API__DATABASE_URL", api_login)
    assert main(["asof", ts(T1), "BTCUSDT", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["symbol"] == "BTCUSDT"


def test_a_login_outside_the_api_role_is_a_one_line_exit_2(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"exmeta_outsider_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        conn.commit()
    try:
        monkeypatch.setenv(
            "EXMETA_API__DATABASE_URL",
            engine.url.set(username=name).render_as_string(hide_password=False),
        )
        assert main(["asof", ts(T1), "BTCUSDT"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f'permission denied to set role "{API_ROLE}"' in err
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP ROLE {name}"))
            conn.commit()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[str]:
    """A server of its own, where no exmeta role exists yet: its admin URL."""
    server = postgres_under_test(tmp_path / "pgdata")
    server.start()
    try:
        yield server.url()
    finally:
        server.stop("immediate")


def test_an_owner_that_is_no_superuser_migrates_and_serves_as_the_api_role(
    fresh_server: str,
) -> None:
    # As on a managed PostgreSQL: the owner may create roles but is no superuser.
    with psycopg.connect(fresh_server, autocommit=True) as admin:
        admin.execute("CREATE ROLE owner LOGIN CREATEROLE")
        admin.execute("CREATE DATABASE exmeta OWNER owner")
    owner_url = make_url(fresh_server).set(username="owner", database="exmeta")
    url = owner_url.render_as_string(hide_password=False)
    owner = create_db_engine(url, DatabaseSettings())
    api = create_db_engine(url, DatabaseSettings(), read_only_role=API_ROLE)
    try:
        migrations.upgrade(owner)
        record_script(owner)
        client = create_app(Settings(), api, clock=lambda: NOW).test_client()
        assert client.get(f"/v1/symbols?as_of={ts(T1)}").status_code == 200
        with api.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == API_ROLE
        assert "permission denied" in str(
            refused(api, "DELETE FROM symbol_versions", read_write=True)
        )
    finally:
        api.dispose()
        owner.dispose()
