"""The analysts' SQL: README's examples run as ``exmeta_reader`` and say what they should.

The examples are read from README.md itself, so the documentation cannot drift from the
schema; the role is checked to read and nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from tests.builders import at, exchange_info, record_exchange_info, symbol

README = Path(__file__).resolve().parents[2] / "README.md"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.DOTALL | re.MULTILINE)
STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


def readme_sql_blocks() -> list[str]:
    return SQL_BLOCK.findall(README.read_text(encoding="utf-8"))


def statements(block: str) -> list[str]:
    return [s.strip() for s in STATEMENT_END.split(block) if s.strip()]


def record_story(engine: Engine) -> None:
    """The data README's examples describe: a tick size change and a halt at noon."""
    record_exchange_info(
        engine, exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT")), at("2024-05-01T00:00:00")
    )
    record_exchange_info(
        engine,
        exchange_info(symbol("BTCUSDT", tick_size="0.10000000"), symbol("ETHUSDT", status="BREAK")),
        at("2024-05-01T12:00:00"),
    )


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
    [versions] = results["-- every version of one filter: the raw tables hold the whole history"]
    assert [r[2] for r in versions] == [Decimal("0.01000000"), Decimal("0.10000000")]
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
        "CREATE TABLE public.scratch (x int)",
    ],
)
def test_the_reader_role_is_refused_writes_and_internals(
    reader: psycopg.Connection[Any], statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(statement)
