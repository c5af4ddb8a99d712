"""Where futures versions should live (issue 12): one table per kind with the market in the
key, or a table per market. Both layouts are loaded with the same synthetic history and
compared on what they cost to read and to keep.

History: ``--days`` days of spot (bench/synthetic_history.py's generator on the real
2,292-symbol snapshot: ~1,400 MARKET_LOT_SIZE moves a day and the rest), and the same
generator run on the real USD-M snapshot of 2025-10-30 (625 contracts: every one of them
moves its MARKET_LOT_SIZE daily, so futures are if anything over-represented) and on the
docs-shaped COIN-M one (7 contracts). Typed columns come from the parsers' own maps
(poller.parse, poller.parse_futures): the shared table has the union of spot's and the
futures' columns, the per-market tables only their own. Each table carries the constraints
and indexes every versioned table has (core.models.VersionMixin): primary key (key,
valid_from), the no-overlap exclusion constraint, the unique current version, the
valid_from / valid_to indexes, and on filters the range index.

Figures: database time (EXPLAIN ANALYZE execution time, median and p95 over random
(symbol, instant) pairs) of a single-symbol as-of (symbol row + its filters) per market;
of a whole market as-of (every filter of one market at an instant); and bytes on disk.

    python bench/market_layout.py [--days 365] [--samples 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, Engine, text

from bench._db import bench_engine, fixture
from bench._procs import run
from bench.synthetic_history import OBSERVATIONS_PER_DAY, START, Generator
from binance_sim.state import Market, default_fixture
from core.db import without_time_limits
from poller.parse import FILTER_FIELDS, SYMBOL_FIELDS, filter_row, symbol_row
from poller.parse_futures import (
    FUTURES_FILTER_FIELDS,
    FUTURES_FILTER_TYPE_FIELDS,
    FUTURES_SYMBOL_FIELDS,
    USDM,
    futures_filter_row,
    futures_symbol_row,
)

USDM_SNAPSHOT = "futures_usdm/2025-10-30_625.json"
MARKETS = ("spot", "usdm", "coinm")
SQL_TYPES = {
    "str": "text",
    "int": "integer",
    "intlike": "integer",
    "bool": "boolean",
    "decimal": "numeric",
    "number": "numeric",
    "ms": "timestamptz",
    "strlist": "jsonb",
    "strlistlist": "jsonb",
    "list": "jsonb",
}


def _columns(*maps: Iterable[tuple[str, str]]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for mapping in maps:
        for column, kind in mapping:
            columns.setdefault(column, SQL_TYPES[kind])
    return columns


SPOT_SYMBOL = _columns(SYMBOL_FIELDS.values())
SPOT_FILTER = _columns(FILTER_FIELDS.values())
FUTURES_SYMBOL = _columns([("status", "str")], FUTURES_SYMBOL_FIELDS.values())
FUTURES_FILTER = _columns(FUTURES_FILTER_FIELDS.values(), FUTURES_FILTER_TYPE_FIELDS.values())
ROWS = {
    "spot": (symbol_row, filter_row),
    "usdm": (futures_symbol_row(USDM), futures_filter_row),
    "coinm": (futures_symbol_row(USDM), futures_filter_row),  # status already renamed below
}


@dataclass
class History:
    """One market's closed and current versions, as synthetic_history's generator left them."""

    market: str
    symbols: list[tuple[Any, ...]]
    filters: list[tuple[Any, ...]]


def generate(days: int, seed: int) -> list[History]:
    snapshots = {
        "spot": orjson.loads(fixture("2023-09-08_2292.json").read_bytes()),
        "usdm": orjson.loads(fixture(USDM_SNAPSHOT).read_bytes()),
        "coinm": orjson.loads(default_fixture(Market.COINM)),
    }
    # The generator speaks spot's ``status``; COIN-M's contractStatus is the same column.
    for contract in snapshots["coinm"]["symbols"]:
        contract["status"] = contract.pop("contractStatus")
    histories = []
    for offset, market in enumerate(MARKETS):
        generator = Generator(snapshots[market], seed + offset)
        obs = 0
        for index in range(days):
            obs += OBSERVATIONS_PER_DAY
            if index > 0:
                generator.day(index, obs)
        generator.finish()
        histories.append(History(market, generator.symbol_rows, generator.filter_rows))
    return histories


def _value(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, list) else value


def _copy_rows(
    history: History, kind: str, columns: list[str], with_market: bool
) -> Iterator[tuple[Any, ...]]:
    to_row = ROWS[history.market][0 if kind == "symbol" else 1]
    rows = history.symbols if kind == "symbol" else history.filters
    for *key, valid_from, valid_to, current, closed_by in rows:
        canonical = orjson.dumps(current.source, option=orjson.OPT_SORT_KEYS)
        typed = to_row(current.source)
        yield (
            *([history.market] if with_market else []),
            *key,
            valid_from,
            valid_to,
            canonical[:16],
            current.opened_by,
            closed_by,
            *(_value(typed.get(column)) for column in columns),
            canonical.decode(),
        )


def create(conn: Connection, table: str, key: list[str], columns: dict[str, str]) -> None:
    """A table shaped like a VersionMixin table, without its constraints (added after load)."""
    typed = "".join(f", {name} {sql}" for name, sql in columns.items())
    keys = ", ".join(f"{k} text NOT NULL" for k in key)
    conn.execute(
        text(
            f"CREATE TABLE {table} ({keys}, valid_from timestamptz NOT NULL,"
            " valid_to timestamptz, content_hash bytea NOT NULL, opened_by bigint NOT NULL,"
            f" closed_by bigint{typed}, raw jsonb NOT NULL)"
        )
    )


def constrain(conn: Connection, table: str, key: list[str], range_index: bool) -> None:
    rng = "tstzrange(valid_from, valid_to)"
    keys = ", ".join(key)
    statements = [
        f"ALTER TABLE {table} ADD PRIMARY KEY ({keys}, valid_from)",
        f"ALTER TABLE {table} ADD CHECK (valid_to IS NULL OR valid_to > valid_from)",
        f"ALTER TABLE {table} ADD EXCLUDE USING gist"
        f" ({', '.join(f'{k} WITH =' for k in key)}, ({rng}) WITH &&)",
        f"CREATE UNIQUE INDEX ON {table} ({keys}) WHERE valid_to IS NULL",
        f'CREATE INDEX ON {table} (valid_from, symbol COLLATE "C")',
        f'CREATE INDEX ON {table} (valid_to, symbol COLLATE "C") WHERE valid_to IS NOT NULL',
    ]
    if range_index:
        # The shared table's fair counterpart of the range index leads with the market, so
        # that one market's filters at t are found without reading the others'.
        market = "market, " if key[0] == "market" else ""
        statements.append(f"CREATE INDEX ON {table} USING gist ({market}({rng}))")
    for statement in statements:
        conn.execute(text(statement))


def load_layouts(engine: Engine, histories: list[History]) -> dict[str, float]:
    """Both layouts, loaded with COPY and then constrained; returns seconds per layout."""
    shared_symbol = {**SPOT_SYMBOL, **FUTURES_SYMBOL}
    shared_filter = {**SPOT_FILTER, **FUTURES_FILTER}
    own = {
        "spot": (SPOT_SYMBOL, SPOT_FILTER),
        "usdm": (FUTURES_SYMBOL, FUTURES_FILTER),
        "coinm": (FUTURES_SYMBOL, FUTURES_FILTER),
    }
    plans: list[tuple[str, str, list[str], dict[str, str], list[History], bool]] = [
        ("shared", "shared_symbol_versions", ["market", "symbol"], shared_symbol, histories, True),
        (
            "shared",
            "shared_symbol_filter_versions",
            ["market", "symbol", "filter_type"],
            shared_filter,
            histories,
            True,
        ),
    ]
    for history in histories:
        symbol_columns, filter_columns = own[history.market]
        plans.append(
            (
                "per_market",
                f"{history.market}_layout_symbol_versions",
                ["symbol"],
                symbol_columns,
                [history],
                False,
            )
        )
        plans.append(
            (
                "per_market",
                f"{history.market}_layout_symbol_filter_versions",
                ["symbol", "filter_type"],
                filter_columns,
                [history],
                False,
            )
        )
    seconds = {"shared": 0.0, "per_market": 0.0}
    for layout, table, key, columns, sources, with_market in plans:
        started = time.monotonic()
        kind = "filter" if "filter" in table else "symbol"
        with engine.begin() as conn:
            create(conn, table, key, columns)
        dbapi = engine.raw_connection()
        try:
            names = [*key, "valid_from", "valid_to", "content_hash", "opened_by", "closed_by"]
            names += [*columns, "raw"]
            with (
                dbapi.cursor() as cur,  # type: ignore[attr-defined]
                cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy,
            ):
                for source in sources:
                    for row in _copy_rows(source, kind, list(columns), with_market):
                        copy.write_row(row)
            dbapi.commit()
        finally:
            dbapi.close()
        with engine.begin() as conn, without_time_limits(conn):
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            constrain(conn, table, key, range_index=kind == "filter")
        seconds[layout] += time.monotonic() - started
    with engine.begin() as conn, without_time_limits(conn):
        conn.execute(text("ANALYZE"))  # COPY-only tables: nothing to vacuum
    return seconds


def explain(conn: Connection, sql: str, params: dict[str, Any]) -> tuple[float, str]:
    """Execution time in ms and the index the plan reads (or its first node's type)."""
    plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params).scalar_one()
    node = plan[0]["Plan"]
    while node.get("Plans") and "Index Name" not in node:
        node = node["Plans"][0]
    return float(plan[0]["Execution Time"]), node.get("Index Name", node["Node Type"])


