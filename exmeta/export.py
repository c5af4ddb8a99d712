"""`exmeta export`: a market's rule history as Parquet or CSV files, for backtests.

Like `verify`, it reads with the operator's login rather than through the API: it reads
whole tables, which no route offers. One read-only REPEATABLE READ transaction serves
the three files, so that they describe one state of the history even while a poller
writes; and an export of years may outlast the answer deadline that guards the API's
short reads, hence no time limits on it (core.db.without_time_limits).
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from api.params import binance_spelling
from core import export
from core.clock import utc_now
from core.db import without_time_limits
from core.timeparse import TimeParseError, format_instant, parse_instant
from exmeta.database import read
from exmeta.errors import CliError
from exmeta.settings import configured

FORMATS = ("parquet", "csv")
# Binance's rules have at most 8 decimals and 10 integer digits; 18 of each keeps any
# value exact with room, in one type that every reader (pandas, polars, DuckDB) knows.
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 18
# The change feed of an unbounded window: from before any recorded instant.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Exported:
    name: str  # the file's name without its extension: {market}_{what}
    columns: tuple[export.Column, ...]
    rows: Sequence[Sequence[Any]]


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except TimeParseError as exc:
        raise CliError(f"{name}: {exc}", 2) from None


def _window(args: argparse.Namespace) -> export.Window:
    start, end = _instant(args.start, "--from"), _instant(args.to, "--to")
    if start is not None and end is not None and start >= end:
        raise CliError("--from must be before --to", 2)
    names = [s.strip() for s in args.symbols.split(",")] if args.symbols is not None else None
    if names is not None and not all(names):
        raise CliError("--symbols: a comma-separated list of symbols, e.g. BTCUSDT,ETHUSDT", 2)
    symbols = tuple(dict.fromkeys(binance_spelling(s) for s in names)) if names else None
    return export.Window(start, end, symbols)


def _out_dir(value: Path) -> Path:
    if value.exists() and not value.is_dir():
        raise CliError(f"--out {value}: not a directory", 2)
    try:
        value.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {value}: {exc.strerror}", 2) from None
    return value


def export_history(args: argparse.Namespace) -> int:
    """Write the rules, filter versions and change feed of ``--market`` to ``--out``."""
    window = _window(args)
    out = _out_dir(args.out)
    market = args.market
    end = window.end or utc_now()  # the feed's window, fixed once

    def query(conn: Connection) -> list[Exported]:
        conn.execution_options(isolation_level="REPEATABLE READ")
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        with without_time_limits(conn):
            rules = export.rules_rows(conn, market, window)
            unknown = _unknown_symbols(window, rules)
            if unknown:
                raise CliError(f"--symbols: never listed on {market}: {', '.join(unknown)}", 2)
            feed = export.change_rows(conn, market, window.start or EARLIEST, end, window.symbols)
            return [
                Exported(f"{market}_symbols", export.rules_columns(market), rules),
                Exported(
                    f"{market}_filters",
                    export.filter_columns(market),
                    export.filter_rows(conn, market, window),
                ),
                Exported(f"{market}_changes", export.CHANGE_COLUMNS, feed),
            ]

    tables = read(configured(args), "export", query)
    for table in tables:
        path = out / f"{table.name}.{args.format}"
        (_write_parquet if args.format == "parquet" else _write_csv)(path, table)
        print(f"{path}: {len(table.rows)} rows")
    return 0


def _unknown_symbols(window: export.Window, rules: Iterable[Sequence[Any]]) -> list[str]:
    """Symbols asked for that have no rules in the window: a typo would read as "no rules"."""
    if window.symbols is None:
        return []
    found = {row[0] for row in rules}
    return [s for s in window.symbols if s not in found]


def _replace(path: Path) -> Path:
    """Where a file is written before it takes ``path``'s place: a reader never sees half."""
    return path.with_name(f".{path.name}.partial")


def _write_parquet(path: Path, table: Exported) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        export.TEXT: pa.string(),
        export.INTEGER: pa.int64(),
        export.BOOLEAN: pa.bool_(),
        export.DECIMAL: pa.string(),  # PostgreSQL's exact text, cast below
        export.INSTANT: pa.timestamp("us", tz="UTC"),
        export.TEXTS: pa.list_(pa.string()),
        export.JSON: pa.string(),
    }
    decimal = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
    columns = list(zip(*table.rows, strict=True)) or [() for _ in table.columns]
    arrays = [
        pa.array(_json_texts(values) if kind == export.JSON else values, type=types[kind])
        for (_, kind), values in zip(table.columns, columns, strict=True)
    ]
    arrays = [
        a.cast(decimal) if kind == export.DECIMAL else a
        for a, (_, kind) in zip(arrays, table.columns, strict=True)
    ]
    partial = _replace(path)
    pq.write_table(pa.table(arrays, names=[name for name, _ in table.columns]), partial)
    os.replace(partial, path)


def _json_texts(values: Iterable[Any]) -> list[str | None]:
    """JSON as text: the stored text as it is, Python values (the feed's) encoded."""
    return [
        v if isinstance(v, str) or v is None else orjson.dumps(v, default=str).decode()
        for v in values
    ]


def _csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if kind == export.INSTANT:
        return format_instant(value)
    if kind == export.TEXTS:
        return orjson.dumps(value).decode()
    if kind == export.JSON and not isinstance(value, str):
        return orjson.dumps(value, default=str).decode()
    return value


def _write_csv(path: Path, table: Exported) -> None:
    partial = _replace(path)
    with partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([name for name, _ in table.columns])
        kinds = [kind for _, kind in table.columns]
        writer.writerows(
            [_csv_value(v, k) for v, k in zip(row, kinds, strict=True)] for row in table.rows
        )
    os.replace(partial, path)
