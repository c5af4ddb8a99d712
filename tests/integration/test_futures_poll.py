"""USD-M and COIN-M polled over real HTTP, each on its own base URL and weight budget, and
the real USD-M snapshots replayed through the sim and the poller into their versions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api import create_app, schemas
from binance_sim.server import SimServer
from binance_sim.state import Market, SimState, default_fixture
from core.config import Settings, base_url, replace_section
from core.ingest import StreamWriter
from core.streams import stream
from poller.job import stream_job
from poller.retry import SharedBudget
from poller.runner import build_poller
from tests.api_client import ok, ts
from tests.builders import client_for, poller_settings
from tests.futures_replay import (
    USDM_FILES,
    count_versions,
    replay,
    status_history,
    versions_opened,
)
from tests.margin_sim import MARGIN_STREAMS


def current(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT symbol FROM {table} WHERE valid_to IS NULL"))
        return {r.symbol for r in rows}


def budget_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT market, used_weight FROM request_budget"))
        return {r.market: r.used_weight for r in rows}


@pytest.fixture
def two_sims() -> Iterator[tuple[SimServer, SimServer]]:
    """Spot and COIN-M on one sim, USD-M (the 2021 capture) on another: a job that used the
    wrong base URL would read the other sim's contracts."""
    usdm_2021 = orjson.loads(USDM_FILES[0].read_bytes())
    with SimServer() as main, SimServer(SimState.from_file(usdm_path=USDM_FILES[0])) as usdm:
        assert len(usdm_2021["symbols"]) == 133
        yield main, usdm


def test_a_replica_polls_each_market_on_its_own_base_url_and_weight_budget(
    engine: Engine, two_sims: tuple[SimServer, SimServer]
) -> None:
    main, usdm = two_sims
    settings = replace_section(poller_settings(main.url), "binance", usdm_base_url=usdm.url)
    assert base_url(settings, "usdm_exchange_info") == usdm.url
    poller = build_poller(settings, engine, "r0")
    jobs = {s.job.stream: s for s in poller.jobs}
    assert set(jobs) == {
        "exchange_info",
        "system_status",
        "usdm_exchange_info",
        "coinm_exchange_info",
    }
    assert jobs["usdm_exchange_info"].interval == settings.poller.usdm_exchange_info_interval == 10
    for _ in range(2):  # the second poll's budget check reports the first's used weight
        for scheduled in poller.jobs:
            assert scheduled.job.run().outcome in ("changed", "unchanged")

    usdm_doc = orjson.loads(USDM_FILES[0].read_bytes())
    coinm_doc = orjson.loads(default_fixture(Market.COINM))
    assert current(engine, "usdm_symbol_versions") == {s["symbol"] for s in usdm_doc["symbols"]}
    assert current(engine, "coinm_symbol_versions") == {s["symbol"] for s in coinm_doc["symbols"]}
    with engine.connect() as conn:
        coinm_status = dict(
            conn.execute(
                text("SELECT symbol, status FROM coinm_symbol_versions WHERE valid_to IS NULL")
            ).all()
        )
    assert coinm_status == {s["symbol"]: s["contractStatus"] for s in coinm_doc["symbols"]}
    # Each API's used weight in its own row: one futures call is weight 1, spot's 20 + 1.
    rows = budget_rows(engine)
    assert (rows["usdm"], rows["coinm"]) == (1, 1)
    assert rows["spot"] >= 21
    # Each budget is sized on its own market's REQUEST_WEIGHT limit, as versioned.
    limits = {name: s.job.client.budget.limit for name, s in jobs.items()}
    assert (limits["usdm_exchange_info"], limits["exchange_info"]) == (2400, 6000)
    assert limits["system_status"] == limits["exchange_info"]

    # /readyz and /metrics know the new streams from the catalogue alone.
    app = create_app(settings, engine, streams=settings.enabled_streams())
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json is not None
    assert {"usdm_exchange_info", "coinm_exchange_info"} <= ready.json["last_successes"].keys()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    for stream_name in ("usdm_exchange_info", "coinm_exchange_info"):
        labels = (("outcome", "changed"), ("stream", stream_name))
        assert samples[("exmeta_polls_total", labels)] == 1
    versions = ("exmeta_versions_written_total", (("table", "usdm_symbol_versions"),))
    assert samples[versions] == len(usdm_doc["symbols"])
    # Each market's weight plan on its own limit: USD-M's 2,400/min, 1 weight every 10 s.
    usdm_market = (("market", "usdm"),)
    fraction = settings.poller.weight_budget
    assert samples[("exmeta_weight_budget_per_minute", usdm_market)] == fraction * 2400
    assert samples[("exmeta_weight_needed_per_minute", usdm_market)] == 6
    assert samples[("exmeta_weight_budget_per_minute", (("market", "spot"),))] == fraction * 6000


