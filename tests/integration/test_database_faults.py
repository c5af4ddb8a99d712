"""Connections that die or stop answering: noticed, discarded, never reused."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from core.config import DatabaseSettings
from core.db import create_db_engine
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = make_url(database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


def engine_through(proxy: TcpProxy, database_url: str, timeout: float) -> Engine:
    url = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
    settings = DatabaseSettings(connect_timeout_seconds=1, statement_timeout_seconds=timeout)
    return create_db_engine(url, settings, application_name="exmeta-fault-tests", pool_size=1)


def select_one(engine: Engine) -> object:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1")).scalar()


def test_a_black_holed_connection_fails_at_its_deadline_and_is_not_reused(
    engine: Engine, proxy: TcpProxy, database_url: str
) -> None:
    faulty = engine_through(proxy, database_url, timeout=1)
    try:
        assert select_one(faulty) == 1  # the pooled connection now goes through the proxy
        proxy.black_hole()
        # The pre-ping of the pooled connection gets no answer; neither does a new one.
        with pytest.raises(OperationalError) as failure:
            select_one(faulty)
        message = str(failure.value)
        assert "no answer from the database within 1 s" in message or "timeout" in message
        proxy.forward()
        assert select_one(faulty) == 1  # a fresh connection; the dead one was discarded
    finally:
        faulty.dispose()


def test_a_transaction_cut_off_by_a_black_hole_is_rolled_back_and_frees_its_locks(
    engine: Engine, proxy: TcpProxy, database_url: str
) -> None:
    faulty = engine_through(proxy, database_url, timeout=1)
    try:
        with faulty.connect() as conn:  # a transaction, never committed
            conn.execute(text("INSERT INTO stream_heads (stream) VALUES ('exchange_info')"))
            conn.execute(text("SELECT 1 FROM stream_heads FOR UPDATE"))
            proxy.black_hole()
            with pytest.raises(OperationalError):
                conn.execute(text("UPDATE stream_heads SET last_observation_id = 1"))
        # The server ends the silent session (idle in transaction) and rolls it back, so
        # the row lock it held is free again well within the other side's own timeout.
        with engine.begin() as other:
            assert other.execute(text("SELECT * FROM stream_heads FOR UPDATE")).all() == []
    finally:
        faulty.dispose()


def test_connections_that_died_in_the_pool_do_not_fail_the_next_use(engine: Engine) -> None:
    with engine.connect() as conn, engine.connect() as other:
        assert conn.execute(text("SELECT 1")).scalar() == other.execute(text("SELECT 1")).scalar()
    with engine.connect() as conn:  # both are idle in the pool now; a restart would kill them
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'exmeta-tests' AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert isinstance(killed, int)
    assert killed >= 1
    for _ in range(3):
        assert select_one(engine) == 1
