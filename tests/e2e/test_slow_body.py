"""A trickled exchangeInfo body delays no other stream (issue 18, point 2).

An `exmeta poll` process polls exchangeInfo every 2 s, the system status every 0.5 s and
the (signed) account every second against the sim, which then trickles a 4 MB exchangeInfo
body 400 bytes every half second: every read returns well within any read timeout, yet the
whole body would take hours. Each exchangeInfo poll must end at its 1.8 s deadline (0.9 of
its interval) as an error observation, while the other streams keep their cadence.
"""

from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from binance_sim.state import ACCOUNT_PATH, EXCHANGE_INFO_PATH, SYSTEM_STATUS_PATH, SimState
from tests.builders import enlarged
from tests.conftest import FIXTURES
from tests.e2e.processes import Replicas, exmeta_env, scalar, wait_for
from tests.signed_sim import API_KEY, API_SECRET, control, register_key

EXCHANGE_INFO_INTERVAL = 2.0
SYSTEM_STATUS_INTERVAL = 0.5
ACCOUNT_INTERVAL = 1.0
TRICKLE_SECONDS = 9.0
BODY_BYTES = 4_000_000


@pytest.fixture
def big_sim() -> Iterator[SimServer]:
    document = orjson.loads((FIXTURES / "2022-11-28_2124.json").read_bytes())
    for limit in document["rateLimits"]:
        if limit["rateLimitType"] == "REQUEST_WEIGHT":
            limit["limit"] = 6000  # today's: the weight budget must not be what holds polls up
    with SimServer(SimState(enlarged(document, BODY_BYTES))) as sim:
        register_key(sim)
        yield sim


def test_a_trickled_body_ends_at_its_deadline_while_the_other_streams_keep_their_slots(
    engine: Engine,
    database_url: str,
    big_sim: SimServer,
    tmp_path: Path,
    report_figure: Callable[[str], None],
) -> None:
    sim = big_sim
    env = exmeta_env(
        database_url,
        sim.url,
        EXCHANGE_INFO_INTERVAL,
        POLLER__SYSTEM_STATUS_INTERVAL=str(SYSTEM_STATUS_INTERVAL),
        POLLER__ACCOUNT_INTERVAL=str(ACCOUNT_INTERVAL),
        BINANCE__API_KEY=API_KEY,
        BINANCE__API_SECRET=API_SECRET,
        POLLER__WEIGHT_BUDGET="1",
    )
    with Replicas(tmp_path) as replicas:
        replicas.start("r0", env)
        assert wait_for(
            lambda: (
                scalar(
                    engine,
                    "SELECT count(DISTINCT stream) FROM observations WHERE outcome = 'changed'"
                    " AND stream IN ('exchange_info', 'system_status', 'account')",
                )
                == 3
            ),
            30,
        ), replicas.log("r0")
        last = scalar(engine, "SELECT max(id) FROM observations")
        control(
            sim,
            "POST",
            "/faults",
            {"kind": "trickle", "chunk_bytes": 400, "delay_seconds": 0.5, "count": 100},
        )
        trickle_from = sim.state.now()
        assert not wait_for(lambda: replicas.alive() != ["r0"], TRICKLE_SECONDS)
        trickle_to = sim.state.now()
        assert replicas.stop() == {"r0": 0}

    def arrivals(path: str) -> list[float]:
        times = [r.received_at for r in sim.state.requests() if r.path == path]
        return [trickle_from, *(t for t in times if trickle_from < t < trickle_to), trickle_to]

    longest = {}
    for path, interval in (
        (SYSTEM_STATUS_PATH, SYSTEM_STATUS_INTERVAL),
        (ACCOUNT_PATH, ACCOUNT_INTERVAL),
    ):
        gaps = [b - a for a, b in pairwise(arrivals(path))]
        assert len(gaps) >= TRICKLE_SECONDS / interval - 1, (path, gaps)
        assert max(gaps) < 2 * interval, (path, gaps)  # no slot waited for exchangeInfo
        longest[path] = max(gaps)

    with engine.connect() as conn:
        polls = conn.execute(
            text(
                "SELECT outcome, http_status, error_class, attempts, duration_ms FROM observations"
                " WHERE stream = 'exchange_info' AND id > :last ORDER BY id"
            ),
            {"last": last},
        ).all()
    assert len(polls) >= TRICKLE_SECONDS / EXCHANGE_INFO_INTERVAL - 1, polls
    for poll in polls:
        assert tuple(poll[:4]) == ("error", 200, "timeout", 1), polls  # body cut, nothing closed
        assert 0.9 * EXCHANGE_INFO_INTERVAL * 1000 <= poll.duration_ms < 2500, polls
    assert len(arrivals(EXCHANGE_INFO_PATH)) - 2 == len(polls)  # one request per poll, no retry
    report_figure(
        f"trickled 4 MB exchangeInfo: polls ended after {min(p.duration_ms for p in polls)}-"
        f"{max(p.duration_ms for p in polls)} ms (deadline 1.8 s); longest gap between"
        f" system-status polls {longest[SYSTEM_STATUS_PATH]:.2f} s (interval 0.5 s),"
        f" account {longest[ACCOUNT_PATH]:.2f} s (interval 1 s)"
    )
