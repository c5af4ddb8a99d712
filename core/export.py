"""History out, for backtests: a market's rules as rows with validity ranges (issue 15).

A symbol's rules at t are its own version and its filters' versions in force at t
(core.history.symbol_as_of). Those change at different instants, so a "rules version"
here is a stretch between two consecutive instants at which any of them opened or
closed: one row per stretch, with the symbol's typed columns and the most-asked filter
values pivoted in (as the analysts' ``symbols_as_of`` does), so that a trade joins to
exactly one row by ``valid_from <= t < valid_to`` without knowing that filters are
versioned apart from symbols. Ranges are the versions' own, never clipped to the window:
the row in force at ``--from`` starts before it, and an as-of join needs that row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import ARRAY, Boolean, Connection, DateTime, Integer, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB

from core.changes import window_changes
from core.history import layout
from core.models import VERSIONED_TABLES
from core.streams import feed_streams

# The kinds of values a column holds, which each file format spells in its own way.
TEXT, INTEGER, BOOLEAN, DECIMAL, INSTANT, TEXTS, JSON = (
    "text",
    "integer",
    "boolean",
    "decimal",
    "instant",
    "texts",
    "json",
)

Column = tuple[str, str]  # (name, kind)

# pivoted column -> the filter types to take it from, in order of preference, and field.
# Spot's minimum notional is NOTIONAL's, or MIN_NOTIONAL's on symbols from before
# 2023-08; a contract's is MIN_NOTIONAL's ``notional`` (as migrations 0040 and 0180 say).
SPOT_PIVOT: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("tick_size", ("PRICE_FILTER",), "tick_size"),
    ("min_price", ("PRICE_FILTER",), "min_price"),
    ("max_price", ("PRICE_FILTER",), "max_price"),
    ("step_size", ("LOT_SIZE",), "step_size"),
    ("min_qty", ("LOT_SIZE",), "min_qty"),
    ("max_qty", ("LOT_SIZE",), "max_qty"),
    ("market_min_qty", ("MARKET_LOT_SIZE",), "min_qty"),
    ("market_max_qty", ("MARKET_LOT_SIZE",), "max_qty"),
    ("min_notional", ("NOTIONAL", "MIN_NOTIONAL"), "min_notional"),
    ("max_notional", ("NOTIONAL",), "max_notional"),
)
FUTURES_PIVOT = (
    *SPOT_PIVOT[:8],
    ("min_notional", ("MIN_NOTIONAL",), "notional"),
)


def pivot(market: str) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    return SPOT_PIVOT if market == "spot" else FUTURES_PIVOT


def _kind(column: Any) -> str:
    kinds: tuple[tuple[type, str], ...] = (
        (Numeric, DECIMAL),
        (DateTime, INSTANT),
        (Boolean, BOOLEAN),
        (Integer, INTEGER),  # SmallInteger and BigInteger are Integers
        (ARRAY, TEXTS),
        (JSONB, JSON),
    )
    return next((kind for t, kind in kinds if isinstance(column.type, t)), TEXT)


def _typed(table: str, names: Sequence[str]) -> tuple[Column, ...]:
    columns = VERSIONED_TABLES[table].__table__.c  # type: ignore[attr-defined]
    return tuple((n, _kind(columns[n])) for n in names)


def _select(alias: str, columns: Sequence[Column]) -> str:
    """JSON and decimals as PostgreSQL's text: every format carries it unchanged, and a
    numeric's text ("0.00000100", exact, never an exponent) converts to a file's decimal
    type far faster than a Python Decimal does (bench/export.py)."""
    return ", ".join(
        f"{alias}.{n}::text" if k in (JSON, DECIMAL) else f"{alias}.{n}" for n, k in columns
    )


VALIDITY = (("valid_from", INSTANT), ("valid_to", INSTANT))


def rules_columns(market: str) -> tuple[Column, ...]:
    shape = layout(market)
    own = _typed(shape.symbols, shape.symbol_fields)
    return (*own, *((name, DECIMAL) for name, _, _ in pivot(market)), *VALIDITY)


def filter_columns(market: str) -> tuple[Column, ...]:
    shape = layout(market)
    typed = _typed(shape.filters, shape.filter_fields)
    return (("symbol", TEXT), ("filter_type", TEXT), *typed, *VALIDITY, ("raw", JSON))


CHANGE_COLUMNS: tuple[Column, ...] = (
    ("changed_at", INSTANT),
    ("stream", TEXT),
    ("entity", TEXT),
    ("key", TEXT),
    ("field", TEXT),
    ("old", JSON),
    ("new", JSON),
    ("observation_id", INTEGER),
    ("observed_before", INSTANT),
)


@dataclass(frozen=True, slots=True)
class Window:
    """Versions in force at some instant of ``[start, end)``; None: unbounded."""

    start: datetime | None
    end: datetime | None
    symbols: tuple[str, ...] | None

    def overlaps(self, alias: str) -> str:
        conditions = ["TRUE"]
        if self.end is not None:
            conditions.append(f"{alias}.valid_from < :end")
        if self.start is not None:
            conditions.append(f"({alias}.valid_to IS NULL OR {alias}.valid_to > :start)")
        if self.symbols is not None:
            conditions.append(f"{alias}.symbol = ANY(:symbols)")
        return " AND ".join(conditions)

    def holds(self, start: datetime, end: datetime | None) -> bool:
        """Whether ``[start, end)`` overlaps the window (the SQL of ``overlaps``)."""
        return (self.end is None or start < self.end) and (
            self.start is None or end is None or end > self.start
        )

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "symbols": list(self.symbols or ())}


def rules_rows(conn: Connection, market: str, window: Window) -> list[tuple[Any, ...]]:
    """One row per stretch of unchanged rules of each symbol, laid out as
    ``rules_columns(market)`` (decimals and JSON as text), ordered by symbol and valid_from.

    The stretches start wherever a symbol or filter version opens or closes; a filter
    closing without a successor ends a stretch too (the symbol lost that rule). Built by
    one pass over each symbol's versions in time order, read once each: the same answer
    as a lookup of the versions in force at each stretch's start, which cost ~100 µs a
    stretch in SQL (a year of spot is ~500,000 stretches; bench/export.py).
    """
    shape = layout(market)
    own = _typed(shape.symbols, shape.symbol_fields)
    wanted = pivot(market)
    fields = sorted({field for _, _, field in wanted})
    listed = f"SELECT s.symbol FROM {shape.symbols} s WHERE {window.overlaps('s')}"
    symbols = conn.execute(
        text(
            f"SELECT {_select('s', own)}, s.valid_from, s.valid_to FROM {shape.symbols} s"
            f" WHERE {window.overlaps('s')} ORDER BY s.symbol, s.valid_from"
        ),
        window.params,
    ).all()
    filters: dict[str, list[Sequence[Any]]] = defaultdict(list)
    for row in conn.execute(
        text(
            f"SELECT f.symbol, f.filter_type, f.valid_from, f.valid_to,"
            f" {', '.join(f'f.{n}::text' for n in fields)} FROM {shape.filters} f"
            f" WHERE f.symbol IN ({listed}) ORDER BY f.symbol, f.valid_from"
        ),
        window.params,
    ).all():
        filters[row[0]].append(row)
    where = {name: [(t, 4 + fields.index(field)) for t in types] for name, types, field in wanted}
    rows: list[tuple[Any, ...]] = []
    for symbol, versions in groupby(symbols, key=lambda r: r[0]):
        rows.extend(_stretches(list(versions), filters.get(symbol, []), where, window))
    return rows


def _stretches(
    versions: list[Sequence[Any]],
    filters: list[Sequence[Any]],
    where: dict[str, list[tuple[str, int]]],
    window: Window,
) -> Iterator[tuple[Any, ...]]:
    """One symbol's stretches: ``versions`` are its own (typed fields, valid_from,
    valid_to), ``filters`` (symbol, type, valid_from, valid_to, fields...) in time order.

    A walk over the instants at which anything opens or closes, keeping what is in force
    by kind (the symbol's own version under ``""``, each filter type under its name): a
    stretch costs the versions that change at its start, not a look at every kind."""
    opened: dict[datetime, list[tuple[str, Sequence[Any]]]] = defaultdict(list)
    closed: dict[datetime, list[str]] = defaultdict(list)
    for v in versions:
        opened[v[-2]].append(("", v))
        if v[-1] is not None:
            closed[v[-1]].append("")
    for f in filters:
        opened[f[2]].append((f[1], f))
        if f[3] is not None:
            closed[f[3]].append(f[1])
    bounds = sorted(opened.keys() | closed.keys())
    current: dict[str, Sequence[Any]] = {}
    for i, start in enumerate(bounds):
        for kind in closed.get(start, ()):  # a successor opening at the same instant wins
            del current[kind]
        for kind, row in opened.get(start, ()):
            current[kind] = row
        own = current.get("")
        if own is None:
            continue  # not listed then
        end = bounds[i + 1] if i + 1 < len(bounds) else None
        if not window.holds(start, end):
            continue
        values = [
            next((current[t][n] for t, n in sources if t in current and current[t][n]), None)
            for sources in where.values()
        ]
        yield (*own[:-2], *values, start, end)


def filter_rows(conn: Connection, market: str, window: Window) -> list[Sequence[Any]]:
    """Every filter version of the window, laid out as ``filter_columns(market)`` (decimals
    and JSON as text)."""
    shape = layout(market)
    columns = filter_columns(market)
    sql = (
        f"SELECT {_select('f', columns)} FROM {shape.filters} f WHERE {window.overlaps('f')}"
        " ORDER BY symbol, filter_type, valid_from"
    )
    return list(conn.execute(text(sql), window.params).all())


def change_rows(
    conn: Connection, market: str, start: datetime, end: datetime, symbols: Sequence[str] | None
) -> list[tuple[Any, ...]]:
    """The change feed of ``market``'s public streams in ``[start, end)``, laid out as
    ``CHANGE_COLUMNS`` (old and new as Python values), in the feed's order; with
    ``symbols``, only those symbols' changes."""
    return [
        (
            c.changed_at,
            c.stream,
            c.entity,
            c.key,
            c.field,
            c.old,
            c.new,
            c.observation_id,
            c.observed_before,
        )
        for c in window_changes(conn, start, end, streams=feed_streams(market), symbols=symbols)
    ]
