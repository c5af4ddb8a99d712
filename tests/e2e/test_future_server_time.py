"""An `exmeta poll` process through three seconds of a serverTime ten years ahead.

Before serverTime was checked, the first such response was applied as dated, and every
later poll was `stale`: the BREAK that followed was never recorded, and nothing said so.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine

from api import create_app
from binance_sim.server import SimServer
from core.config import Settings
from tests.e2e.processes import Replicas, exmeta_env, run_exmeta, scalar, wait_for

INTERVAL = 0.5
TEN_YEARS_MS = 3653 * 24 * 3600 * 1000
GLITCH_SECONDS = 3.0
SYMBOL = "ETHBTC"


def test_a_poller_records_the_change_after_three_seconds_of_a_future_server_time(
    engine: Engine, api_engine: Engine, database_url: str, sim: SimServer, tmp_path: Path
) -> None:
    env = exmeta_env(database_url, sim.url, INTERVAL)
    with Replicas(tmp_path) as replicas:
        replicas.start("r0", env)
        assert wait_for(
            lambda: bool(
                scalar(engine, "SELECT count(*) FROM observations WHERE outcome = 'changed'")
            ),
            30,
        )
        sim.state.set_clock_offset_ms(TEN_YEARS_MS)
        time.sleep(GLITCH_SECONDS)
        sim.state.set_clock_offset_ms(0)
        sim.state.patch_symbol(SYMBOL, fields={"status": "BREAK"})
        assert wait_for(
            lambda: bool(
                scalar(
                    engine,
                    "SELECT count(*) FROM symbol_versions WHERE symbol = :s AND status = 'BREAK'",
                    s=SYMBOL,
                )
            ),
            15,
        ), replicas.log("r0")
        assert replicas.stop() == {"r0": 0}
        log = replicas.log("r0")

    # Each dated by the database, not ten years ahead: within a minute of its transaction's
    # start (recorded_at), which under CI's load came over a second before the dating once.
    future = "server_time > clock_timestamp() + interval '9 years'"
    rejected = scalar(
        engine, f"SELECT count(*) FROM observations WHERE stream = 'exchange_info' AND {future}"
    )
    assert isinstance(rejected, int)
    assert (
        scalar(
            engine,
            f"SELECT count(*) FROM observations WHERE stream = 'exchange_info' AND {future}"
            " AND abs(extract(epoch FROM observed_at - recorded_at)) < 60"
            " AND outcome IN ('changed', 'unchanged')",
        )
        == rejected
    )
    assert 2 <= rejected <= GLITCH_SECONDS / INTERVAL + 2  # applied, dated by the database
    assert log.count("is ahead of the request's window") == rejected

    metrics = create_app(Settings(), api_engine).test_client().get("/metrics").text
    assert f'exmeta_server_time_rejected_total{{stream="exchange_info"}} {rejected}.0' in metrics

    verify = run_exmeta(env, tmp_path, "verify")
    assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")
