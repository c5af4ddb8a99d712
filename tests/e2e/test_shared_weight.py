"""Three `exmeta poll` replicas spend the weight of one, as the sim counts it (issue 4).

Each run polls every stream that runs unsigned (exchangeInfo, weight 20; the system
status, weight 1) every second for a minute with no faults, while the exchange changes a
symbol's status every ten seconds: first three replicas on one database, then, once they
have stopped, one replica alone on the same database. The sim's weight counter is
cleared when a run is under way and read a minute later. Leases give each slot to one
replica, so the two figures must agree within one poll of each stream, and each change
must be recorded exactly once.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine

from binance_sim.server import SimServer
from binance_sim.state import ENDPOINT_WEIGHTS, EXCHANGE_INFO_PATH, SYSTEM_STATUS_PATH
from tests.e2e.processes import Replicas, exmeta_env, run_exmeta, scalar, wait_for

INTERVAL = 1.0
RUN_SECONDS = 60.0
CHANGE_EVERY_SECONDS = 10.0
SYMBOL = "BTCUSDT"
ONE_POLL = ENDPOINT_WEIGHTS[EXCHANGE_INFO_PATH] + ENDPOINT_WEIGHTS[SYSTEM_STATUS_PATH]


@contextmanager
def polling(names: list[str], env: dict[str, str], cwd: Path) -> Iterator[None]:
    """``exmeta poll`` replicas; stopped with SIGTERM (each must exit 0), killed if stuck."""
    with Replicas(cwd) as replicas:
        for name in names:
            replicas.start(name, env)
        yield
        assert list(replicas.stop().values()) == [0] * len(names)


def weight_of_a_minute(engine: Engine, sim: SimServer, replicas: int) -> int:
    """The sim's weight over RUN_SECONDS once ``replicas`` are polling both streams."""
    assert wait_for(
        lambda: (
            scalar(engine, "SELECT count(*) FROM replicas WHERE stopped_at IS NULL") == replicas
        ),
        20,
    )
    polled_since = scalar(engine, "SELECT clock_timestamp()")
    assert wait_for(
        lambda: (
            scalar(
                engine,
                "SELECT count(DISTINCT stream) FROM observations WHERE outcome IN"
                f" ('changed', 'unchanged') AND observed_at > '{polled_since}'"
                " AND stream IN ('exchange_info', 'system_status')",
            )
            == 2
        ),
        20,
    )
    requests.delete(f"{sim.url}/_sim/weight", timeout=5).raise_for_status()
    started = time.monotonic()
    for change in range(1, int(RUN_SECONDS / CHANGE_EVERY_SECONDS)):
        time.sleep(max(0.0, started + change * CHANGE_EVERY_SECONDS - time.monotonic()))
        status = sim.state.get_symbol(SYMBOL)["status"]
        sim.state.patch_symbol(
            SYMBOL, fields={"status": "BREAK" if status == "TRADING" else "TRADING"}
        )
    time.sleep(max(0.0, started + RUN_SECONDS - time.monotonic()))
    total: int = requests.get(f"{sim.url}/_sim/weight", timeout=5).json()["total"]
    return total


def test_three_replicas_spend_the_weight_of_one_and_record_each_change_once(
    engine: Engine,
    database_url: str,
    sim: SimServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = exmeta_env(database_url, sim.url, INTERVAL, POLLER__SYSTEM_STATUS_INTERVAL=str(INTERVAL))
    changes_per_run = int(RUN_SECONDS / CHANGE_EVERY_SECONDS) - 1

    with polling(["r0", "r1", "r2"], env, tmp_path):
        three = weight_of_a_minute(engine, sim, replicas=3)
    assert scalar(engine, f"SELECT count(*) FROM symbol_versions WHERE symbol = '{SYMBOL}'") == (
        1 + changes_per_run
    )
    with polling(["alone"], env, tmp_path):
        alone = weight_of_a_minute(engine, sim, replicas=1)

    with capsys.disabled():
        print(  # noqa: T201 - the figures must show in CI's plain pytest output
            f"\nweight over {RUN_SECONDS:.0f} s: three replicas {three}, one replica alone"
            f" {alone} (one poll of each stream: {ONE_POLL})"
        )
    assert abs(three - alone) <= ONE_POLL
    assert alone >= RUN_SECONDS / INTERVAL * ONE_POLL * 0.8  # it did poll all along
    assert scalar(engine, f"SELECT count(*) FROM symbol_versions WHERE symbol = '{SYMBOL}'") == (
        1 + 2 * changes_per_run
    )
    assert scalar(engine, "SELECT count(*) FROM symbol_versions") == (
        sim.state.symbol_count + 2 * changes_per_run
    )
    for stream, path in (
        ("exchange_info", EXCHANGE_INFO_PATH),
        ("system_status", SYSTEM_STATUS_PATH),
    ):
        answered = [r for r in sim.state.requests() if r.path == path]
        assert scalar(engine, f"SELECT count(*) FROM observations WHERE stream = '{stream}'") == (
            len(answered)
        ), stream
    verify = run_exmeta(env, tmp_path, "verify")
    assert (verify.returncode, verify.stdout) == (0, "history verified: no findings\n")
