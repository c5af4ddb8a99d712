"""The reads of a futures market (``market=usdm``) over the real USD-M snapshots replayed
through the sim and the poller: as of between polls, a contract's lifecycle, the change
feed, the diff, the shape's drift, the rate limits, the document, the order check and the
read commands. What each answer must hold is computed here from the files."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import StreamWriter
from core.streams import stream
from core.timeparse import format_instant
from exmeta.cli import main
from poller.job import stream_job
from tests.api_client import ok, ts
from tests.builders import client_for
from tests.futures_replay import replay


@dataclass(frozen=True)
class Replayed:
    docs: list[dict[str, Any]]
    polled: list[datetime]  # after each file's poll, before the next file was served
    client: FlaskClient


@pytest.fixture
def replayed(engine: Engine, api_engine: Engine, sim: SimServer) -> Replayed:
    docs, polled = replay(engine, sim)
    return Replayed(docs, polled, create_app(Settings(), api_engine).test_client())


def by_symbol(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["symbol"]: s for s in doc["symbols"]}


def status_changes(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(symbol, old, new) of every status that differs between two consecutive files."""
    found = set()
    for before, after in pairwise(docs):
        old, new = by_symbol(before), by_symbol(after)
        found |= {
            (s, old[s]["status"], new[s]["status"])
            for s in old.keys() & new.keys()
            if old[s]["status"] != new[s]["status"]
        }
    return found


def error_code(response: Any) -> str:
    assert response.json is not None, response.data
    code: str = response.json["error"]["code"]
    return code


def test_a_contract_as_of_between_polls_is_the_earlier_files(replayed: Replayed) -> None:
    docs, polled, client = replayed.docs, replayed.polled, replayed.client
    changed = sorted(
        s
        for s, old in by_symbol(docs[0]).items()
        if s in by_symbol(docs[1]) and old != by_symbol(docs[1])[s]
    )
    assert "CTKUSDT" in changed  # went SETTLING, with a new delivery date
    for i in (0, 1):
        answer = ok(
            client.get(f"/v1/symbols/CTKUSDT?market=usdm&as_of={ts(polled[i])}"),
            schemas.FuturesSymbolAsOf,
        )
        expected = by_symbol(docs[i])["CTKUSDT"]
        assert answer["market"] == "usdm"
        assert answer["raw"] == {k: v for k, v in expected.items() if k != "filters"}
        assert {t: f["raw"] for t, f in answer["filters"].items()} == {
            f["filterType"]: f for f in expected["filters"]
        }
        assert answer["status"] == expected["status"]
        delivery = datetime.fromtimestamp(expected["deliveryDate"] / 1000, tz=UTC)
        assert answer["delivery_date"] == format_instant(delivery)
        assert answer["evidence"]["observed_before"] is not None
    whole = ok(
        client.get(f"/v1/symbols?market=usdm&as_of={ts(polled[0])}"), schemas.FuturesSymbolList
    )
    assert [s["symbol"] for s in whole["symbols"]] == sorted(by_symbol(docs[0]))
    settling = ok(
        client.get(f"/v1/symbols?market=usdm&status=SETTLING&as_of={ts(polled[1])}"),
        schemas.FuturesSymbolList,
    )
    assert {s["symbol"] for s in settling["symbols"]} == {
        s for s, c in by_symbol(docs[1]).items() if c["status"] == "SETTLING"
    }


def test_a_contracts_lifecycle_reads_in_one_history_call(replayed: Replayed) -> None:
    docs, client = replayed.docs, replayed.client
    history = ok(client.get("/v1/symbols/CTKUSDT/history?market=usdm"), schemas.SymbolHistory)
    first, settled = history["versions"][:2]
    assert first["listed"]
    listing = {c["field"]: (c["old"], c["new"]) for c in first["changes"]}
    assert listing["status"] == (None, "TRADING")
    fields = {c["field"]: (c["old"], c["new"]) for c in settled["changes"]}
    old, new = by_symbol(docs[0])["CTKUSDT"], by_symbol(docs[1])["CTKUSDT"]
    assert fields["status"] == ("TRADING", "SETTLING")
    assert fields["deliveryDate"] == (old["deliveryDate"], new["deliveryDate"])
    pending = ok(client.get("/v1/symbols/BTCSTUSDT/history?market=usdm"), schemas.SymbolHistory)
    listing = {c["field"]: c["new"] for c in pending["versions"][0]["changes"]}
    assert listing["status"] == "PENDING_TRADING"
    # Spot never listed it: the market is part of the symbol's key.
    missing = client.get("/v1/symbols/CTKUSDT/history")
    assert missing.status_code == 404
    assert error_code(missing) == "symbol_never_seen"


