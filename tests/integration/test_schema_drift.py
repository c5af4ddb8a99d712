"""API-shape drift: replaying real spot snapshots records each path Binance started or
stopped sending, in the feed (entity ``schema``), in /v1/schema as of t and in /metrics."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

import migrations
from api import create_app, schemas
from core.config import DatabaseSettings, Settings
from core.db import create_db_engine
from core.ingest import canonical_entity
from exmeta.cli import main
from tests.api_client import error, ok, ts
from tests.builders import (
    account_document,
    at,
    exchange_info,
    record_exchange_info,
    record_failure,
    record_stream,
    symbol,
)
from tests.conftest import DatabaseServer
from tests.schema_paths import paths_of

DRIFT = Path(__file__).parent.parent / "fixtures" / "drift"
SPOT = sorted(DRIFT.glob("spot_*.json"))  # 2022-09-22 .. 2023-09-08, in time order
TIMES = [at(f"{p.name[5:15]}T12:00:00") for p in SPOT]
NOW = TIMES[-1] + timedelta(days=1)
VIEW_COLUMNS = "changed_at, observed_before, observation_id, stream, entity, key, field, old, new"


def replay(engine: Engine) -> list[dict[str, set[str]]]:
    shapes = []
    for path, when in zip(SPOT, TIMES, strict=True):
        body = path.read_bytes()
        assert record_exchange_info(engine, body, when).outcome == "changed"
        shapes.append(paths_of(json.loads(body)))
    return shapes


def expected_changes(old: dict[str, set[str]], new: dict[str, set[str]]) -> set[Any]:
    """What changed between two shapes, as (key, field, old, new) of the feed."""
    found: set[Any] = set()
    for path in old.keys() | new.keys():
        key = f"exchange_info:{path}"
        before, after = old.get(path), new.get(path)
        if before is None or after is None:
            found.add((key, "listed", _types(before), _types(after)))
        elif before != after:
            found.add((key, "types", tuple(sorted(before)), tuple(sorted(after))))
    return found


def _types(types: set[str] | None) -> Any:
    return None if types is None else (("types", tuple(sorted(types))),)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(value)
    return value


def feed(engine: Engine, *extra: str) -> list[dict[str, Any]]:
    client = create_app(Settings(), engine, clock=lambda: NOW).test_client()
    query = "&".join((f"from={ts(TIMES[0])}", f"to={ts(NOW)}", *extra))
    return list(ok(client.get(f"/v1/changes?{query}"), schemas.ChangeFeed)["changes"])


def test_replaying_real_spot_snapshots_lists_each_shape_change_in_the_feed(
    engine: Engine, api_engine: Engine
) -> None:
    shapes = replay(engine)
    changes = [c for c in feed(api_engine, "schema=true") if c["entity"] == "schema"]
    assert {c["stream"] for c in changes} == {"exchange_info"}
    for i, when in enumerate(TIMES):
        seen = {
            (c["key"], c["field"], _hashable(c["old"]), _hashable(c["new"]))
            for c in changes
            if c["changed_at"] == ts(when)
        }
        assert seen == expected_changes(shapes[i - 1] if i else {}, shapes[i]), SPOT[i].name
    # The drift that broke clients: NOTIONAL came in 2023-04, MIN_NOTIONAL went by 2023-09.
    listed = {(c["key"], c["changed_at"]) for c in changes if c["old"] is None}
    assert ("exchange_info:symbols[].filters[NOTIONAL]", ts(TIMES[3])) in listed
    delisted = {(c["key"], c["changed_at"]) for c in changes if c["new"] is None}
    assert ("exchange_info:symbols[].filters[MIN_NOTIONAL]", ts(TIMES[4])) in delisted


def test_the_feed_lists_shape_changes_only_when_asked(engine: Engine, api_engine: Engine) -> None:
    replay(engine)
    assert feed(api_engine)
    assert not [c for c in feed(api_engine) if c["entity"] == "schema"]
    assert not [c for c in feed(api_engine, "schema=true", "stream=system_status")]


def test_the_schema_as_of_an_instant_is_the_shape_of_the_document_then(
    engine: Engine, api_engine: Engine
) -> None:
    shapes = replay(engine)
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    between = TIMES[3] + timedelta(hours=1)
    body = ok(client.get(f"/v1/schema?as_of={ts(between)}"), schemas.SchemaAsOf)
    assert {p["path"]: set(p["types"]) for p in body["paths"]} == shapes[3]
    assert body["evidence"]["observed_before"] == ts(TIMES[3])
    notional = {p["path"]: p for p in body["paths"]}["symbols[].filters[NOTIONAL]"]
    assert (notional["valid_from"], notional["valid_to"]) == (ts(TIMES[3]), None)
    now = ok(client.get("/v1/schema?stream=exchange_info"), schemas.SchemaAsOf)
    assert {p["path"] for p in now["paths"]} == shapes[-1].keys()
    before = ts(TIMES[0] - timedelta(seconds=1))
    error(client.get(f"/v1/schema?as_of={before}"), 404, "not_observed")
    error(client.get("/v1/schema?stream=account"), 400, "invalid_parameter")


def test_metrics_count_the_shape_changes_of_each_stream(engine: Engine, api_engine: Engine) -> None:
    shapes = replay(engine)
    response = create_app(Settings(), api_engine, clock=lambda: NOW).test_client().get("/metrics")
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    expected = sum(len(expected_changes(a, b)) for a, b in pairwise(shapes))
    assert expected > 0
    assert samples[("exmeta_schema_changes_total", (("stream", "exchange_info"),))] == expected


def test_the_diff_compares_the_shapes_of_two_instants(engine: Engine, api_engine: Engine) -> None:
    shapes = replay(engine)
    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    body = ok(client.get(f"/v1/diff?from={ts(TIMES[0])}"), schemas.StateDiff)
    old, new = shapes[0], shapes[-1]
    assert body["schema"] == {
        "added": sorted(f"exchange_info:{p}" for p in new.keys() - old.keys()),
        "removed": sorted(f"exchange_info:{p}" for p in old.keys() - new.keys()),
        "changed": [
            {
                "key": f"exchange_info:{p}",
                "changes": [{"field": "types", "old": sorted(old[p]), "new": sorted(new[p])}],
            }
            for p in sorted(old.keys() & new.keys())
            if old[p] != new[p]
        ],
    }
    assert "exchange_info:symbols[].filters[NOTIONAL]" in body["schema"]["added"]


def current_paths(engine: Engine, stream: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT path FROM schema_versions WHERE stream = :s AND valid_to IS NULL"),
            {"s": stream},
        )
        return {r[0] for r in rows}


def test_a_stream_writes_and_closes_only_its_own_paths(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), TIMES[0])
    spot = current_paths(engine, "exchange_info")
    record_stream(engine, "system_status", {"status": 0, "msg": "normal"}, TIMES[1])
    assert current_paths(engine, "system_status") == {"status", "msg"}
    assert current_paths(engine, "exchange_info") == spot
    record_stream(engine, "account", account_document(), TIMES[1])
    assert current_paths(engine, "account") == set()  # private: not recorded


def test_a_failed_or_invalid_body_changes_no_path(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), TIMES[0])
    paths = current_paths(engine, "exchange_info")
    record_failure(engine, TIMES[1])
    invalid = record_exchange_info(engine, b'{"symbols": [{"symbol": "X"}]}', TIMES[2])
    assert invalid.outcome == "error"
    assert current_paths(engine, "exchange_info") == paths


def test_the_analysts_views_say_what_the_api_says(engine: Engine, api_engine: Engine) -> None:
    shapes = replay(engine)
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    between = TIMES[3] + timedelta(hours=1)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE exmeta_reader")
        rows = conn.execute(
            f"SELECT {VIEW_COLUMNS} FROM schema_changes ORDER BY changed_at, entity, key, field"
        ).fetchall()
        then = conn.execute("SELECT path, types FROM schema_as_of(%s)", (between,)).fetchall()
        now = conn.execute("SELECT path FROM schema_current").fetchall()
    names = [c.strip() for c in VIEW_COLUMNS.split(",")]
    view = [
        {n: ts(v) if isinstance(v, datetime) else v for n, v in zip(names, r, strict=True)}
        for r in rows
    ]
    assert view == [c for c in feed(api_engine, "schema=true") if c["entity"] == "schema"]
    assert {path: set(types) for path, types in then} == shapes[3]
    assert {r[0] for r in now} == shapes[-1].keys()


def test_the_cli_lists_shape_changes_when_asked(
    engine: Engine,
    api_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    replay(engine)
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    window = ("--from", ts(TIMES[0]), "--to", ts(NOW), "--json")

    def printed(*args: str) -> list[dict[str, Any]]:
        assert main(["changes", *args, *window]) == 0
        return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]

    with_schema = printed("--schema")
    assert with_schema == feed(api_engine, "schema=true")
    assert {c["entity"] for c in with_schema} >= {"schema", "symbol"}
    assert printed() == feed(api_engine)


def test_an_empty_delist_schedule_keeps_the_paths_of_its_entries(engine: Engine) -> None:
    entry = {"delistTime": 1_700_000_000_000, "symbols": ["ABCUSDT"]}
    record_stream(engine, "delistings", [entry], TIMES[0])
    paths = {"[]", "[].delistTime", "[].symbols", "[].symbols[]"}
    assert current_paths(engine, "delistings") == paths
    record_stream(engine, "delistings", [], TIMES[1])
    assert current_paths(engine, "delistings") == paths
    record_stream(engine, "delistings", [{**entry, "symbols": []}], TIMES[2])
    assert current_paths(engine, "delistings") == paths  # one entry's empty list: unseen
    record_stream(engine, "delistings", [{**entry, "symbols": []}] * 2, TIMES[3])
    assert current_paths(engine, "delistings") == paths - {"[].symbols[]"}


def test_after_the_upgrade_the_next_poll_records_the_shape_of_an_unchanged_body(
    pg_server: DatabaseServer,
) -> None:
    engine = create_db_engine(pg_server.create_database("exmeta_drift"), DatabaseSettings())
    body = orjson.dumps({"status": 0, "msg": "normal"})
    status = canonical_entity(orjson.loads(body))
    try:
        migrations.upgrade(engine, "0101")
        with engine.begin() as conn:
            obs = conn.execute(
                text(
                    "INSERT INTO observations (stream, replica_id, observed_at, requested_at,"
                    " duration_ms, outcome) VALUES ('system_status', 'old', :t, :t, 1, 'changed')"
                    " RETURNING id"
                ),
                {"t": TIMES[0]},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO system_status_versions (system, valid_from, status, message,"
                    " raw, content_hash, opened_by) VALUES ('binance', :t, 0, 'normal',"
                    " CAST(:raw AS jsonb), :hash, :obs)"
                ),
                {
                    "t": TIMES[0],
                    "raw": status.canonical.decode(),
                    "hash": status.content_hash,
                    "obs": obs,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO stream_heads (stream, last_applied_at, last_observation_id,"
                    " last_body_sha256, state_observation_id)"
                    " VALUES ('system_status', :t, :obs, :sha, :obs)"
                ),
                {"t": TIMES[0], "obs": obs, "sha": hashlib.sha256(body).digest()},
            )
        migrations.upgrade(engine)
        recorded = record_stream(engine, "system_status", orjson.loads(body), TIMES[1])
        assert recorded.opened == {"schema_versions": 2}
        assert current_paths(engine, "system_status") == {"status", "msg"}
        again = record_stream(engine, "system_status", orjson.loads(body), TIMES[2])
        assert again.outcome == "unchanged"
    finally:
        engine.dispose()
