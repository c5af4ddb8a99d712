"""An incident's worth of changes, made in the sim and polled by the real jobs, read back.

Every stream is polled by the StreamJobs ``exmeta poll`` runs, against the sim over HTTP,
after each scripted step; the change feed must then list exactly the scripted changes,
each once, in the order they were made, with their old and new values, and paging with
a small ``limit`` must give the same list.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from binance_sim.server import SimServer
from core.ingest import Recorded, StreamWriter
from core.timeparse import format_instant
from exmeta.cli import main
from poller.job import StreamJob
from tests.api_client import AUTH, ok
from tests.builders import client_for, exchange_info_job, symbol
from tests.reader_role import view_rows
from tests.scripts import MAINTENANCE, NORMAL, listed_object
from tests.signed_sim import API_TOKEN, control, jobs_by_stream, register_key, sim_settings

DELIST_AT = 1767225600000  # 2026-01-01T00:00Z
# A change as the feed reports it, without its instant: (stream, entity, key, field, old, new).
Expected = tuple[str, str, str, str, Any, Any]


def sim_symbol(sim: SimServer, name: str) -> dict[str, Any]:
    response = requests.get(f"{sim.url}/_sim/symbols/{name}", timeout=5)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def price_filter(sym: dict[str, Any]) -> dict[str, Any]:
    [found] = [f for f in sym["filters"] if f["filterType"] == "PRICE_FILTER"]
    return dict(found)


def tick_size_change(sim: SimServer) -> list[Expected]:
    before = price_filter(sim_symbol(sim, "BTCUSDT"))
    control(sim, "PATCH", "/symbols/BTCUSDT", {"filters": [{**before, "tickSize": "0.10000000"}]})
    field = "filters.PRICE_FILTER.tickSize"
    return [("exchange_info", "symbol", "BTCUSDT", field, before["tickSize"], "0.10000000")]


def status_flip(sim: SimServer) -> list[Expected]:
    before = sim_symbol(sim, "ETHBTC")["status"]
    control(sim, "PATCH", "/symbols/ETHBTC", {"fields": {"status": "BREAK"}})
    return [("exchange_info", "symbol", "ETHBTC", "status", before, "BREAK")]


def new_listing(sim: SimServer) -> list[Expected]:
    listed = symbol("NEWUSDT")
    control(sim, "PUT", "/symbols/NEWUSDT", listed)
    return [("exchange_info", "symbol", "NEWUSDT", "listed", None, listed_object(listed))]


def delisting(sim: SimServer) -> list[Expected]:
    before = sim_symbol(sim, "XRPUSDT")
    control(sim, "DELETE", "/symbols/XRPUSDT", None)
    return [("exchange_info", "symbol", "XRPUSDT", "listed", listed_object(before), None)]


def rate_limit_change(sim: SimServer) -> list[Expected]:
    document = requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=5).json()
    changed = copy.deepcopy(document)
    [weight] = [r for r in changed["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    before = weight["limit"]
    weight["limit"] = before - 1000
    control(sim, "PUT", "/exchange-info", changed)
    key = f"REQUEST_WEIGHT:{weight['interval']}:{weight['intervalNum']}"
    return [("exchange_info", "rate_limit", key, "limit", before, before - 1000)]


def commission_change(sim: SimServer) -> list[Expected]:
    # What the sim serves until told otherwise: its packaged answer.
    answer = orjson.loads(
        (resources.files("binance_sim") / "data" / "account_commission.json").read_bytes()
    )
    before = answer["standardCommission"]["taker"]
    answer["standardCommission"]["taker"] = "0.00100000"
    control(sim, "PUT", "/commission/BTCUSDT", answer)
    field = "standardCommission.taker"
    return [("account_commission", "commission", "BTCUSDT", field, before, "0.00100000")]


def maintenance_starts(sim: SimServer) -> list[Expected]:
    control(sim, "PUT", "/system-status", MAINTENANCE)
    return [
        ("system_status", "system_status", "binance", "msg", NORMAL["msg"], MAINTENANCE["msg"]),
        ("system_status", "system_status", "binance", "status", 0, 1),
    ]


def maintenance_ends(sim: SimServer) -> list[Expected]:
    control(sim, "PUT", "/system-status", NORMAL)
    return [
        ("system_status", "system_status", "binance", "msg", MAINTENANCE["msg"], NORMAL["msg"]),
        ("system_status", "system_status", "binance", "status", 1, 0),
    ]


def account_loses_can_trade(sim: SimServer) -> list[Expected]:
    control(sim, "PATCH", "/account", {"fields": {"canTrade": False}})
    return [("account", "account", "spot", "canTrade", True, False)]


def delisting_announced(sim: SimServer) -> list[Expected]:
    schedule = [{"delistTime": DELIST_AT, "symbols": ["BNBBTC"]}]
    control(sim, "PUT", "/delist-schedule", {"schedule": schedule})
    announced = {"symbol": "BNBBTC", "delistTime": DELIST_AT}
    return [("delistings", "delisting", "BNBBTC", "listed", None, announced)]


def withdrawal_suspended(sim: SimServer) -> list[Expected]:
    message = "USDT withdrawals on TRX are suspended for wallet maintenance."
    control(sim, "PATCH", "/capital-config/USDT/TRX", {"withdraw": False, "withdraw_desc": message})
    return [
        ("wallet_networks", "wallet_network", "USDT:TRX", "withdrawDesc", "", message),
        ("wallet_networks", "wallet_network", "USDT:TRX", "withdrawEnable", True, False),
    ]


def balance_moves(sim: SimServer) -> list[Expected]:
    """A fill: balances are not in the feed, so nothing is expected."""
    control(sim, "PATCH", "/account", {"balances": {"BTC": {"free": "0.5", "locked": "0"}}})
    return []


# Each step and the stream whose next poll sees it.
STEPS: list[tuple[str, Callable[[SimServer], list[Expected]]]] = [
    ("exchange_info", tick_size_change),
    ("exchange_info", status_flip),
    ("system_status", maintenance_starts),
    ("exchange_info", new_listing),
    ("account", balance_moves),
    ("account", account_loses_can_trade),
    ("system_status", maintenance_ends),
    ("delistings", delisting_announced),
    ("wallet_networks", withdrawal_suspended),
    ("exchange_info", delisting),
    ("exchange_info", rate_limit_change),
    ("account_commission", commission_change),
]


@pytest.fixture
def jobs(engine: Engine, sim: SimServer) -> dict[str, StreamJob]:
    """Every stream's job, as ``exmeta poll`` builds them for a key and one commission symbol."""
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=("BTCUSDT",))
    info = exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), "test")
    return {"exchange_info": info, **jobs_by_stream(settings, engine)}