def test_the_usdm_feed_lists_every_status_change_and_the_spot_feed_none(
    replayed: Replayed,
) -> None:
    docs, polled, client = replayed.docs, replayed.polled, replayed.client
    found: set[tuple[str, str, str]] = set()
    url: str | None = f"/v1/changes?market=usdm&from={ts(polled[0])}&field=status"
    while url is not None:
        page = ok(client.get(url), schemas.ChangeFeed)
        assert page["streams"] == ["usdm_exchange_info"]
        found |= {(c["key"], c["old"], c["new"]) for c in page["changes"]}
        assert {c["entity"] for c in page["changes"]} <= {"symbol"}
        token = page["next"]
        url = None if token is None else f"{url.split('&next=')[0]}&next={token}"
    assert found == status_changes(docs)
    assert ("CTKUSDT", "TRADING", "SETTLING") in found
    spot = ok(client.get(f"/v1/changes?from={ts(polled[0])}"), schemas.ChangeFeed)
    assert spot["changes"] == []


def test_the_usdm_diff_adds_removes_and_changes_what_the_files_do(replayed: Replayed) -> None:
    docs, polled, client = replayed.docs, replayed.polled, replayed.client
    diff = ok(
        client.get(f"/v1/diff?market=usdm&from={ts(polled[0])}&to={ts(polled[1])}"),
        schemas.FuturesStateDiff,
    )
    old, new = by_symbol(docs[0]), by_symbol(docs[1])
    assert diff["market"] == "usdm"
    assert diff["symbols"]["added"] == sorted(new.keys() - old.keys())
    assert diff["symbols"]["removed"] == sorted(old.keys() - new.keys())
    assert [c["key"] for c in diff["symbols"]["changed"]] == sorted(
        s for s in old.keys() & new.keys() if old[s] != new[s]
    )
    assert diff["assets"] is not None
    # The 2024-10-19 -> 10-20 pair differs in serverTime alone: no difference.
    same = ok(
        client.get(f"/v1/diff?market=usdm&from={ts(polled[1])}&to={ts(polled[2])}"),
        schemas.FuturesStateDiff,
    )
    for section in ("symbols", "rate_limits", "exchange_filters", "assets", "schema"):
        assert same[section] == {"added": [], "removed": [], "changed": []}, section


def test_the_shapes_drift_is_in_the_usdm_feed_and_diff(replayed: Replayed) -> None:
    polled, client = replayed.polled, replayed.client
    start = ts(polled[0])  # settlePlan went by 2024-10, POSITION_RISK_CONTROL came by 2025
    diff = ok(client.get(f"/v1/diff?market=usdm&from={start}"), schemas.FuturesStateDiff)
    assert "usdm_exchange_info:symbols[].settlePlan" in diff["schema"]["removed"]
    assert "usdm_exchange_info:symbols[].filters[POSITION_RISK_CONTROL]" in diff["schema"]["added"]
    feed = ok(
        client.get(f"/v1/changes?market=usdm&schema=true&from={start}&field=listed"),
        schemas.ChangeFeed,
    )
    shape = {(c["key"], c["new"] is None) for c in feed["changes"] if c["entity"] == "schema"}
    assert ("usdm_exchange_info:symbols[].settlePlan", True) in shape
    assert ("usdm_exchange_info:symbols[].filters[POSITION_RISK_CONTROL]", False) in shape
    schema = ok(client.get("/v1/schema?stream=usdm_exchange_info"), schemas.SchemaAsOf)
    assert "symbols[].settlePlan" not in {p["path"] for p in schema["paths"]}


def test_rate_limits_and_document_of_the_market(replayed: Replayed) -> None:
    docs, client = replayed.docs, replayed.client
    limits = ok(client.get("/v1/rate-limits?market=usdm"), schemas.RateLimitsAsOf)
    assert sorted(
        (r["rate_limit_type"], r["interval"], r["interval_num"], r["limit"])
        for r in limits["rate_limits"]
    ) == sorted(
        (r["rateLimitType"], r["interval"], r["intervalNum"], r["limit"])
        for r in docs[-1]["rateLimits"]
    )
    document = client.get("/v1/exchange-info?market=usdm")
    assert document.status_code == 200
    assert orjson.loads(document.data)["symbols"] == docs[-1]["symbols"]
    spot = client.get("/v1/exchange-info")
    assert spot.status_code == 404  # spot was never polled here
    assert "exchange_info observation" in spot.json["error"]["message"]  # type: ignore[index]


