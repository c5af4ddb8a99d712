"""Two real consecutive days of Binance, replayed through the sim and the poller.

The expected counts are computed here from the raw JSON, independently of the product's
hashing and diffing: symbols compared field by field without their filters, filters
compared by ``filterType``.
"""

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import requests
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from core import history
from core.ingest import StreamWriter
from tests.builders import client_for, exchange_info_job
from tests.conftest import FIXTURES

DAY1 = FIXTURES / "2022-11-28_2124.json"
DAY2 = FIXTURES / "2022-11-29_2124.json"


def independent_diff(day1: dict[str, Any], day2: dict[str, Any]) -> tuple[int, int, list[str]]:
    def own(sym: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sym.items() if k != "filters"}

    def by_type(sym: dict[str, Any]) -> dict[str, Any]:
        return {f["filterType"]: f for f in sym["filters"]}

    a = {s["symbol"]: s for s in day1["symbols"]}
    b = {s["symbol"]: s for s in day2["symbols"]}
    symbol_versions = sum(1 for name, s in b.items() if name not in a or own(a[name]) != own(s))
    filter_versions = 0
    for name, s in b.items():
        old = by_type(a[name]) if name in a else {}
        filter_versions += sum(1 for ftype, f in by_type(s).items() if old.get(ftype) != f)
    halted = sorted(
        name
        for name, s in b.items()
        if name in a and a[name]["status"] == "TRADING" and s["status"] == "BREAK"
    )
    return symbol_versions, filter_versions, halted


def put_document(sim: SimServer, raw: bytes) -> None:
    response = requests.put(
        f"{sim.url}/_sim/exchange-info",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_two_real_days_create_exactly_the_true_differences(engine: Engine, sim: SimServer) -> None:
    raw1, raw2 = DAY1.read_bytes(), DAY2.read_bytes()
    expected_symbols, expected_filters, halted = independent_diff(
        orjson.loads(raw1), orjson.loads(raw2)
    )
    assert len(halted) == 16  # the fixture's documented TRADING -> BREAK transitions

    client = client_for(sim.url, timeout_seconds=30)
    job = exchange_info_job(client, StreamWriter(engine, "exchange_info"), "replay")

    put_document(sim, raw1)
    first = job.run()
    assert first.outcome == "changed"
    time.sleep(0.02)
    between = datetime.now(UTC)
    time.sleep(0.02)
    put_document(sim, raw2)
    second = job.run()
    assert second.outcome == "changed"

    with engine.connect() as conn:
        opened = dict(
            conn.execute(
                text(
                    "SELECT 'symbols', count(*) FROM symbol_versions WHERE opened_by = :o"
                    " UNION ALL SELECT 'filters', count(*) FROM symbol_filter_versions WHERE opened_by = :o"
                ),
                {"o": second.observation_id},
            ).all()
        )
        assert opened == {"symbols": expected_symbols, "filters": expected_filters}

        transitions = (
            conn.execute(
                text(
                    "SELECT new.symbol FROM symbol_versions new JOIN symbol_versions old"
                    " ON old.symbol = new.symbol AND old.valid_to = new.valid_from"
                    " WHERE old.status = 'TRADING' AND new.status = 'BREAK' ORDER BY new.symbol"
                )
            )
            .scalars()
            .all()
        )
        assert transitions == halted

        entries = history.symbol_history(conn, halted[0], None, None, limit=1000).entries
        assert [(c.old, c.new) for c in entries[-1].changes if c.field == "status"] == [
            ("TRADING", "BREAK")
        ]

        day1 = {s["symbol"]: s for s in orjson.loads(raw1)["symbols"]}
        for rules in history.symbols_as_of(conn, between):
            source = day1[rules.symbol.fields["symbol"]]
            assert rules.symbol.fields["status"] == source["status"]
            assert {t: v.raw for t, v in rules.filters.items()} == {
                f["filterType"]: f for f in source["filters"]
            }


def test_replaying_the_same_snapshot_twice_adds_no_versions(engine: Engine, sim: SimServer) -> None:
    client = client_for(sim.url, timeout_seconds=30)
    job = exchange_info_job(client, StreamWriter(engine, "exchange_info"), "replay")
    put_document(sim, DAY1.read_bytes())
    job.run()
    with engine.connect() as conn:
        before = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM symbol_versions) + (SELECT count(*) FROM symbol_filter_versions)"
            )
        ).scalar_one()
    assert job.run().outcome == "unchanged"
    put_document(sim, DAY1.read_bytes())  # re-uploaded: same content, new serialisation
    assert job.run().outcome == "unchanged"
    with engine.connect() as conn:
        after = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM symbol_versions) + (SELECT count(*) FROM symbol_filter_versions)"
            )
        ).scalar_one()
    assert after == before