def test_a_futures_429_pauses_its_own_market_and_not_spot(engine: Engine, sim: SimServer) -> None:
    clients = {
        name: client_for(
            sim.url, shared=SharedBudget(engine, "r0", market=stream(name).market), stream=name
        )
        for name in ("exchange_info", "usdm_exchange_info")
    }
    jobs = {
        name: stream_job(stream(name), client, StreamWriter(engine, name), "r0")
        for name, client in clients.items()
    }
    fault = {"kind": "rate_limit", "retry_after": 30}
    response = requests.post(f"{sim.url}/_sim/markets/usdm/faults", json=fault, timeout=5)
    assert response.status_code in (200, 201), response.text
    assert jobs["usdm_exchange_info"].run().outcome == "error"
    assert jobs["usdm_exchange_info"].run().outcome == "error"  # paused: nothing sent
    assert jobs["exchange_info"].run().outcome == "changed"
    assert jobs["exchange_info"].run().outcome == "unchanged"  # reports spot's used weight
    with engine.connect() as conn:
        paused = dict(
            conn.execute(
                text("SELECT market, paused_until > clock_timestamp() FROM request_budget")
            ).all()
        )
    assert paused == {"usdm": True, "spot": False}


# -- the replay of the real USD-M snapshots -------------------------------------------------


def test_replaying_the_real_usdm_snapshots_opens_one_version_per_true_difference(
    engine: Engine, sim: SimServer
) -> None:
    assert [p.name[:10] for p in USDM_FILES] == [
        "2021-09-06",
        "2024-10-19",
        "2024-10-20",
        "2025-10-30",
    ]
    docs, _ = replay(engine, sim)
    assert count_versions(engine) == versions_opened(docs)
    # The 2024-10-19 -> 10-20 pair differs in serverTime alone: it adds nothing.
    assert versions_opened(docs[:3]) == versions_opened(docs[:2])
    assert sum(versions_opened(docs[:2]).values()) > sum(versions_opened(docs[:1]).values())


def test_settling_and_pending_contracts_read_back_with_their_lifecycle(
    engine: Engine, sim: SimServer
) -> None:
    docs, polled = replay(engine, sim)
    expected: dict[str, list[str]] = {}
    for doc in docs:
        for s in doc["symbols"]:
            seen = expected.setdefault(s["symbol"], [])
            if not seen or seen[-1] != s["status"]:
                seen.append(s["status"])
    history = status_history(engine)
    assert history == expected
    assert history["ALPHAUSDT"] == ["TRADING", "SETTLING"]  # delisted by 2025-10
    assert history["BTCSTUSDT"] == ["PENDING_TRADING"]  # never opened, in every file
    assert sum(1 for h in history.values() if h[-1] == "SETTLING") == 52

    # As of an instant between two polls (after the first ended, before the second file was
    # served), the contracts are the earlier file's.
    between = polled[0]
    with engine.connect() as conn:
        listed = conn.execute(
            text(
                "SELECT symbol FROM usdm_symbol_versions"
                " WHERE valid_from <= :t AND (valid_to IS NULL OR valid_to > :t)"
            ),
            {"t": between},
        ).scalars()
        assert set(listed) == {s["symbol"] for s in docs[0]["symbols"]}


def test_the_spot_feed_and_diff_do_not_list_futures_contracts(
    engine: Engine, api_engine: Engine, two_sims: tuple[SimServer, SimServer]
) -> None:
    """The default market's feed and diff (spot's) list no futures contract nor their
    shapes: a USD-M contract named like a spot symbol would otherwise pass for it."""
    main, usdm = two_sims
    started = datetime.now(UTC)
    settings = replace_section(poller_settings(main.url), "binance", usdm_base_url=usdm.url)
    jobs = [scheduled.job for scheduled in build_poller(settings, engine, "r0").jobs]
    for job in jobs:
        job.run()
    listed = datetime.now(UTC)
    flipped = requests.patch(
        f"{main.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    )
    assert flipped.status_code == 200, flipped.text
    # 2025: ALPHAUSDT settling, settlePlan gone, POSITION_RISK_CONTROL come (shape changes).
    replaced = requests.put(
        f"{usdm.url}/_sim/markets/usdm/exchange-info", data=USDM_FILES[-1].read_bytes(), timeout=30
    )
    assert replaced.status_code == 200, replaced.text
    for job in jobs:
        job.run()
    assert status_history(engine)["ALPHAUSDT"] == ["TRADING", "SETTLING"]  # recorded

    client = create_app(Settings(), api_engine).test_client()
    feed = ok(client.get(f"/v1/changes?from={ts(listed)}"), schemas.ChangeFeed)
    assert [(c["stream"], c["key"], c["field"], c["new"]) for c in feed["changes"]] == [
        ("exchange_info", "ETHBTC", "status", "HALT")
    ]
    diff = ok(client.get(f"/v1/diff?from={ts(listed)}"), schemas.StateDiff)
    assert [c["key"] for c in diff["symbols"]["changed"]] == ["ETHBTC"]
    assert diff["symbols"]["added"] == diff["symbols"]["removed"] == []
    assert diff["schema"] == {"added": [], "removed": [], "changed": []}

    # From before the first polls, shapes included: spot's streams only, as before.
    feed = ok(client.get(f"/v1/changes?from={ts(started)}&schema=true"), schemas.ChangeFeed)
    assert feed["streams"] == [
        "exchange_info",
        "system_status",
        "delistings",
        "wallet_networks",
        *MARGIN_STREAMS,
    ]
    assert {c["stream"] for c in feed["changes"]} == {"exchange_info", "system_status"}
    with engine.connect() as conn:  # the futures shapes are recorded all the same
        closed = conn.execute(
            text(
                "SELECT path FROM schema_versions"
                " WHERE stream = 'usdm_exchange_info' AND valid_to IS NOT NULL"
            )
        ).scalars()
        assert "symbols[].settlePlan" in set(closed)
