"""Connections that die or stop answering: noticed, discarded, never reused; the poller
says so in one line, reports no change it did not commit, and carries on once it can."""

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from binance_sim.server import SimServer
from binance_sim.state import Fault, FaultKind
from core.config import DatabaseSettings
from core.db import create_db_engine, without_time_limits
from core.ingest import StreamWriter
from poller.runner import Poller, Replica, ScheduledJob
from tests.builders import client_for, exchange_info_job
from tests.e2e.processes import wait_for
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


def test_a_poll_whose_write_gets_no_answer_is_not_reported_and_polling_resumes(
    engine: Engine,
    proxy: TcpProxy,
    database_url: str,
    sim: SimServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    faulty = engine_through(proxy, database_url, timeout=1)
    job = exchange_info_job(client_for(sim.url), StreamWriter(faulty, "exchange_info"), "r0")
    poller = Poller([ScheduledJob(job, 0.2)], replica=Replica(faulty, "r0", lease_seconds=2))
    sim.state.add_fault(Fault(FaultKind.SLOW, delay_seconds=1.0))

    def logged(text: str) -> bool:
        return any(text in r.getMessage() for r in caplog.records)

    poller.start()
    try:
        assert wait_for(lambda: not sim.state.pending_faults(), 10)  # the first poll is out
        proxy.black_hole()  # before its answer comes back to be written
        assert wait_for(lambda: logged("exchange_info poll: database unavailable"), 15)
        assert not logged("poll changed")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM observations")).scalar() == 0

        proxy.forward()
        assert wait_for(lambda: logged("exchange_info poll changed"), 15)
    finally:
        poller.shutdown(grace_seconds=5)
        faulty.dispose()
    assert [r for r in caplog.records if r.exc_info] == []  # warnings, never tracebacks
    with engine.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM observations ORDER BY id")).scalars()
        assert next(outcomes) == "changed"  # the first poll that could be written


def test_a_migration_may_take_longer_than_the_statement_timeout(database_url: str) -> None:
    """without_time_limits (used by migrations/env.py) lifts the server's timeout and the
    answer deadline for one transaction; the next transaction is bounded again."""
    settings = DatabaseSettings(statement_timeout_seconds=0.3)
    engine = create_db_engine(database_url, settings, pool_size=1)
    try:
        with engine.connect() as conn:
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT pg_sleep(0.6)"))
            conn.rollback()
            with without_time_limits(conn):
                conn.execute(text("SELECT pg_sleep(0.6)"))
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
            conn.commit()
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "300ms"
    finally:
        engine.dispose()
