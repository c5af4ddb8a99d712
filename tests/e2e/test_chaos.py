"""Ten minutes of a bad day at Binance, compressed into a minute.

The poller runs as ``exmeta poll`` builds it (intervals and timeouts scaled down ~50x)
against the sim while the exchange changes at random and 20% of the responses fail in
every way the sim knows. Afterwards: nothing crashed, Binance never had to ban us, no
version came from a failed response, and once the faults stop the database holds exactly
what the exchange serves.
"""

import logging
import random
import threading
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from binance_sim.state import Chaos, Fault, FaultKind, SimState
from core.config import replace_section
from core.models import VERSIONED_TABLES
from poller.parse import parse_exchange_info
from poller.runner import build_poller
from tests.builders import poller_settings

RUN_SECONDS = 50
INTERVAL = 0.2
SEED = 20261124
FAULTS = (
    *(Fault(FaultKind.STATUS, "*", status=s) for s in (500, 502, 503, 504)),
    Fault(FaultKind.SLOW, delay_seconds=0.5),
    Fault(FaultKind.TRUNCATED),
    Fault(FaultKind.RESET),
    Fault(FaultKind.INVALID_JSON),
    Fault(FaultKind.GEO_BLOCK, status=200),
    Fault(FaultKind.ERROR_BODY),
    Fault(FaultKind.RATE_LIMIT, retry_after=1),
)


def change_the_exchange(sim: SimServer, stop: threading.Event, rng: random.Random) -> int:
    """Flip statuses, change filters, delist and relist, every ~0.5 s until stopped."""
    state = sim.state
    delisted: list[dict[str, Any]] = []
    changes = 0
    while not stop.wait(rng.uniform(0.2, 0.8)):
        names = symbol_names(state)
        name = rng.choice(names)
        action = rng.choice(("status", "tick", "lot", "delist", "relist"))
        if action == "status":
            state.patch_symbol(name, fields={"status": rng.choice(("TRADING", "HALT", "BREAK"))})
        elif action in ("tick", "lot"):
            current = {f["filterType"]: f for f in state.get_symbol(name)["filters"]}
            kind, field = (
                ("PRICE_FILTER", "tickSize") if action == "tick" else ("LOT_SIZE", "minQty")
            )
            new = {**current[kind], field: rng.choice(("0.00100000", "0.01000000", "0.10000000"))}
            state.patch_symbol(name, filters=[new])
        elif action == "delist" and len(names) > 6:
            delisted.append(state.get_symbol(name))
            state.remove_symbol(name)
        elif action == "relist" and delisted:
            state.put_symbol(delisted.pop())
        else:
            continue
        changes += 1
    return changes


def symbol_names(state: SimState) -> list[str]:
    return [s["symbol"] for s in orjson.loads(state.exchange_info_body())["symbols"]]


def successes_since(engine: Engine, after_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM observations WHERE id > :id"
                    " AND outcome IN ('changed', 'unchanged')"
                ),
                {"id": after_id},
            ).scalar_one()
        )


def current_hashes(engine: Engine, tables: list[str]) -> dict[str, dict[tuple[object, ...], bytes]]:
    result = {}
    with engine.connect() as conn:
        for table in tables:
            keys = ", ".join(VERSIONED_TABLES[table].__key__)
            rows = conn.execute(
                text(f"SELECT {keys}, content_hash FROM {table} WHERE valid_to IS NULL")
            )
            result[table] = {tuple(r[:-1]): bytes(r[-1]) for r in rows}
    return result


def test_a_compressed_bad_day_at_binance(
    engine: Engine, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = replace_section(
        poller_settings(
            sim.url,
            connect_timeout_seconds=0.5,
            timeout_seconds=0.4,
            max_attempts=3,
            backoff_base_seconds=0.05,
            backoff_cap_seconds=0.4,
        ),
        "poller",
        exchange_info_interval=INTERVAL,
        # 5 polls a second at weight 20 is the whole of 6000 a minute; the default quarter
        # would (rightly) hold the poller back for most of each minute.
        weight_budget=1.0,
    )
    poller = build_poller(settings, engine, "chaos")
    sim.state.set_chaos(Chaos(rate=0.2, seed=SEED, faults=FAULTS))
    stop_changes = threading.Event()
    changes: list[int] = []
    changer = threading.Thread(
        target=lambda: changes.append(change_the_exchange(sim, stop_changes, random.Random(SEED))),
        daemon=True,
    )

    poller.start()
    changer.start()
    time.sleep(RUN_SECONDS)
    stop_changes.set()
    changer.join()
    sim.state.set_chaos(None)
    with engine.connect() as conn:
        marker = conn.execute(text("SELECT coalesce(max(id), 0) FROM observations")).scalar_one()
    deadline = time.monotonic() + 15  # a last rate-limit pause, then two clean polls
    while successes_since(engine, marker) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert poller.shutdown(grace_seconds=5)

    log = sim.state.requests()
    statuses = [r.status for r in log]
    faulted = [r.fault for r in log if r.fault is not None]
    assert 418 not in statuses
    assert len(log) > RUN_SECONDS * 2  # it really polled...
    assert len(faulted) > len(log) * 0.1  # ...through the faults...
    assert {FaultKind.RESET, FaultKind.TRUNCATED, FaultKind.SLOW} <= set(faulted)
    assert FaultKind.RATE_LIMIT in faulted  # ...including 429s, and it waited them out
    assert changes[0] > RUN_SECONDS  # ...while the exchange changed under it
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with engine.connect() as conn:
        outcomes = dict(
            conn.execute(text("SELECT outcome, count(*) FROM observations GROUP BY 1")).all()
        )
        assert outcomes["error"] > 0
        assert outcomes["changed"] > RUN_SECONDS / 2
        for table in VERSIONED_TABLES:
            from_failures = conn.execute(
                text(
                    f"SELECT count(*) FROM {table} v JOIN observations o"
                    " ON o.id = v.opened_by OR o.id = v.closed_by WHERE o.outcome <> 'changed'"
                )
            ).scalar_one()
            assert from_failures == 0, table
    assert successes_since(engine, marker) >= 2
    served = parse_exchange_info(sim.state.exchange_info_body())
    assert current_hashes(engine, [kind.table for kind in served]) == {
        kind.table: {key: e.content_hash for key, e in kind.every_entity().items()}
        for kind in served
    }
