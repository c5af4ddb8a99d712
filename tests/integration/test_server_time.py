"""A serverTime that disagrees with the database clock neither dates nor freezes a stream."""

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api import create_app
from binance_sim.server import SimServer
from core import history
from core.config import Settings, replace_section
from core.dating import Skew
from core.ingest import Recorded, StreamWriter
from core.verify import verify_history
from tests.builders import (
    client_for,
    exchange_info,
    exchange_info_job,
    record_exchange_info,
    symbol,
)
from tests.e2e.processes import exmeta_env, run_exmeta

TEN_YEARS = timedelta(days=3653)
DOCUMENT = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
HALTED = exchange_info(symbol("BTCUSDT", status="BREAK"), symbol("ETHUSDT"))


def database_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return now


def polled(
    engine: Engine, writer: StreamWriter, document: dict[str, Any], when: datetime
) -> Recorded:
    """Record ``document`` as a poller does, its request sent just now, stamped ``when``."""
    return record_exchange_info(
        engine, document, when, writer=writer, sent_monotonic=time.monotonic()
    )


def observation(engine: Engine, observation_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT outcome, observed_at, server_time, error_class FROM observations"
                " WHERE id = :id"
            ),
            {"id": observation_id},
        ).one()
    return dict(row._mapping)


def rejections(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT server_time_rejections FROM stream_heads WHERE stream = 'exchange_info'"
                )
            ).scalar_one()
        )


def btc_statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT status FROM symbol_versions WHERE symbol = 'BTCUSDT' ORDER BY valid_from"
                )
            ).scalars()
        )


def test_a_future_server_time_is_dated_by_the_database_clock_and_the_next_change_applies(
    engine: Engine, api_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    writer = StreamWriter(engine, "exchange_info")
    assert polled(engine, writer, DOCUMENT, datetime.now(UTC)).outcome == "changed"

    future = datetime.now(UTC).replace(microsecond=0) + TEN_YEARS
    before = database_now(engine)
    with caplog.at_level(logging.WARNING, logger="core.ingest"):
        glitch = polled(engine, writer, DOCUMENT, future)
    after = database_now(engine)
    assert (glitch.outcome, glitch.server_time_skew) == ("unchanged", Skew.AHEAD)
    assert before <= glitch.observed_at <= after  # the database clock, not serverTime
    assert observation(engine, glitch.observation_id) == {
        "outcome": "unchanged",
        "observed_at": glitch.observed_at,
        "server_time": future,  # the disagreement stays on the observation
        "error_class": None,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "exchange_info: serverTime" in warnings[0]
    assert "ahead of the request's window" in warnings[0]

    halt = polled(engine, writer, HALTED, datetime.now(UTC))
    assert halt.outcome == "changed"  # not stale: the stream did not freeze
    assert halt.server_time_skew is None
    assert btc_statuses(engine) == ["TRADING", "BREAK"]
    assert rejections(engine) == 1

    metrics = create_app(Settings(), api_engine).test_client().get("/metrics").text
    assert 'exmeta_server_time_rejected_total{stream="exchange_info"} 1.0' in metrics


def test_a_server_time_behind_the_request_is_applied_dated_by_the_database_clock(
    engine: Engine,
) -> None:
    """A database clock running ahead of Binance's must not freeze the stream either."""
    writer = StreamWriter(engine, "exchange_info")
    assert polled(engine, writer, DOCUMENT, datetime.now(UTC)).outcome == "changed"
    an_hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    before = datetime.now(UTC)
    behind = polled(engine, writer, HALTED, an_hour_ago)
    assert (behind.outcome, behind.server_time_skew) == ("changed", Skew.BEHIND)
    assert behind.observed_at >= before
    found = observation(engine, behind.observation_id)
    assert (found["server_time"], found["error_class"]) == (an_hour_ago, None)
    assert btc_statuses(engine) == ["TRADING", "BREAK"]
    assert rejections(engine) == 1


def test_the_stored_document_keeps_the_server_time_binance_sent(engine: Engine) -> None:
    writer = StreamWriter(engine, "exchange_info")
    future = datetime.now(UTC).replace(microsecond=0) + TEN_YEARS
    glitch = polled(engine, writer, DOCUMENT, future)
    with engine.connect() as conn:
        stored = history.exchange_info_as_of(conn, glitch.observed_at)
    assert stored is not None
    assert stored.observed_at == glitch.observed_at
    assert f'"serverTime":{int(future.timestamp() * 1000)}'.encode() in stored.body


def test_a_server_time_in_microseconds_is_ahead_of_the_request_not_a_crash(
    engine: Engine, sim: SimServer
) -> None:
    """Past year 9999 as milliseconds (a proxy asking for X-MBX-TIME-UNIT: MICROSECOND):
    it used to raise in every poll, so that nothing was recorded while it lasted."""
    job = exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), "test")
    sim.state.set_clock_offset_ms(sim.state.server_time_ms() * 999)
    recorded = job.run()
    assert (recorded.outcome, recorded.server_time_skew) == ("changed", Skew.AHEAD)
    assert observation(engine, recorded.observation_id)["server_time"] == datetime.max.replace(
        tzinfo=UTC
    )
    sim.state.set_clock_offset_ms(0)
    assert job.run().outcome == "unchanged"


