"""The analysts' SQL: README's examples run as ``exmeta_reader`` and say what they should.

The examples are read from README.md itself, so the documentation cannot drift from the
schema; the role is checked to read and nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from pydantic import BaseModel
from sqlalchemy import Engine

from api import schemas
from core.timeparse import format_instant
from tests.api_client import AUTH, app_client, ok, ts
from tests.builders import (
    account_document,
    at,
    commission_document,
    exchange_info,
    record_exchange_info,
    record_stream,
    symbol,
)
from tests.scripts import MAINTENANCE, NORMAL

README = Path(__file__).resolve().parents[2] / "README.md"
SIM_DATA = README.parent / "binance_sim" / "data"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.DOTALL | re.MULTILINE)
STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


def readme_sql_blocks() -> list[str]:
    return SQL_BLOCK.findall(README.read_text(encoding="utf-8"))


def statements(block: str) -> list[str]:
    return [s.strip() for s in STATEMENT_END.split(block) if s.strip()]


MIDNIGHT = at("2024-05-01T00:00:00")
NOON = at("2024-05-01T12:00:00")
ONE_PM = at("2024-05-01T13:00:00")
EIGHT_PM = at("2024-05-01T20:00:00")
DELIST_AT = at("2024-05-02T00:00:00")
ETH_DELISTING = {"symbol": "ETHUSDT", "delistTime": int(DELIST_AT.timestamp() * 1000)}
MARGIN_DELIST_SECONDS = int(DELIST_AT.timestamp())  # seconds, as allPairs' docs example


def margin_pair(symbol: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "symbol": symbol,
        "base": symbol[:3],
        "quote": symbol[3:],
        "isMarginTrade": True,
        "isBuyAllowed": True,
        "isSellAllowed": True,
        **fields,
    }


def record_story(engine: Engine) -> None:
    """The data README's examples describe: at noon a tick size change, a halt, a delisting
    announced, the account losing canTrade and a commission change; maintenance 12:00-13:00."""
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT")), MIDNIGHT)
    record_stream(engine, "account", account_document(), MIDNIGHT)
    record_stream(engine, "account_commission", [commission_document()], MIDNIGHT)
    record_stream(engine, "system_status", NORMAL, MIDNIGHT)
    record_stream(engine, "delistings", [], MIDNIGHT)
    record_stream(
        engine, "margin_pairs", [margin_pair("BTCUSDT"), margin_pair("ETHUSDT")], MIDNIGHT
    )
    record_exchange_info(
        engine,
        exchange_info(symbol("BTCUSDT", tick_size="0.10000000"), symbol("ETHUSDT", status="BREAK")),
        NOON,
    )
    record_stream(engine, "account", account_document(can_trade=False), NOON)
    record_stream(engine, "account_commission", [commission_document(taker="0.00200000")], NOON)
    record_stream(engine, "system_status", MAINTENANCE, NOON)
    record_stream(
        engine,
        "delistings",
        [{"delistTime": ETH_DELISTING["delistTime"], "symbols": ["ETHUSDT"]}],
        NOON,
    )
    record_stream(
        engine,
        "margin_pairs",
        [
            margin_pair("BTCUSDT"),
            margin_pair("ETHUSDT", isBuyAllowed=False, delistTime=MARGIN_DELIST_SECONDS),
        ],
        NOON,
    )
    record_stream(engine, "system_status", NORMAL, ONE_PM)
    # The sim's USD-M contracts (OMGUSDT settling); at 20:00 BTCSTUSDT opens for trading.
    usdm = usdm_document()
    record_stream(engine, "usdm_exchange_info", usdm, MIDNIGHT)
    for contract in usdm["symbols"]:
        if contract["symbol"] == "BTCSTUSDT":
            contract["status"] = "TRADING"
    record_stream(engine, "usdm_exchange_info", usdm, EIGHT_PM)


def usdm_document() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        (SIM_DATA / "usdm_exchange_info_2025-10-30.json").read_bytes()
    )
    return doc


@pytest.fixture
def reader(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A connection acting as ``exmeta_reader``, over the recorded story, rolled back after."""
    record_story(engine)
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")
        yield conn
        conn.rollback()


