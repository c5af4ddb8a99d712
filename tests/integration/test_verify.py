"""`exmeta verify`: sound on what the write path records, loud on history forged by hand."""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, text

import migrations
from binance_sim.server import SimServer
from core.config import DatabaseSettings
from core.db import create_db_engine
from core.ingest import StreamWriter
from core.verify import Finding, verify_history
from tests.builders import (
    at,
    client_for,
    exchange_info,
    exchange_info_job,
    record_exchange_info,
    record_failure,
    symbol,
)
from tests.conftest import TABLES, DatabaseServer

REPO = Path(__file__).resolve().parents[2]
T0 = at("2024-01-01T00:00:00")


def findings(engine: Engine) -> list[Finding]:
    with engine.connect() as conn:
        return verify_history(conn)


def run_verify(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env.update(EXMETA_DATABASE__URL=database_url, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "exmeta", "verify"],
        cwd=tmp_path,  # no config.toml here: defaults + environment only
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def record_a_busy_history(engine: Engine) -> None:
    """Listing, a change, a failure, an unchanged poll, a delisting and a relisting."""
    btc, eth = symbol("BTCUSDT"), symbol("ETHUSDT")
    record_exchange_info(engine, exchange_info(btc, eth), T0)
    record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT", tick_size="0.10000000"), eth), T0 + timedelta(1)
    )
    record_failure(engine, T0 + timedelta(2))
    record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT", tick_size="0.10000000"), eth), T0 + timedelta(3)
    )
    record_exchange_info(engine, exchange_info(eth), T0 + timedelta(4))  # BTCUSDT delisted
    record_exchange_info(engine, exchange_info(btc, eth), T0 + timedelta(5))  # and back


def test_history_written_by_the_write_path_has_no_findings(engine: Engine) -> None:
    record_a_busy_history(engine)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT count(*) FROM symbol_versions")).scalar_one()
    assert versions == 3  # ETH once; BTC listed, delisted and relisted: a legitimate gap
    assert findings(engine) == []


def test_exmeta_verify_passes_a_history_polled_from_the_sim(
    engine: Engine, sim: SimServer, database_url: str, tmp_path: Path
) -> None:
    job = exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), "test")
    assert job.run().outcome == "changed"
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    assert job.run().outcome == "changed"
    assert job.run().outcome == "unchanged"
    result = run_verify(database_url, tmp_path)
    assert (result.returncode, result.stdout) == (0, "history verified: no findings\n")


def test_exmeta_verify_cannot_reach_the_database_exits_2_in_one_line(tmp_path: Path) -> None:
    result = run_verify("postgresql+psycopg://nobody@127.0.0.1:1/nothing", tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("exmeta: error: cannot reach the database at")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def forgeable_url(pg_server: DatabaseServer) -> str:
    """A database of its own whose overlap constraint is dropped, as a careless DBA might."""
    url = pg_server.create_database("exmeta_forged")
    engine = create_db_engine(url, DatabaseSettings(), application_name="exmeta-tests")
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text("ALTER TABLE symbol_versions DROP CONSTRAINT ex_symbol_versions_no_overlap")
        )
    engine.dispose()
    return url


@pytest.fixture
def forgeable(forgeable_url: str) -> Iterator[Engine]:
    engine = create_db_engine(forgeable_url, DatabaseSettings(), application_name="exmeta-tests")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    record_a_busy_history(engine)
    assert findings(engine) == []
    yield engine
    engine.dispose()