def explain_ms(conn: Connection, sql: str, params: dict[str, Any]) -> float:
    return explain(conn, sql, params)[0]


AT = "tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"


def single_symbol(layout: str, market: str) -> tuple[str, str]:
    if layout == "shared":
        where = f"market = :m AND symbol = :s AND {AT}"
        return (
            f"SELECT * FROM shared_symbol_versions WHERE {where}",
            f"SELECT * FROM shared_symbol_filter_versions WHERE {where}",
        )
    where = f"symbol = :s AND {AT}"
    return (
        f"SELECT * FROM {market}_layout_symbol_versions WHERE {where}",
        f"SELECT * FROM {market}_layout_symbol_filter_versions WHERE {where}",
    )


def whole_market(layout: str, market: str) -> str:
    if layout == "shared":
        return f"SELECT * FROM shared_symbol_filter_versions WHERE market = :m AND {AT}"
    return f"SELECT * FROM {market}_layout_symbol_filter_versions WHERE {AT}"


def samples(
    histories: list[History], days: int, count: int, rng: random.Random
) -> dict[str, list[tuple[str, datetime]]]:
    """Per market, (symbol, instant) pairs where the symbol was listed."""
    end = START + timedelta(days=days)
    found: dict[str, list[tuple[str, datetime]]] = {}
    for history in histories:
        versions = [(row[0], row[1], row[2] or end) for row in history.symbols]
        picked: list[tuple[str, datetime]] = []
        while len(picked) < count:
            symbol, valid_from, valid_to = rng.choice(versions)
            span = (valid_to - valid_from).total_seconds()
            picked.append((symbol, valid_from + timedelta(seconds=rng.uniform(0, span))))
        found[history.market] = picked
    return found