def test_the_order_check_applies_the_contracts_filters(replayed: Replayed) -> None:
    docs, client = replayed.docs, replayed.client
    btc = by_symbol(docs[-1])["BTCUSDT"]
    notional = next(f for f in btc["filters"] if f["filterType"] == "MIN_NOTIONAL")["notional"]
    assert notional == "100"
    small = client.get(
        "/v1/symbols/BTCUSDT/check?market=usdm&side=BUY&type=LIMIT&quantity=0.001&price=50000"
    )
    verdict = ok(small, schemas.OrderCheck)
    assert not verdict["accepted"]
    assert [v["rule"] for v in verdict["violations"]] == ["MIN_NOTIONAL.notional"]
    enough = ok(
        client.get(
            "/v1/symbols/BTCUSDT/check?market=usdm&side=BUY&type=LIMIT&quantity=0.002&price=50000"
        ),
        schemas.OrderCheck,
    )
    assert enough["accepted"]
    assert {"MAX_NUM_ORDERS", "account"} <= {u["rule"] for u in enough["not_checked"]}
    settling = client.get(
        "/v1/symbols/WAVESUSDT/check?market=usdm&side=BUY&type=LIMIT&quantity=1&price=1"
        f"&as_of={ts(replayed.polled[1])}"
    )
    assert "status" in [v["rule"] for v in ok(settling, schemas.OrderCheck)["violations"]]
    quote = client.get(
        "/v1/symbols/BTCUSDT/check?market=usdm&side=BUY&type=MARKET&quote_quantity=100"
    )
    assert quote.status_code == 400
    assert error_code(quote) == "invalid_parameter"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/v1/symbols/BTCUSDT?market=margin", "invalid_parameter"),
        ("/v1/symbols?market=USDM", "invalid_parameter"),
        ("/v1/changes?market=spot&stream=usdm_exchange_info", "invalid_parameter"),
        ("/v1/diff?market=coin&from=2024-01-01T00:00:00Z", "invalid_parameter"),
        ("/v1/symbols/NOSUCHUSDT?market=usdm", "symbol_not_listed"),
        ("/v1/symbols/BTCUSD_PERP?market=coinm", "not_observed"),
    ],
)
def test_a_bad_market_or_symbol_is_a_clear_4xx(replayed: Replayed, url: str, code: str) -> None:
    response = replayed.client.get(url)
    assert 400 <= response.status_code < 500, response.data
    assert error_code(response) == code
    if code == "symbol_not_listed":
        assert "not listed on usdm" in response.json["error"]["message"]  # type: ignore[index]


def test_the_read_commands_take_the_market(
    replayed: Replayed,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    at = ts(replayed.polled[0])
    assert main(["asof", at, "CTKUSDT", "--market", "usdm", "--json"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed["market"] == "usdm"
    assert printed["status"] == by_symbol(replayed.docs[0])["CTKUSDT"]["status"]
    assert main(["asof", at, "CTKUSDT", "--market", "usdm"]) == 0
    table = capsys.readouterr().out
    assert "CTKUSDT" in table
    assert main(["changes", "--market", "usdm", "--from", at, "--field", "status", "--json"]) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(c["key"], c["old"], c["new"]) for c in lines} == status_changes(replayed.docs)
    assert main(["changes", "--market", "usdm", "--stream", "exchange_info"]) == 2
    assert "is of market spot" in capsys.readouterr().err
    assert main(["diff", "--market", "usdm", "--from", at, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["market"] == "usdm"


def test_a_coinm_contract_goes_trading_in_the_feed_and_reads_back(
    engine: Engine, api_engine: Engine, sim: SimServer
) -> None:
    """COIN-M's status is `contractStatus` in its documents: the typed column `status`
    reads it, and the feed reports Binance's own field."""
    client = client_for(sim.url, stop=threading.Event(), stream="coinm_exchange_info")
    writer = StreamWriter(engine, "coinm_exchange_info")
    job = stream_job(stream("coinm_exchange_info"), client, writer, "r0")
    assert job.run().outcome == "changed"
    listed = datetime.now(UTC)
    opened = requests.patch(
        f"{sim.url}/_sim/markets/coinm/symbols/ETHUSD_260327", json={"status": "TRADING"}, timeout=5
    )
    assert opened.status_code == 200, opened.text
    assert job.run().outcome == "changed"
    api = create_app(Settings(), api_engine).test_client()
    feed = ok(api.get(f"/v1/changes?market=coinm&from={ts(listed)}"), schemas.ChangeFeed)
    assert [(c["stream"], c["key"], c["field"], c["old"], c["new"]) for c in feed["changes"]] == [
        ("coinm_exchange_info", "ETHUSD_260327", "contractStatus", "PENDING_TRADING", "TRADING")
    ]
    before = ok(
        api.get(f"/v1/symbols/ETHUSD_260327?market=coinm&as_of={ts(listed)}"),
        schemas.FuturesSymbolAsOf,
    )
    now = ok(api.get("/v1/symbols/ETHUSD_260327?market=coinm"), schemas.FuturesSymbolAsOf)
    assert (before["status"], now["status"]) == ("PENDING_TRADING", "TRADING")
    assert now["contract_size"] == str(now["raw"]["contractSize"])
    assert now["market"] == "coinm"
