"""The real USD-M snapshots replayed through the sim and the poller (or recorded at fixed
instants), the COIN-M fixture and its change, and what the tests expect of them, computed
from the documented shape rather than by the product's parser, diff or SQL."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import groupby
from typing import Any

import orjson
import requests
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from binance_sim.state import Market, default_fixture
from core.ingest import StreamWriter
from core.streams import stream
from poller.job import StreamJob, stream_job
from tests.builders import at, client_for, record_stream
from tests.conftest import FIXTURES

USDM_FILES = sorted((FIXTURES / "futures_usdm").glob("*.json"))  # 2021-09-06 .. 2025-10-30


Entities = dict[tuple[Any, ...], Any]


def entities(doc: Mapping[str, Any], market: str = "usdm") -> dict[str, Entities]:
    """Each table's entities in a futures document of ``market``, by key, as plain JSON
    values (a contract without its filters); margin assets where the body has them."""
    symbols = doc["symbols"]
    tables = {
        f"{market}_symbol_versions": {
            (s["symbol"],): {k: v for k, v in s.items() if k != "filters"} for s in symbols
        },
        f"{market}_symbol_filter_versions": {
            (s["symbol"], f["filterType"]): f for s in symbols for f in s["filters"]
        },
        f"{market}_rate_limit_versions": {
            (r["rateLimitType"], r["interval"], r["intervalNum"]): r for r in doc["rateLimits"]
        },
        f"{market}_exchange_filter_versions": {
            (f["filterType"],): f for f in doc["exchangeFilters"]
        },
    }
    if "assets" in doc:
        tables[f"{market}_asset_versions"] = {(a["asset"],): a for a in doc["assets"]}
    return tables


def versions_opened(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Per table, one version per entity in the first file, and one per entity new or
    different in each later file than in the one before."""
    opened: dict[str, int] = {}
    before: dict[str, Entities] = {}
    for doc in docs:
        now = entities(doc)
        for table, found in now.items():
            old = before.get(table, {})
            opened[table] = opened.get(table, 0) + sum(
                1 for key, value in found.items() if old.get(key) != value
            )
        before = now
    return opened


def count_versions(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in entities(orjson.loads(USDM_FILES[0].read_bytes()))
        }


def replay(engine: Engine, sim: SimServer) -> tuple[list[dict[str, Any]], list[datetime]]:
    """Serve each file in turn and poll it once: the documents, and for each poll an
    instant after it ended and before the next file was served."""
    client = client_for(sim.url, stop=threading.Event(), stream="usdm_exchange_info")
    job: StreamJob = stream_job(
        stream("usdm_exchange_info"), client, StreamWriter(engine, "usdm_exchange_info"), "r0"
    )
    docs, polled = [], []
    for path in USDM_FILES:
        body = path.read_bytes()
        replaced = requests.put(f"{sim.url}/_sim/markets/usdm/exchange-info", data=body, timeout=30)
        assert replaced.status_code == 200, replaced.text
        recorded = job.run()
        assert recorded.outcome in ("changed", "unchanged")
        docs.append(orjson.loads(body))
        polled.append(datetime.now(UTC))
    return docs, polled


