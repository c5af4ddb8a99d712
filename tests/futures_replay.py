"""The real USD-M snapshots replayed through the sim and the poller, and what the tests
expect of them, computed from the documented shape rather than by the product's code."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import orjson
import requests
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from core.ingest import StreamWriter
from core.streams import stream
from poller.job import StreamJob, stream_job
from tests.builders import client_for
from tests.conftest import FIXTURES

USDM_FILES = sorted((FIXTURES / "futures_usdm").glob("*.json"))  # 2021-09-06 .. 2025-10-30


def entities(doc: Mapping[str, Any]) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Each table's entities in a USD-M document, by key, as plain JSON values: computed
    here from the documented shape, not by the product's parser or diff."""
    symbols = doc["symbols"]
    return {
        "usdm_symbol_versions": {
            (s["symbol"],): {k: v for k, v in s.items() if k != "filters"} for s in symbols
        },
        "usdm_symbol_filter_versions": {
            (s["symbol"], f["filterType"]): f for s in symbols for f in s["filters"]
        },
        "usdm_asset_versions": {(a["asset"],): a for a in doc["assets"]},
        "usdm_rate_limit_versions": {
            (r["rateLimitType"], r["interval"], r["intervalNum"]): r for r in doc["rateLimits"]
        },
        "usdm_exchange_filter_versions": {(f["filterType"],): f for f in doc["exchangeFilters"]},
    }


def versions_opened(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Per table, one version per entity in the first file, and one per entity new or
    different in each later file than in the one before."""
    opened: dict[str, int] = {}
    before: dict[str, dict[tuple[Any, ...], Any]] = {}
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