def run_readme(conn: psycopg.Connection[Any]) -> dict[str, list[list[tuple[Any, ...]]]]:
    """Every README sql block run in order; per block (named by its first line) the rows
    of each statement that returns rows."""
    results: dict[str, list[list[tuple[Any, ...]]]] = {}
    for block in readme_sql_blocks():
        name = block.splitlines()[0]
        results[name] = []
        for statement in statements(block):
            cursor = conn.execute(statement)
            if cursor.description is not None:
                results[name].append(cursor.fetchall())
    return results


def test_readme_has_the_analyst_examples() -> None:
    names = [b.splitlines()[0] for b in readme_sql_blocks()]
    assert "-- your own trades, each with the rules in force when it executed" in names
    assert len(names) >= 6


def test_every_readme_example_runs_as_the_reader_and_returns_rows(
    reader: psycopg.Connection[Any],
) -> None:
    results = run_readme(reader)
    for name, outputs in results.items():
        assert outputs, f"{name}: no statement returned rows"
        assert all(rows for rows in outputs), f"{name}: a query returned nothing"


def test_readme_examples_answer_with_the_rules_in_force(
    reader: psycopg.Connection[Any],
) -> None:
    results = run_readme(reader)
    [current] = results["-- every symbol listed now, with its main filter values"]
    assert current == [
        ("BTCUSDT", "TRADING", Decimal("0.10000000"), Decimal("0.00100000"), Decimal("5.00000000")),
        ("ETHUSDT", "BREAK", Decimal("0.01000000"), Decimal("0.00100000"), Decimal("5.00000000")),
    ]
    [before_noon] = results["-- the whole exchange as it was at an instant"]
    assert [(r[0], r[2]) for r in before_noon] == [
        ("BTCUSDT", Decimal("0.01000000")),
        ("ETHUSDT", Decimal("0.01000000")),
    ]
    [[rejected]] = results["-- one symbol at the instant an order was rejected"]
    assert rejected[:2] == ("TRADING", Decimal("0.10000000"))
    assert (rejected[-2], rejected[-1]) == (at("2024-05-01T12:00:00"), None)
    [limits] = results["-- the rate limits at an instant"]
    assert [(r[0], r[3]) for r in limits] == [("RAW_REQUESTS", 61000), ("REQUEST_WEIGHT", 6000)]
    [changed] = results["-- what changed in a window, field by field"]
    noon = NOON
    assert changed == [
        (noon, "account", "spot", "canTrade", True, False),
        (noon, "commission", "BTCUSDT", "standardCommission.taker", "0.00100000", "0.00200000"),
        (noon, "delisting", "ETHUSDT", "listed", None, ETH_DELISTING),
        (noon, "margin_pair", "ETHUSDT", "delistTime", None, MARGIN_DELIST_SECONDS),
        (noon, "margin_pair", "ETHUSDT", "isBuyAllowed", True, False),
        (noon, "symbol", "BTCUSDT", "filters.PRICE_FILTER.tickSize", "0.01000000", "0.10000000"),
        (noon, "symbol", "ETHUSDT", "status", "TRADING", "BREAK"),
        (noon, "system_status", "binance", "msg", "normal", "system_maintenance"),
        (noon, "system_status", "binance", "status", 0, 1),
        (ONE_PM, "system_status", "binance", "msg", "system_maintenance", "normal"),
        (ONE_PM, "system_status", "binance", "status", 1, 0),
    ]
    [[rejected_account]] = results[
        "-- the account and its commission on a symbol when an order was rejected"
    ]
    assert rejected_account == (
        False,
        ["SPOT"],
        Decimal("0.00100000"),
        Decimal("0.00200000"),
        Decimal("0.75000000"),
    )
    [windows] = results["-- maintenance windows: when the system status was 1, from the change log"]
    assert windows == [(NOON, 0, 1), (ONE_PM, 1, 0)]
    [[status]] = results["-- was the exchange in maintenance at an instant?"]
    assert status == (1, "system_maintenance", NOON, ONE_PM)
    [delistings] = results["-- delistings announced by an instant, and when each takes effect"]
    assert delistings == [("ETHUSDT", DELIST_AT, NOON)]
    [margin] = results[
        "-- margin pairs that could not be bought or sold at an instant, or were to be delisted"
    ]
    assert margin == [("cross", "ETHUSDT", False, True, DELIST_AT, NOON)]
    [versions] = results["-- every version of one filter: the raw tables hold the whole history"]
    assert [r[2] for r in versions] == [Decimal("0.01000000"), Decimal("0.10000000")]
    usdm = {s["symbol"]: s for s in usdm_document()["symbols"]}
    [not_trading] = results[
        "-- futures contracts not trading now (settling, delivering, not yet open)"
    ]
    assert [r[:3] for r in not_trading] == [
        ("usdm", "OMGUSDT", "SETTLING"),
        ("usdm", "WAVESUSDT", "SETTLING"),
    ]
    [dated] = results["-- every dated USD-M contract at an instant"]
    assert [(r[0], r[2]) for r in dated] == sorted(
        (s["symbol"], s["contractType"]) for s in usdm.values() if s["contractType"] != "PERPETUAL"
    )
    [[contract]] = results["-- one contract at the instant an order was rejected"]
    by_type = {f["filterType"]: f for f in usdm["BTCUSDT"]["filters"]}
    assert contract == (
        "TRADING",
        Decimal(by_type["PRICE_FILTER"]["tickSize"]),
        Decimal(by_type["LOT_SIZE"]["stepSize"]),
        Decimal(by_type["MARKET_LOT_SIZE"]["maxQty"]),
        Decimal(by_type["MIN_NOTIONAL"]["notional"]),
        Decimal(by_type["PERCENT_PRICE"]["multiplierUp"]),
        Decimal(by_type["PERCENT_PRICE"]["multiplierDown"]),
    )
    [usdm_limits] = results["-- a market's rate limits at an instant"]
    assert [r[1:] for r in usdm_limits] == [
        ("ORDERS", "MINUTE", 1, 1200),
        ("ORDERS", "SECOND", 10, 300),
        ("REQUEST_WEIGHT", "MINUTE", 1, 2400),
    ]
    [weights] = results["-- each market's request weight limit now"]
    assert weights == [("spot", "MINUTE", 1, 6000), ("usdm", "MINUTE", 1, 2400)]
    [opened] = results[
        "-- contracts going from PENDING_TRADING to TRADING, or settling, from the change log"
    ]
    assert opened == [(EIGHT_PM, "usdm", "BTCSTUSDT", "PENDING_TRADING", "TRADING")]
    [trades] = results["-- your own trades, each with the rules in force when it executed"]
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in trades] == [
        (1, "TRADING", Decimal("0.01000000"), True, True),
        (2, "TRADING", Decimal("0.10000000"), True, True),
    ]