def forge(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        assert conn.execute(text(sql)).rowcount == 1


def test_a_forged_overlap_is_reported_with_its_rows(forgeable: Engine) -> None:
    # BTCUSDT's first listing made to run on past its relisting.
    forge(
        forgeable,
        "UPDATE symbol_versions SET valid_to = '2024-01-07T00:00:00Z'"
        " WHERE symbol = 'BTCUSDT' AND valid_from = '2024-01-01T00:00:00Z'",
    )
    overlaps = [f for f in findings(forgeable) if f.check == "overlap"]
    assert overlaps == [
        Finding(
            "overlap",
            "symbol_versions",
            "symbol=BTCUSDT",
            "[2024-01-01T00:00:00Z, 2024-01-07T00:00:00Z) opened by observation 1"
            " closed by observation 5 overlaps [2024-01-06T00:00:00Z, ∞)"
            " opened by observation 6",
        )
    ]


def test_a_forged_gap_is_reported_and_exmeta_verify_exits_1(
    forgeable: Engine, forgeable_url: str, tmp_path: Path
) -> None:
    # BTCUSDT's first price filter was closed by a change (observation 2), not a delisting.
    forge(
        forgeable,
        "UPDATE symbol_filter_versions SET valid_to = valid_to - interval '1 hour'"
        " WHERE symbol = 'BTCUSDT' AND filter_type = 'PRICE_FILTER'"
        " AND valid_from = '2024-01-01T00:00:00Z'",
    )
    result = run_verify(forgeable_url, tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "history verified: 2 finding(s)"
    assert lines[1:] == [
        "  gap: symbol_filter_versions symbol=BTCUSDT filter_type=PRICE_FILTER: [2024-01-01T00:00:00Z, 2024-01-01T23:00:00Z)"
        " opened by observation 1 closed by observation 2 leaves a gap before"
        " [2024-01-02T00:00:00Z, 2024-01-05T00:00:00Z) opened by observation 2"
        " closed by observation 5 although the key was present when it closed",
        "  unbacked version: symbol_filter_versions symbol=BTCUSDT filter_type=PRICE_FILTER:"
        " [2024-01-01T00:00:00Z,"
        " 2024-01-01T23:00:00Z) opened by observation 1 closed by observation 2:"
        " valid_to is not its closing observation's time 2024-01-02T00:00:00Z",
    ]


def test_a_forged_unchanged_neighbour_is_reported(forgeable: Engine) -> None:
    # BTCUSDT's second price filter (tick size 0.1) made a copy of the first.
    forge(
        forgeable,
        "UPDATE symbol_filter_versions AS v SET content_hash = f.content_hash, raw = f.raw"
        " FROM symbol_filter_versions f WHERE (f.symbol, f.filter_type, v.symbol, v.filter_type)"
        " = ('BTCUSDT', 'PRICE_FILTER', 'BTCUSDT', 'PRICE_FILTER')"
        " AND f.valid_from = '2024-01-01T00:00:00Z' AND v.valid_from = '2024-01-02T00:00:00Z'",
    )
    assert findings(forgeable) == [
        Finding(
            "unchanged neighbour",
            "symbol_filter_versions",
            "symbol=BTCUSDT filter_type=PRICE_FILTER",
            "[2024-01-01T00:00:00Z, 2024-01-02T00:00:00Z) opened by observation 1"
            " closed by observation 2 has the same content as the next version",
        )
    ]


def test_a_version_opened_by_an_unchanged_observation_is_reported(forgeable: Engine) -> None:
    forge(forgeable, "UPDATE observations SET outcome = 'unchanged' WHERE id = 5")
    reported = {(f.check, f.table, f.key) for f in findings(forgeable)}
    assert reported == {
        ("unbacked version", "symbol_versions", "symbol=BTCUSDT"),  # closed by 5
        ("unbacked version", "symbol_filter_versions", "symbol=BTCUSDT filter_type=NOTIONAL"),
        ("unbacked version", "symbol_filter_versions", "symbol=BTCUSDT filter_type=LOT_SIZE"),
        ("unbacked version", "symbol_filter_versions", "symbol=BTCUSDT filter_type=PRICE_FILTER"),
        (
            "unbacked version",
            "symbol_filter_versions",
            "symbol=BTCUSDT filter_type=MARKET_LOT_SIZE",
        ),
    }


def test_observations_applied_out_of_time_order_are_reported(forgeable: Engine) -> None:
    forge(
        forgeable,
        "UPDATE observations SET observed_at = '2023-12-31T00:00:00Z' WHERE id = 4",
    )
    out_of_order = [f for f in findings(forgeable) if f.check == "observations out of order"]
    assert out_of_order == [
        Finding(
            "observations out of order",
            "observations",
            "stream=exchange_info",
            "observation 4 at 2023-12-31T00:00:00Z was applied after observation 2"
            " at 2024-01-02T00:00:00Z",
        )
    ]


def test_exmeta_verify_on_an_unmigrated_database_exits_2(
    pg_server: DatabaseServer, tmp_path: Path
) -> None:
    result = run_verify(pg_server.create_database("exmeta_empty"), tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("exmeta: error: cannot read the database: relation")
    assert len(result.stderr.strip().splitlines()) == 1


def test_versions_left_open_across_a_source_switch_are_reported(forgeable: Engine) -> None:
    # A switch that closed nothing: the old source's versions run on into the new history.
    forge(
        forgeable,
        "INSERT INTO observations (stream, replica_id, observed_at, requested_at, duration_ms,"
        " outcome, source) VALUES ('exchange_info', 'forger', '2024-01-07T00:00:00Z',"
        " '2024-01-07T00:00:00Z', 0, 'switched', 'http://elsewhere:80')",
    )
    found = findings(forgeable)
    assert {f.check for f in found} == {"open across a source switch"}
    assert {f.key for f in found if f.table == "symbol_versions"} == {
        "symbol=BTCUSDT",
        "symbol=ETHUSDT",
    }
    assert {f.table for f in found} == {
        "symbol_versions",
        "symbol_filter_versions",
        "rate_limit_versions",
        "schema_versions",  # the stream's shape belongs to its history too
    }


def test_a_folded_run_spanning_other_polls_is_reported(forgeable: Engine) -> None:
    forge(
        forgeable,
        "INSERT INTO observation_runs (stream, first_at, last_at, polls, first_id, id_steps,"
        " gaps_us, replica_id) VALUES ('exchange_info', '2020-01-01Z', '2030-01-01Z', 2,"
        " 1000, '{1}', '{1}', 'forged')",
    )
    with forgeable.connect() as conn:
        spanned = conn.execute(
            text(
                "SELECT id FROM observations WHERE stream = 'exchange_info'"
                " AND outcome IN ('changed', 'unchanged', 'switched') ORDER BY observed_at"
            )
        ).scalars()
        expected = [f"observation {i}" for i in spanned]

    found = [f for f in findings(forgeable) if f.check == "run not alone in its span"]

    assert expected
    assert [f.rows.rsplit(" spans ", 1)[1] for f in found] == expected
    assert {(f.table, f.key) for f in found} == {("observation_runs", "stream=exchange_info")}