def sizes(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class"
            " WHERE relkind = 'r' AND relname LIKE ANY (ARRAY['shared_%', '%_layout_%'])"
        )
    ).all()
    return {name: int(size) for name, size in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    histories = generate(args.days, args.seed)
    for history in histories:
        print(
            f"{history.market}: {len(history.symbols):,} symbol + "
            f"{len(history.filters):,} filter versions over {args.days} days"
        )
    with bench_engine() as engine:
        loaded = load_layouts(engine, histories)
        print(
            f"load + constraints: shared {loaded['shared']:.1f} s, "
            f"per market {loaded['per_market']:.1f} s"
        )
        picked = samples(histories, args.days, args.samples, rng)
        with engine.connect() as conn:
            print("single-symbol as_of (symbol row + its filters), ms:")
            for market in MARKETS:
                line = f"  {market:<6}"
                for layout in ("shared", "per_market"):
                    symbol_sql, filters_sql = single_symbol(layout, market)
                    times = [
                        explain_ms(conn, symbol_sql, {"m": market, "s": s, "t": t})
                        + explain_ms(conn, filters_sql, {"m": market, "s": s, "t": t})
                        for s, t in picked[market]
                    ]
                    p95 = statistics.quantiles(times, n=20)[-1]
                    line += f"  {layout} median {statistics.median(times):.3f} p95 {p95:.3f}"
                print(line)
            print("whole-market as_of (every filter of the market at t), ms, median of 15:")
            for market in MARKETS:
                line = f"  {market:<6}"
                for layout in ("shared", "per_market"):
                    runs = [
                        explain(conn, whole_market(layout, market), {"m": market, "t": t})
                        for _, t in picked[market][:15]
                    ]
                    indexes = ",".join(sorted({index for _, index in runs}))
                    median = statistics.median(ms for ms, _ in runs)
                    line += f"  {layout} {median:8.2f} ({indexes})"
                print(line)
            on_disk = sizes(conn)
        shared = sum(size for name, size in on_disk.items() if name.startswith("shared_"))
        per_market = sum(size for name, size in on_disk.items() if "_layout_" in name)
        print(
            f"on disk (tables + indexes + TOAST): shared {shared / 2**20:.1f} MiB, "
            f"per market {per_market / 2**20:.1f} MiB ({shared / per_market:.3f}x)"
        )
        for name in sorted(on_disk):
            print(f"  {name:<40} {on_disk[name] / 2**20:8.1f} MiB")


if __name__ == "__main__":
    run(main)