def test_symbol_as_of_has_no_row_before_listing_nor_after_delisting(engine: Engine) -> None:
    record_story(engine)
    record_exchange_info(engine, exchange_info(symbol("ETHUSDT")), at("2024-05-02T00:00:00"))
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")
        one = "SELECT tick_size FROM symbol_as_of(%s, %s)"
        assert conn.execute(one, ("BTCUSDT", at("2024-04-30T23:59:59"))).fetchall() == []
        assert conn.execute(one, ("BTCUSDT", at("2024-05-01T23:59:59"))).fetchall() == [
            (Decimal("0.10000000"),)
        ]
        assert conn.execute(one, ("BTCUSDT", at("2024-05-02T00:00:00"))).fetchall() == []
        current = conn.execute("SELECT symbol FROM symbols_current").fetchall()
        assert current == [("ETHUSDT",)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO symbol_versions SELECT * FROM symbol_versions",
        "UPDATE account_versions SET can_trade = true",
        "DELETE FROM commission_versions",
        "UPDATE system_status_versions SET status = 0",
        "DELETE FROM delisting_versions",
        "CREATE OR REPLACE VIEW commissions_current AS SELECT 1 AS x",
        "UPDATE symbol_versions SET status = 'HALT'",
        "DELETE FROM symbol_versions",
        "INSERT INTO symbol_filter_versions SELECT * FROM symbol_filter_versions",
        "UPDATE symbol_filter_versions SET tick_size = 1",
        "DELETE FROM symbol_filter_versions",
        "UPDATE rate_limit_versions SET limit_value = 1",
        "DELETE FROM rate_limit_versions",
        "DELETE FROM observations",
        "TRUNCATE symbol_versions",
        "SELECT count(*) FROM raw_bodies",
        "SELECT count(*) FROM stream_heads",
        "CREATE OR REPLACE VIEW changes AS SELECT 1 AS x",
        "CREATE OR REPLACE VIEW futures_symbols_current AS SELECT 1 AS x",
        "DROP FUNCTION checked_market(text, text[])",
        "DELETE FROM usdm_symbol_versions",
        "CREATE TABLE public.scratch (x int)",
    ],
)
def test_the_reader_role_is_refused_writes_and_internals(
    reader: psycopg.Connection[Any], statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(statement)


MODELS: dict[str, type[BaseModel]] = {
    "/v1/account": schemas.AccountAsOf,
    "/v1/account/commission/BTCUSDT": schemas.CommissionAsOf,
    "/v1/system-status": schemas.SystemStatusAsOf,
    "/v1/delistings": schemas.DelistingsAsOf,
    "/v1/account/balances": schemas.BalancesAsOf,
}


def test_the_as_of_functions_answer_what_the_api_answers(engine: Engine) -> None:
    record_story(engine)
    client = app_client(engine)
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    instants = [
        MIDNIGHT - timedelta(seconds=1),
        MIDNIGHT,
        NOON - timedelta(milliseconds=1),
        NOON,
        at("2024-05-01T12:30:00"),
        ONE_PM,
    ]
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")

        def sql(query: str, t: datetime) -> list[Any]:
            return [format_instant(r[0]) for r in conn.execute(query, (t,)).fetchall()]

        def api(path: str, t: datetime, name: str | None = None) -> list[Any]:
            response = client.get(f"{path}?as_of={ts(t)}", headers=AUTH)
            if response.status_code == 404:
                return []
            body = ok(response, MODELS[path])
            return [v["valid_from"] for v in body[name]] if name else [body["valid_from"]]

        for t in instants:
            assert sql("SELECT valid_from FROM account_as_of(%s)", t) == api("/v1/account", t)
            assert sql(
                "SELECT valid_from FROM commissions_as_of(%s) WHERE symbol = 'BTCUSDT'", t
            ) == api("/v1/account/commission/BTCUSDT", t)
            assert sql("SELECT valid_from FROM system_status_as_of(%s)", t) == api(
                "/v1/system-status", t
            )
            assert sql("SELECT valid_from FROM delistings_as_of(%s) ORDER BY symbol", t) == api(
                "/v1/delistings", t, "delistings"
            )
            assert sql("SELECT valid_from FROM balances_as_of(%s) ORDER BY asset", t) == api(
                "/v1/account/balances", t, "balances"
            )
        assert sql("SELECT valid_from FROM system_status_as_of(%s)", NOON) == [ts(NOON)]
        current = conn.execute("SELECT status FROM system_status_current").fetchall()
        assert current == [(0,)]