def poll(job: StreamJob) -> Recorded:
    # exchangeInfo is dated by the sim's serverTime (whole ms), the others by the
    # database clock: a pause keeps one step's instant after the previous step's.
    time.sleep(0.02)
    recorded = job.run()
    assert recorded.outcome in ("changed", "unchanged"), recorded
    return recorded


def feed_pages(client: FlaskClient, window: dict[str, str], limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {**window, "limit": limit}
    while True:
        response = client.get(f"/v1/changes?{urlencode(params)}", headers=AUTH)
        body = ok(response, schemas.ChangeFeed)
        assert len(body["changes"]) <= limit
        found.extend(body["changes"])
        if body["next"] is None:
            return found
        params["next"] = body["next"]


def cli_changes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str,
    *args: str,
) -> list[dict[str, Any]]:
    """``exmeta changes --json`` as an operator whose configuration has ``token`` (or none)."""
    monkeypatch.setenv("EXMETA_API__TOKEN", token)
    assert main(["changes", *args, "--json"]) == 0
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_scripted_incident_comes_back_from_the_feed_complete_in_order_once_each(
    engine: Engine,
    sim: SimServer,
    jobs: dict[str, StreamJob],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = [poll(job) for job in jobs.values()]
    start = max(r.observed_at for r in baseline) + timedelta(milliseconds=1)
    expected: list[tuple[Any, ...]] = []
    for stream, step in STEPS:
        made = step(sim)
        recorded = poll(jobs[stream])
        # A fill changes the account stream (its balances), yet the feed leaves it out.
        assert recorded.outcome == "changed", step.__name__
        expected.extend((format_instant(recorded.observed_at), *m) for m in made)
    assert [poll(job).outcome for job in jobs.values()] == ["unchanged"] * len(jobs)

    app = create_app(
        sim_settings(sim), engine, clock=lambda: datetime.now(UTC), streams=("exchange_info",)
    )
    client = app.test_client()
    window = {"from": format_instant(start) or "", "to": format_instant(datetime.now(UTC)) or ""}
    whole = feed_pages(client, window, 1000)
    assert [
        (c["changed_at"], c["stream"], c["entity"], c["key"], c["field"], c["old"], c["new"])
        for c in whole
    ] == expected
    assert len(whole) == 14
    for limit in (1, 2, 5):
        assert feed_pages(client, window, limit) == whole
    in_view = [r for r in view_rows(engine) if r["changed_at"] >= window["from"]]
    assert in_view == whole
    anonymous = ok(client.get(f"/v1/changes?{urlencode(window)}"), schemas.ChangeFeed)
    assert anonymous["changes"] == [
        c for c in whole if c["stream"] not in ("account", "account_commission")
    ]

    # The CLI answers what the API answers: all of it with the token configured, the
    # public streams without, one stream when asked.
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    span = ("--from", window["from"], "--to", window["to"])
    assert cli_changes(monkeypatch, capsys, API_TOKEN, *span) == whole
    assert cli_changes(monkeypatch, capsys, "", *span) == anonymous["changes"]
    commissions = cli_changes(
        monkeypatch, capsys, API_TOKEN, *span, "--stream", "account_commission"
    )
    assert commissions == [c for c in whole if c["stream"] == "account_commission"] != []
    monkeypatch.setenv("EXMETA_API__TOKEN", "")
    assert main(["changes", *span, "--stream", "account"]) == 2
    assert "needs [api] token" in capsys.readouterr().err
