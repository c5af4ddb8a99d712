"""Archived exchangeInfo documents as the import tests read them: each file's instant and
symbols, the answers they expect, and the changes between two documents, worked out
from the files alone (never by the code under test)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api_client import ts
from tests.conftest import TABLES

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One feed change as the test compares it: (entity, key, field, old, new).
FeedChange = tuple[str, str, str, Any, Any]


def instant_of(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=epoch_ms)


def epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    doc: dict[str, Any] = orjson.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    return doc


def assert_rules_are(answer: dict[str, Any], symbol: dict[str, Any], at: datetime) -> None:
    """The API's answer for ``symbol`` at ``at`` holds the file's symbol object."""
    assert answer["symbol"] == symbol["symbol"]
    assert answer["status"] == symbol["status"]
    assert answer["raw"] == {k: v for k, v in symbol.items() if k != "filters"}
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert {k: v["raw"] for k, v in answer["filters"].items()} == filters
    assert answer["valid_from"] <= ts(at)
    assert answer["valid_to"] is None or ts(at) < answer["valid_to"]


def windows(
    documents: list[tuple[datetime, dict[str, Any]]], end: datetime | None = None
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """An instant inside each document's window (to the next one, the last one's to
    ``end``, else 2 s), with the document."""
    last = end if end is not None else documents[-1][0] + timedelta(seconds=2)
    for (at, doc), (after, _) in zip(documents, [*documents[1:], (last, None)], strict=True):
        yield at + (after - at) / 2, doc


# The single-symbol route is asked for every SPREAD-th name of an archive (listed or not)
# at each window: the list route has already checked every symbol there.
SPREAD = 20


def answers_are_the_files(
    client: FlaskClient,
    documents: list[tuple[datetime, dict[str, Any]]],
    end: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Ask the API at an instant inside each document's window (``windows``): the whole
    exchange lists exactly the document's symbols, each with its rules as in the file;
    the single-symbol route, asked for every ``SPREAD``-th symbol any document lists,
    answers the same rules, or 404 where the document does not list it. Yields each answer
    found (the lists' and the single symbols'), for a caller's further checks."""
    every = sorted({s["symbol"] for _, doc in documents for s in doc["symbols"]})
    for at, doc in windows(documents, end=end):
        expected = {s["symbol"]: s for s in doc["symbols"]}
        answer = client.get(f"/v1/symbols?as_of={ts(at)}")
        assert answer.status_code == 200, at
        listed = answer.get_json()
        names = [s["symbol"] for s in listed["symbols"]]
        assert len(names) == len(set(names)), at
        assert set(names) == expected.keys(), at
        for body in listed["symbols"]:
            assert_rules_are(body, expected[body["symbol"]], at)
        yield listed
        for name in every[::SPREAD]:
            answer = client.get(f"/v1/symbols/{name}?as_of={ts(at)}")
            if name not in expected:
                assert answer.status_code == 404, (name, at)
                continue
            assert answer.status_code == 200, (name, at)
            body = answer.get_json()
            assert_rules_are(body, expected[name], at)
            yield body


def _entities(doc: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """A document's entities as the feed names them: (entity, key) to object, a symbol
    without its filters, each filter under ``filter:<symbol>:<type>``."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for s in doc["symbols"]:
        found[("symbol", s["symbol"])] = {k: v for k, v in s.items() if k != "filters"}
        for f in s["filters"]:
            found[("filter", f"{s['symbol']}:{f['filterType']}")] = f
    for r in doc["rateLimits"]:
        key = f"{r['rateLimitType']}:{r['interval']}:{r['intervalNum']}"
        found[("rate_limit", key)] = r
    for f in doc["exchangeFilters"]:
        found[("exchange_filter", f["filterType"])] = f
    return found


def feed_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[FeedChange]:
    """The changes from document ``old`` to ``new``, field by field: a symbol's filters
    under the symbol (``filters.<type>.<field>``); a symbol listed or delisted as one
    change of ``listed`` (with or without its filters); anything else listed likewise."""
    before, after = _entities(old), _entities(new)
    changes: set[FeedChange] = set()
    moved = {
        key for (entity, key) in before.keys() ^ after.keys() if entity == "symbol"
    }  # listed or delisted symbols: their filters go with them
    for entity, key in before.keys() | after.keys():
        a, b = before.get((entity, key)), after.get((entity, key))
        if entity == "filter":
            symbol, ftype = key.split(":", 1)
            if symbol in moved:
                continue
            for name in (a or {}).keys() | (b or {}).keys():
                x, y = (a or {}).get(name), (b or {}).get(name)
                if x != y:
                    changes.add(
                        ("symbol", symbol, f"filters.{ftype}.{name}", _frozen(x), _frozen(y))
                    )
        elif a is None or b is None:
            changes.add((entity, key, "listed", _frozen(a), _frozen(b)))
        else:
            for name in a.keys() | b.keys():
                if a.get(name) != b.get(name):
                    changes.add((entity, key, name, _frozen(a.get(name)), _frozen(b.get(name))))
    return changes


def feed_change(change: Mapping[str, Any]) -> FeedChange:
    """A change of /v1/changes as ``feed_changes`` states it; a listing's filters dropped
    (the test checks that a listing is one change, not what the product attaches)."""
    old, new = change["old"], change["new"]
    if change["field"] == "listed":
        old = {k: v for k, v in old.items() if k != "filters"} if old else None
        new = {k: v for k, v in new.items() if k != "filters"} if new else None
    return (change["entity"], change["key"], change["field"], _frozen(old), _frozen(new))


def _frozen(value: Any) -> Any:
    """A JSON value made hashable (for sets of changes), equal values equal."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS) if value is not None else None


def table_contents(engine: Engine, *, clock: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the tests empty (conftest.TABLES), in a stable order:
    what "the database is unchanged" compares. Without ``clock``, less the columns the
    database's clock fills in (``DEFAULT now()``): what two writes of one history share."""
    with engine.connect() as conn:
        stamped = set(
            conn.execute(
                text(
                    "SELECT table_name || '.' || column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND column_default LIKE 'now()%'"
                )
            ).scalars()
        )
        contents = {}
        for table in TABLES:
            names = conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys()
            columns = [c for c in names if clock or f"{table}.{c}" not in stamped]
            select = f"SELECT {', '.join(columns)} FROM {table}"
            contents[table] = [
                tuple(r) for r in conn.execute(text(f"SELECT * FROM ({select}) t ORDER BY t::text"))
            ]
        return contents