def record_the_old_way(engine: Engine, document: dict[str, Any], when: datetime) -> Recorded:
    """Dated by serverTime whatever it says, as before it was checked (no request window)."""
    return record_exchange_info(engine, document, when)


def test_verify_and_readyz_report_a_stream_dated_ahead_and_repair_lets_it_record_again(
    engine: Engine, api_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = record_the_old_way(engine, DOCUMENT, now - timedelta(seconds=2))
    retick = exchange_info(symbol("BTCUSDT", tick_size="0.10000000"), symbol("ETHUSDT"))
    future = [
        record_the_old_way(engine, retick, now + TEN_YEARS),
        record_the_old_way(engine, retick, now + TEN_YEARS + timedelta(seconds=1)),
    ]
    assert [r.outcome for r in future] == ["changed", "unchanged"]

    with engine.connect() as conn:
        [finding] = verify_history(conn)
    assert (finding.check, finding.table, finding.key) == (
        "ahead of the clock",
        "stream_heads",
        "stream=exchange_info",
    )
    env = exmeta_env(database_url, "http://127.0.0.1:9", 10)
    checked = run_exmeta(env, tmp_path, "verify")
    assert checked.returncode == 1
    assert "ahead of the clock: stream_heads stream=exchange_info" in checked.stdout

    relaxed = replace_section(Settings(), "poller", exchange_info_interval=3600.0)
    probe = create_app(relaxed, api_engine).test_client()
    answer = probe.get("/readyz")
    assert answer.status_code == 503
    [reason] = answer.json["reasons"]
    assert reason.startswith("exchange_info: newest applied observation at")
    assert "ahead of the database clock" in reason

    writer = StreamWriter(engine, "exchange_info")
    assert polled(engine, writer, HALTED, datetime.now(UTC)).outcome == "stale"  # frozen

    repaired = run_exmeta(env, tmp_path, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    undone = ", ".join(str(r.observation_id) for r in future)
    assert f"repaired exchange_info: undid observation(s) {undone}" in repaired.stdout
    assert repaired.stdout.endswith("history verified: no findings\n")
    for r in future:
        assert observation(engine, r.observation_id)["error_class"] == "future_server_time"
    with engine.connect() as conn:
        assert verify_history(conn) == []
        head = conn.execute(
            text("SELECT last_applied_at FROM stream_heads WHERE stream = 'exchange_info'")
        ).scalar_one()
    assert head == first.observed_at
    assert probe.get("/readyz").status_code == 200

    halt = polled(engine, writer, HALTED, datetime.now(UTC))
    assert halt.outcome == "changed"
    assert btc_statuses(engine) == ["TRADING", "BREAK"]
    with engine.connect() as conn:
        ticks = conn.execute(
            text(
                "SELECT tick_size FROM symbol_filter_versions WHERE symbol = 'BTCUSDT'"
                " AND filter_type = 'PRICE_FILTER' AND valid_to IS NULL"
            )
        ).scalar_one()
    assert str(ticks) == "0.01000000"  # the undone re-tick is not in force