def status_history(engine: Engine) -> dict[str, list[str]]:
    """Each contract's statuses, as its versions say them, repeats merged."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT symbol, status FROM usdm_symbol_versions ORDER BY symbol, valid_from")
        ).all()
    return {
        symbol: [status for status, _ in groupby(r.status for r in group)]
        for symbol, group in groupby(rows, key=lambda r: r.symbol)
    }


# -- the same files recorded at fixed instants, without a sim --------------------------------

# Each file recorded at noon of the day it was captured.
USDM_AT = [at(f"{path.name[:10]}T12:00:00") for path in USDM_FILES]
COINM_AT = [at("2025-11-01T00:00:00"), at("2025-11-02T00:00:00")]


def record_usdm_replay(engine: Engine) -> list[dict[str, Any]]:
    """The real USD-M files recorded in turn, each at ``USDM_AT``: the documents."""
    docs = [orjson.loads(path.read_bytes()) for path in USDM_FILES]
    for doc, when in zip(docs, USDM_AT, strict=True):
        record_stream(engine, "usdm_exchange_info", doc, when)
    return docs


def coinm_docs() -> list[dict[str, Any]]:
    """The sim's COIN-M contracts, then a day later: BTCUSD_250926 delivered (gone),
    ETHUSD_260327 trading, BTCUSD_PERP's tick size doubled, an exchange filter and a
    tighter weight limit."""
    first = orjson.loads(default_fixture(Market.COINM))
    second = copy.deepcopy(first)
    second["symbols"] = [s for s in second["symbols"] if s["symbol"] != "BTCUSD_250926"]
    for contract in second["symbols"]:
        if contract["symbol"] == "ETHUSD_260327":
            contract["contractStatus"] = "TRADING"
        if contract["symbol"] == "BTCUSD_PERP":
            [price] = [f for f in contract["filters"] if f["filterType"] == "PRICE_FILTER"]
            price["tickSize"] = str(Decimal(price["tickSize"]) * 2)
    second["exchangeFilters"] = [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000}]
    second["rateLimits"][0]["limit"] = 2400
    return [first, second]


def record_coinm(engine: Engine) -> list[dict[str, Any]]:
    """``coinm_docs`` recorded at ``COINM_AT``: the documents."""
    docs = coinm_docs()
    for doc, when in zip(docs, COINM_AT, strict=True):
        record_stream(engine, "coinm_exchange_info", doc, when)
    return docs


# (changed_at, entity, key, field, old, new), as the ``changes`` view and the feed list them
ChangeRow = tuple[datetime, str, str, str, Any, Any]
# versioned table -> the feed's entity, for the entities whose object is one row
WHOLE_ROW_ENTITIES = {
    "rate_limit_versions": "rate_limit",
    "exchange_filter_versions": "exchange_filter",
    "asset_versions": "asset",
}


def _fields(
    when: datetime,
    entity: str,
    key: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    prefix: str,
) -> list[ChangeRow]:
    return [
        (when, entity, key, prefix + name, old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


def _contract_changes(
    when: datetime, market: str, before: dict[str, Entities], now: dict[str, Entities]
) -> list[ChangeRow]:
    """A contract listed or delisted is one ``listed`` change holding its filters (in
    filter type order); otherwise its own fields and ``filters.<TYPE>.<field>``."""
    symbols, filters = f"{market}_symbol_versions", f"{market}_symbol_filter_versions"
    old_s, new_s = before.get(symbols, {}), now[symbols]
    old_f, new_f = before.get(filters, {}), now[filters]
    rows: list[ChangeRow] = []
    for (name,) in old_s.keys() | new_s.keys():
        old, new = old_s.get((name,)), new_s.get((name,))
        if old is None or new is None:
            side = new_f if new is not None else old_f
            whole = {
                **(new if new is not None else old),
                "filters": [v for (s, _), v in sorted(side.items()) if s == name],
            }
            listed = (None, whole) if new is not None else (whole, None)
            rows.append((when, "symbol", name, "listed", *listed))
            continue
        rows.extend(_fields(when, "symbol", name, old, new, ""))
        for s, ftype in old_f.keys() | new_f.keys():
            if s == name:
                rows.extend(
                    _fields(
                        when,
                        "symbol",
                        name,
                        old_f.get((s, ftype)) or {},
                        new_f.get((s, ftype)) or {},
                        f"filters.{ftype}.",
                    )
                )
    return rows


def expected_changes(
    docs: Sequence[Mapping[str, Any]], instants: Sequence[datetime], market: str = "usdm"
) -> list[ChangeRow]:
    """The changes ``docs`` make, each recorded at its instant, in the feed's order."""
    rows: list[ChangeRow] = []
    before: dict[str, Entities] = {}
    for doc, when in zip(docs, instants, strict=True):
        now = entities(doc, market)
        rows.extend(_contract_changes(when, market, before, now))
        for suffix, entity in WHOLE_ROW_ENTITIES.items():
            table = f"{market}_{suffix}"
            if table not in now:
                continue
            old_t, new_t = before.get(table, {}), now[table]
            for key in old_t.keys() | new_t.keys():
                name = ":".join(str(part) for part in key)
                old, new = old_t.get(key), new_t.get(key)
                if old is None or new is None:
                    rows.append((when, entity, name, "listed", old, new))
                else:
                    rows.extend(_fields(when, entity, name, old, new, ""))
        before = now
    return sorted(rows, key=lambda r: r[:4])


def _decimal(flt: Mapping[str, Any] | None, field: str) -> Decimal | None:
    value = None if flt is None else flt.get(field)
    return None if value is None else Decimal(str(value))


def pivoted(contract: Mapping[str, Any]) -> tuple[Any, ...]:
    """(symbol, status, delivery_date, then the filter values futures_symbols_* pivot in)."""
    by_type = {f["filterType"]: f for f in contract["filters"]}
    price, lot = by_type.get("PRICE_FILTER"), by_type.get("LOT_SIZE")
    market_lot, percent = by_type.get("MARKET_LOT_SIZE"), by_type.get("PERCENT_PRICE")
    decimals = None if percent is None else percent.get("multiplierDecimal")
    return (
        contract["symbol"],
        contract.get("status", contract.get("contractStatus")),
        datetime.fromtimestamp(contract["deliveryDate"] / 1000, UTC),
        _decimal(price, "tickSize"),
        _decimal(price, "minPrice"),
        _decimal(price, "maxPrice"),
        _decimal(lot, "minQty"),
        _decimal(lot, "maxQty"),
        _decimal(lot, "stepSize"),
        _decimal(market_lot, "minQty"),
        _decimal(market_lot, "maxQty"),
        _decimal(by_type.get("MIN_NOTIONAL"), "notional"),
        _decimal(percent, "multiplierUp"),
        _decimal(percent, "multiplierDown"),
        None if decimals is None else int(decimals),
    )


def row_validity(
    tables: Sequence[dict[str, Entities]],
    instants: Sequence[datetime],
    i: int,
    name: str,
    market: str = "usdm",
) -> tuple[datetime, datetime | None]:
    """When the contract ``name`` of the ``i``-th document and every one of its filters
    were last set (the latest of their versions' starts) and first changed after (the
    earliest end); ``tables``: each document's ``entities``, in the order recorded."""
    filters = f"{market}_symbol_filter_versions"
    keys: list[tuple[str, tuple[Any, ...]]] = [(f"{market}_symbol_versions", (name,))] + [
        (filters, key) for key in tables[i][filters] if key[0] == name
    ]
    starts, ends = [], []
    for table, key in keys:
        values = [t[table].get(key) for t in tables]
        starts.append(max(j for j in range(i + 1) if j == 0 or values[j] != values[j - 1]))
        ends.extend(j for j in range(i + 1, len(tables)) if values[j] != values[i])
    end = min(ends, default=None)
    return instants[max(starts)], None if end is None else instants[end]
