"""An import's next batch planned while the current one is written (core.ingest._Foresight)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

import poller.archive
from core.ingest import Recorded, Snapshot, StreamWriter
from poller.archive import Joined, plan_import, read_documents, write_documents
from poller.parse import parse_exchange_info
from tests.archives import load, table_contents
from tests.builders import (
    answered,
    at,
    exchange_info,
    exchange_info_answered,
    record_exchange_info,
    symbol,
)
from tests.conftest import FIXTURES, TABLES

T0 = at("2024-01-01T00:00:00")


def minutes(n: int) -> Any:
    return T0 + timedelta(minutes=n)


def btc(max_qty: str) -> dict[str, Any]:
    return symbol("BTCUSDT", market_max_qty=max_qty)


ETH = symbol("ETHUSDT")
# The first batch; then the one planned while it is written: a change, a Binance error
# body (planned ahead in vain, refused in its turn), the same body again (unchanged without
# a parse: the document after it was planned on a state the writer never holds, and is
# planned again), a change, and a document dated before the last applied one (stale).
FIRST = [
    exchange_info_answered(exchange_info(btc("2.0"), ETH), minutes(1)),
    exchange_info_answered(exchange_info(btc("3.0"), ETH), minutes(2)),
]
_REMOVED = exchange_info_answered(exchange_info(btc("3.0")), minutes(3))
SECOND = [
    _REMOVED,
    answered("exchange_info", b'{"code":-1003,"msg":"Too many requests."}', minutes(4)),
    answered("exchange_info", _REMOVED.body or b"", minutes(5)),
    exchange_info_answered(exchange_info(btc("4.0"), ETH), minutes(6)),
    exchange_info_answered(exchange_info(btc("5.0")), minutes(6) - timedelta(seconds=1)),
    exchange_info_answered(exchange_info(btc("6.0")), minutes(7)),
]


def emptied(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


class ParsedWhere:
    """parse_exchange_info, noting which thread parsed each body."""

    def __init__(self) -> None:
        self.threads: dict[bytes, set[str]] = {}

    def __call__(self, body: bytes) -> Snapshot:
        self.threads.setdefault(body, set()).add(threading.current_thread().name)
        return parse_exchange_info(body)


def history(
    engine: Engine, write: Callable[[StreamWriter, ParsedWhere], list[Recorded]]
) -> tuple[list[tuple[str, dict[str, int], dict[str, int]]], Any, ParsedWhere]:
    """What ``write`` records after the first document, from an empty database (ids
    restart, so two histories written alike are equal row for row)."""
    emptied(engine)
    record_exchange_info(engine, exchange_info(btc("1.0"), ETH), T0)
    parsed = ParsedWhere()
    writer = StreamWriter(engine, "exchange_info")
    try:
        recorded = write(writer, parsed)
    finally:
        writer.close()
    return (
        [(r.outcome, r.opened, r.closed) for r in recorded],
        table_contents(engine, clock=False),
        parsed,
    )


def foresight_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("foresight-")]


def test_documents_planned_ahead_write_the_history_planned_in_turn_would(engine: Engine) -> None:
    def in_turn(writer: StreamWriter, parse: ParsedWhere) -> list[Recorded]:
        return writer.record_many(FIRST, parse) + writer.record_many(SECOND, parse)

    def ahead(writer: StreamWriter, parse: ParsedWhere) -> list[Recorded]:
        return writer.record_many(FIRST, parse, SECOND) + writer.record_many(SECOND, parse)

    expected, rows, plain = history(engine, in_turn)
    assert [o for o, _, _ in expected] == [
        *("changed", "changed"),
        *("changed", "error", "unchanged", "changed", "stale", "changed"),
    ]
    assert {t for threads in plain.threads.values() for t in threads} == {"MainThread"}

    outcomes, ahead_rows, parsed = history(engine, ahead)
    assert outcomes == expected
    assert ahead_rows == rows
    # The second batch was parsed while the first was written, on the foresight's thread.
    # Its first document's plan was used. The error body is met again in its turn; so are
    # the documents after the repeated body and after the stale one: each was planned on
    # a state that the one before it, skipped in its turn, never left.
    ahead, both = {"foresight-exchange_info"}, {"foresight-exchange_info", "MainThread"}
    assert [parsed.threads[f.body or b""] for f in SECOND] == [
        ahead,
        both,
        ahead,
        both,
        ahead,
        both,
    ]
    assert foresight_threads() == []


def test_a_batch_that_fails_stops_its_planning_ahead_and_writes_nothing(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(btc("1.0"), ETH), T0)
    before = table_contents(engine)
    refuse = (
        "CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
    )
    with engine.begin() as conn:
        conn.execute(text(refuse.replace("pg_temp.", "")))
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON symbol_filter_versions"
                " FOR EACH STATEMENT EXECUTE FUNCTION refuse()"
            )
        )
    writer = StreamWriter(engine, "exchange_info")
    try:
        with pytest.raises(Exception, match="refused by the test"):
            writer.record_many(FIRST, parse_exchange_info, SECOND)
        assert foresight_threads() == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse ON symbol_filter_versions"))
            conn.execute(text("DROP FUNCTION refuse()"))
    assert table_contents(engine) == before
    # The writer starts again from the database, and the batch goes in.
    recorded = writer.record_many(FIRST, parse_exchange_info)
    assert [r.outcome for r in recorded] == ["changed", "changed"]


def thinned_archive(into: Path) -> Path:
    """The seven real spot snapshots in ``into``, each with every 8th of the symbols any
    of them lists (by name), so that they share, change, list and delist some."""
    paths = [*(FIXTURES / "archive").glob("*.json.gz"), *FIXTURES.glob("2022-11-2?_2124.json")]
    docs = [load(path) for path in paths]
    kept = set(sorted({s["symbol"] for doc in docs for s in doc["symbols"]})[::8])
    for path, doc in zip(paths, docs, strict=True):
        doc["symbols"] = [s for s in doc["symbols"] if s["symbol"] in kept]
        (into / path.name.removesuffix(".gz")).write_bytes(orjson.dumps(doc))
    return into


@pytest.mark.parametrize("before_history", [False, True], ids=["appended", "prepended"])
def test_an_import_in_batches_planned_ahead_writes_what_one_batch_would(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, before_history: bool
) -> None:
    """The real archive (7 documents, every 8th symbol of each: what is compared is two
    ways of writing the same documents) in batches of two, each planned while the one
    before is written, after the stream's history or before it (core.ingest.Prepending)."""
    documents = read_documents([thinned_archive(tmp_path)], None, stream="exchange_info")
    source = "https://api.binance.com:443"

    def imported(batch: int) -> tuple[list[Any], Any, int]:
        emptied(engine)
        if before_history:  # a first observation after the archive's last document
            record_exchange_info(engine, exchange_info(btc("1.0"), ETH), T0)
        monkeypatch.setattr(poller.archive, "IMPORT_BATCH", batch)
        with engine.connect() as conn:
            plan = plan_import(conn, "exchange_info", source, documents)
        assert plan.prepend is before_history
        assert len(plan.documents) == 7
        parse = ParsedWhere()
        written = write_documents(engine, "exchange_info", parse, source, plan)
        said = [r.closed if isinstance(r, Joined) else (r.outcome, r.opened) for r in written]
        ahead = sum("foresight-exchange_info" in t for t in parse.threads.values())
        return said, table_contents(engine, clock=False), ahead

    said, contents, ahead = imported(2)
    assert ahead == 5  # every batch but the first was planned ahead
    assert (said, contents, 0) == imported(len(documents))
    assert foresight_threads() == []
