"""The margin streams end to end: poller -> keyed loopback HTTP -> sim -> PostgreSQL -> reads.

A cross pair's buying switched off and on again, a delist time appearing: each one
version, as of between them, the feed, the diff, the history and the SQL twins; isolated
pairs apart; the margin delist schedule as of an instant; the weight of each call in the
shared budget; and the key header sent without a signature.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from api import create_app, schemas
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import Recorded, StreamWriter
from core.streams import stream
from core.timeparse import format_instant
from exmeta.cli import main
from poller.job import StreamJob
from poller.keyed import KeyedStreamJob
from poller.runner import build_poller, retrying_client
from tests.builders import exchange_info_poll
from tests.margin_sim import patch_pair
from tests.reader_role import reader_connection
from tests.signed_sim import (
    API_KEY,
    control,
    jobs_by_stream,
    logged_requests,
    register_key,
    sim_settings,
)
from tests.weight_minutes import start_well_inside_a_minute

TABLES = ("margin_pair_versions", "margin_isolated_pair_versions", "margin_delisting_versions")
DELIST_SECONDS = 1796275095  # 2026-12-03T07:58:15Z, in seconds as allPairs' docs example
MS = timedelta(milliseconds=1)  # the API's instants have milliseconds


def q(at: datetime) -> str:
    return quote(format_instant(at) or "")


def ok(response: TestResponse, model: type[BaseModel]) -> dict[str, Any]:
    assert response.status_code == 200, response.data[:500]
    body = response.json
    assert isinstance(body, dict)
    model.model_validate(body)
    return body


def between(a: Recorded, b: Recorded) -> datetime:
    return a.observed_at + (b.observed_at - a.observed_at) / 2


def opened(recorded: Recorded) -> dict[str, int]:
    """The versions it opened in the margin tables (the document's shape is recorded too)."""
    return {t: n for t, n in recorded.opened.items() if t in TABLES}


def closed(recorded: Recorded) -> dict[str, int]:
    return {t: n for t, n in recorded.closed.items() if t in TABLES}


def one_version_each(*steps: Recorded, table: str) -> None:
    for step in steps:
        assert (step.outcome, opened(step), closed(step)) == ("changed", {table: 1}, {table: 1})


@pytest.fixture
def margin(engine: Engine, sim: SimServer) -> tuple[Settings, dict[str, StreamJob]]:
    register_key(sim)
    settings = sim_settings(sim)
    return settings, jobs_by_stream(settings, engine)


def api_client(engine: Engine, settings: Settings) -> FlaskClient:
    app = create_app(
        settings, engine, clock=lambda: datetime.now(UTC), streams=settings.enabled_streams()
    )
    return app.test_client()


def pair_of(body: dict[str, Any], symbol: str) -> dict[str, Any]:
    [pair] = [p for p in body["pairs"] if p["symbol"] == symbol]
    return pair


def test_buy_switched_off_and_on_and_a_delist_time_are_one_version_each(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    margin: tuple[Settings, dict[str, StreamJob]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, jobs = margin
    job = jobs["margin_pairs"]
    exchange_info_poll(engine, sim.url).run()  # the diff's evidence is spot's exchangeInfo
    first = job.run()
    assert (first.outcome, opened(first)) == ("changed", {"margin_pair_versions": 6})
    assert job.run().outcome == "unchanged"

    patch_pair(sim, "cross", "BNBBTC", {"buy": False})
    off = job.run()
    patch_pair(sim, "cross", "BNBBTC", {"buy": True})
    on = job.run()
    patch_pair(sim, "cross", "ETHBTC", {"delist_time": DELIST_SECONDS})
    delist = job.run()
    one_version_each(off, on, delist, table="margin_pair_versions")
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM margin_pair_versions),"
                " (SELECT count(*) FROM margin_pair_versions WHERE symbol = 'BNBBTC'),"
                " (SELECT count(*) FROM margin_isolated_pair_versions),"
                " (SELECT delist_time FROM margin_pair_versions"
                "  WHERE symbol = 'ETHBTC' AND valid_to IS NULL)"
            )
        ).one()
    assert tuple(counts) == (9, 3, 0, datetime.fromtimestamp(DELIST_SECONDS, UTC))

    client = api_client(api_engine, settings)
    during = ok(
        client.get(f"/v1/margin/pairs?type=cross&as_of={q(between(off, on))}"),
        schemas.MarginPairsAsOf,
    )
    bnb = pair_of(during, "BNBBTC")
    assert (bnb["is_buy_allowed"], bnb["is_sell_allowed"], bnb["is_margin_trade"]) == (
        False,
        True,
        True,
    )
    assert bnb["valid_from"] == format_instant(off.observed_at)
    assert bnb["valid_to"] == format_instant(on.observed_at)
    assert during["evidence"]["observed_before"] == format_instant(off.observed_at)
    assert pair_of(during, "ETHBTC")["delist_time"] is None
    now = ok(client.get("/v1/margin/pairs"), schemas.MarginPairsAsOf)  # cross by default
    assert now["type"] == "cross"
    assert pair_of(now, "BNBBTC")["is_buy_allowed"] is True
    assert pair_of(now, "ETHBTC")["delist_time"] == format_instant(
        datetime.fromtimestamp(DELIST_SECONDS, UTC)
    )
    assert pair_of(now, "ETHBTC")["raw"]["delistTime"] == DELIST_SECONDS

    window = f"from={q(first.observed_at + MS)}&to={q(delist.observed_at + MS)}"
    feed = ok(client.get(f"/v1/changes?stream=margin_pairs&{window}"), schemas.ChangeFeed)
    expected = [
        (off, "BNBBTC", "isBuyAllowed", True, False),
        (on, "BNBBTC", "isBuyAllowed", False, True),
        (delist, "ETHBTC", "delistTime", None, DELIST_SECONDS),
    ]
    assert [
        (c["changed_at"], c["entity"], c["key"], c["field"], c["old"], c["new"])
        for c in feed["changes"]
    ] == [
        (format_instant(r.observed_at), "margin_pair", key, f, old, new)
        for r, key, f, old, new in expected
    ]
    default_feed = ok(client.get(f"/v1/changes?{window}"), schemas.ChangeFeed)
    assert [c for c in default_feed["changes"] if c["stream"] == "margin_pairs"] == feed["changes"]

    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    span = [
        "--from",
        format_instant(first.observed_at + MS),
        "--to",
        format_instant(delist.observed_at + MS),
    ]
    assert main(["changes", "--stream", "margin_pairs", *span, "--json"]) == 0
    assert [orjson.loads(line) for line in capsys.readouterr().out.splitlines()] == feed["changes"]
    at = format_instant(between(off, on))
    assert main(["asof", at, "bnbbtc", "--margin", "cross", "--json"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed["pairs"] == [pair_of(during, "BNBBTC")]
    assert main(["asof", at, "--margin", "cross"]) == 0
    assert f"cross margin pairs as of {at}: {len(during['pairs'])}" in capsys.readouterr().out
    assert main(["asof", at, "--margin", "cross", "--market", "usdm"]) == 2

    history = ok(client.get("/v1/margin/pairs/BNBBTC/history"), schemas.MarginPairHistory)
    assert [v["valid_from"] for v in history["versions"]] == [
        format_instant(r.observed_at) for r in (first, off, on)
    ]
    assert [c["field"] for c in history["versions"][1]["changes"]] == ["isBuyAllowed"]
    never = client.get("/v1/margin/pairs/BNBBTC/history?type=isolated")
    assert (never.status_code, never.json["error"]["code"]) == (404, "pair_never_seen")
    bad_type = client.get("/v1/margin/pairs?type=crossed")
    assert bad_type.status_code == 400
    assert "cross" in bad_type.json["error"]["message"]

    diff = ok(
        client.get(f"/v1/diff?from={q(first.observed_at + MS)}&to={q(delist.observed_at + MS)}"),
        schemas.AnyStateDiff,
    )
    assert diff["margin_pairs"] == {
        "added": [],
        "removed": [],
        "changed": [
            {
                "key": "ETHBTC",
                "changes": [{"field": "delistTime", "old": None, "new": DELIST_SECONDS}],
            }
        ],
    }

    with reader_connection(engine) as conn:
        view = conn.execute(
            "SELECT changed_at, entity, key, field, old, new, market FROM changes"
            " WHERE stream = 'margin_pairs' AND changed_at > %s"
            " ORDER BY changed_at, entity, key, field",
            (first.observed_at,),
        ).fetchall()
        as_of = conn.execute(
            "SELECT type, is_buy_allowed FROM margin_pairs_as_of(%s) WHERE symbol = 'BNBBTC'",
            (between(off, on),),
        ).fetchall()
        current = conn.execute(
            "SELECT delist_time FROM margin_pairs_current WHERE symbol = 'ETHBTC'"
        ).fetchall()
    assert [tuple(r) for r in view] == [
        (r.observed_at, "margin_pair", key, f, old, new, "spot") for r, key, f, old, new in expected
    ]
    assert as_of == [("cross", False)]
    assert current == [(datetime.fromtimestamp(DELIST_SECONDS, UTC),)]


def test_isolated_pairs_are_their_own_stream_and_type(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    margin: tuple[Settings, dict[str, StreamJob]],
) -> None:
    settings, jobs = margin
    job = jobs["margin_isolated_pairs"]
    first = job.run()
    assert opened(first) == {"margin_isolated_pair_versions": 3}
    patch_pair(sim, "isolated", "ETHUSDT", {"sell": False})
    sell_off = job.run()
    one_version_each(sell_off, table="margin_isolated_pair_versions")
    control(sim, "DELETE", "/margin/pairs/isolated/BNBUSDT", None)
    gone = job.run()
    assert (opened(gone), closed(gone)) == ({}, {"margin_isolated_pair_versions": 1})

    client = api_client(api_engine, settings)
    isolated = ok(client.get("/v1/margin/pairs?type=isolated"), schemas.MarginPairsAsOf)
    assert [p["symbol"] for p in isolated["pairs"]] == ["BTCUSDT", "ETHUSDT"]
    assert pair_of(isolated, "ETHUSDT")["is_sell_allowed"] is False
    assert pair_of(isolated, "ETHUSDT")["pair_id"] is None
    before = ok(
        client.get(f"/v1/margin/pairs?type=isolated&as_of={q(between(first, sell_off))}"),
        schemas.MarginPairsAsOf,
    )
    assert len(before["pairs"]) == 3
    # The cross pairs were never polled here: their answer is not observed.
    assert client.get("/v1/margin/pairs?type=cross").json["error"]["code"] == "not_observed"
    history = ok(
        client.get("/v1/margin/pairs/BNBUSDT/history?type=isolated"), schemas.MarginPairHistory
    )
    assert [v["listed"] for v in history["versions"]] == [True, False]


def test_the_margin_delist_schedule_reads_as_of_an_instant(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    margin: tuple[Settings, dict[str, StreamJob]],
) -> None:
    settings, jobs = margin
    job = jobs["margin_delistings"]
    first = job.run()
    assert opened(first) == {"margin_delisting_versions": 4}
    later = 1796275095000
    control(
        sim,
        "PUT",
        "/margin/delist-schedule",
        {
            "schedule": [
                {"delistTime": later, "crossMarginAssets": ["ADA"], "isolatedMarginSymbols": []},
                {
                    "delistTime": later,
                    "crossMarginAssets": ["XRP"],
                    "isolatedMarginSymbols": ["BNBUSDT"],
                },
            ]
        },
    )
    second = job.run()
    # ADA postponed, XRP and isolated BNBUSDT announced, TRX and ADAUSDT gone.
    assert (opened(second), closed(second)) == (
        {"margin_delisting_versions": 3},
        {"margin_delisting_versions": 4},
    )

    client = api_client(api_engine, settings)
    then = ok(
        client.get(f"/v1/margin/delistings?as_of={q(between(first, second))}"),
        schemas.MarginDelistingsAsOf,
    )
    assert [(d["type"], d["name"], d["delist_time"]) for d in then["delistings"]] == [
        ("cross", "TRX", "2023-06-07T18:06:42.000Z"),
        ("isolated", "ADAUSDT", "2023-06-07T18:06:42.000Z"),
        ("isolated", "BNBUSDT", "2023-06-07T18:06:42.000Z"),
        ("cross", "ADA", "2023-06-08T11:03:52.000Z"),
    ]
    now = ok(client.get("/v1/margin/delistings"), schemas.MarginDelistingsAsOf)
    assert [(d["type"], d["name"], d["valid_from"]) for d in now["delistings"]] == [
        ("cross", "ADA", format_instant(second.observed_at)),
        ("cross", "XRP", format_instant(second.observed_at)),
        ("isolated", "BNBUSDT", format_instant(second.observed_at)),
    ]
    window = f"from={q(first.observed_at + MS)}&to={q(second.observed_at + MS)}"
    feed = ok(client.get(f"/v1/changes?stream=margin_delistings&{window}"), schemas.ChangeFeed)
    assert ("margin_delisting", "cross:ADA", "delistTime", 1686222232000, later) in [
        (c["entity"], c["key"], c["field"], c["old"], c["new"]) for c in feed["changes"]
    ]
    with reader_connection(engine) as conn:
        rows = conn.execute(
            "SELECT type, name FROM margin_delistings_as_of(%s) ORDER BY type, name",
            (between(first, second),),
        ).fetchall()
        current = conn.execute(
            "SELECT type, name FROM margin_delistings_current ORDER BY type, name"
        ).fetchall()
    assert rows == [
        ("cross", "ADA"),
        ("cross", "TRX"),
        ("isolated", "ADAUSDT"),
        ("isolated", "BNBUSDT"),
    ]
    assert current == [("cross", "ADA"), ("cross", "XRP"), ("isolated", "BNBUSDT")]


def test_each_margin_poll_is_charged_its_weight_in_the_shared_budget(
    engine: Engine, sim: SimServer
) -> None:
    register_key(sim)
    settings = sim_settings(sim)
    jobs = {s.job.stream: s.job for s in build_poller(settings, engine, "test").jobs}
    start_well_inside_a_minute(engine)  # the sim counts weight per minute: stay inside one
    before = requests.get(f"{sim.url}/_sim/weight", timeout=5).json()["this_minute"]
    polls = [jobs[s].run() for s in ("margin_pairs", "margin_isolated_pairs", "margin_delistings")]
    with engine.connect() as conn:
        used = [
            conn.execute(
                text("SELECT used_weight FROM observations WHERE id = :i"),
                {"i": recorded.observation_id},
            ).scalar_one()
            for recorded in polls
        ]
        shared = conn.execute(
            text("SELECT used_weight FROM request_budget WHERE market = 'spot'")
        ).scalar_one()
    assert used == [before + 1, before + 11, before + 111]
    # Reported to the other replicas with the next request, as every weight is.
    assert shared == used[1]


def test_the_key_is_sent_in_the_header_without_a_signature(
    sim: SimServer, margin: tuple[Settings, dict[str, StreamJob]]
) -> None:
    _, jobs = margin
    assert jobs["margin_pairs"].run().outcome == "changed"
    [served] = logged_requests(sim, "/sapi/v1/margin/allPairs")
    assert (served["status"], served["query"]) == (200, "")  # no timestamp, no signature
    for headers, code in [({}, -2014), ({"X-MBX-APIKEY": API_KEY[::-1]}, -2015)]:
        refused = requests.get(f"{sim.url}/sapi/v1/margin/allPairs", headers=headers, timeout=5)
        assert (refused.status_code, refused.json()["code"]) == (401, code)
    keyed = requests.get(
        f"{sim.url}/sapi/v1/margin/isolated/allPairs", headers={"X-MBX-APIKEY": API_KEY}, timeout=5
    )
    assert [p["symbol"] for p in keyed.json()] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


def test_the_sim_refuses_bad_margin_control_input(sim: SimServer) -> None:
    for method, path, body, message in [
        ("PATCH", "/margin/pairs/cross/BNBBTC", {"buy": "no"}, "buy must be true or false"),
        ("PATCH", "/margin/pairs/cross/BNBBTC", {"delist_time": "soon"}, "delist_time must be"),
        ("PATCH", "/margin/pairs/cross/BNBBTC", {"suspend": True}, "unknown keys"),
        ("PATCH", "/margin/pairs/cross/NOPE", {"buy": False}, "no cross margin pair NOPE"),
        ("PATCH", "/margin/pairs/spot/BNBBTC", {"buy": False}, "unknown pair type"),
        ("PUT", "/margin/pairs/cross/XYZBTC", {"symbol": "OTHER"}, "symbol 'XYZBTC'"),
        ("PUT", "/margin/delist-schedule", {"schedule": [{"delistTime": "x"}]}, "'schedule'"),
    ]:
        response = requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=5)
        assert response.status_code == 400, (path, response.text)
        assert message in response.json()["error"], (path, response.text)
    cleared = patch_pair(sim, "cross", "TRXBTC", {"delist_time": None})
    assert "delistTime" not in cleared


def test_a_keyed_stream_sends_its_declared_parameters_unsigned(
    engine: Engine, sim: SimServer
) -> None:
    """allPairs takes an optional ``symbol`` (notes §16): a declaration that names one gets
    it in the query, still without timestamp or signature."""
    register_key(sim)
    settings = sim_settings(sim)
    declared = replace(stream("margin_pairs"), params=(("symbol", "BNBBTC"),))
    job = KeyedStreamJob(
        declared,
        retrying_client(settings, threading.Event()),
        settings.binance.api_key,
        StreamWriter(engine, declared.name),
        "test",
    )
    assert job.run().outcome == "changed"
    [served] = logged_requests(sim, "/sapi/v1/margin/allPairs")
    assert (served["status"], served["query"]) == (200, "symbol=BNBBTC")
