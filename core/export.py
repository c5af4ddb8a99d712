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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Boolean, Connection, DateTime, Integer, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB

from core.changes import changes
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

CHANGES_PAGE = 10_000

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

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "symbols": list(self.symbols or ())}


def _pivot_sql(market: str) -> str:
    def one(filter_type: str, field: str) -> str:
        return f"max(fv.{field}) FILTER (WHERE fv.filter_type = '{filter_type}')"

    return ", ".join(
        f"coalesce({', '.join(one(t, field) for t in types)})::text AS {name}"
        for name, types, field in pivot(market)
    )


def rules_rows(conn: Connection, market: str, window: Window) -> list[Sequence[Any]]:
    """One row per stretch of unchanged rules of each symbol, laid out as
    ``rules_columns(market)`` (decimals and JSON as text), ordered by symbol and valid_from.

    The stretches start wherever a symbol or filter version opens or closes; a filter
    closing without a successor ends a stretch too (the symbol lost that rule). Each
    stretch reads the versions in force at its start, by the ranges the exclusion
    constraints index. PostgreSQL's ``least`` skips NULLs: a stretch ends at the next
    instant or at its symbol version's end, whichever comes first (NULL: still current).
    """
    shape = layout(market)
    own = _typed(shape.symbols, shape.symbol_fields)
    sql = f"""
WITH sv AS (SELECT * FROM {shape.symbols} s WHERE {window.overlaps("s")}),
bounds AS (
    SELECT symbol, valid_from AS at FROM sv
    UNION SELECT fv.symbol, fv.valid_from FROM {shape.filters} fv
        WHERE fv.symbol IN (SELECT symbol FROM sv)
    UNION SELECT fv.symbol, fv.valid_to FROM {shape.filters} fv
        WHERE fv.symbol IN (SELECT symbol FROM sv) AND fv.valid_to IS NOT NULL
),
stretches AS (
    SELECT symbol, at, lead(at) OVER (PARTITION BY symbol ORDER BY at) AS next FROM bounds
),
rules AS (
    SELECT {_select("s", own)}, f.*, b.at AS valid_from, least(b.next, s.valid_to) AS valid_to
    FROM stretches b
    JOIN sv s ON s.symbol = b.symbol AND tstzrange(s.valid_from, s.valid_to) @> b.at
    CROSS JOIN LATERAL (
        SELECT {_pivot_sql(market)} FROM {shape.filters} fv
        WHERE fv.symbol = b.symbol AND tstzrange(fv.valid_from, fv.valid_to) @> b.at
    ) f
)
SELECT * FROM rules r WHERE {window.overlaps("r")} ORDER BY symbol, valid_from
"""
    return list(conn.execute(text(sql), window.params).all())


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
) -> Iterator[tuple[Any, ...]]:
    """The change feed of ``market``'s public streams in ``[start, end)``, laid out as
    ``CHANGE_COLUMNS`` (old and new as Python values), in the feed's order; with
    ``symbols``, only those symbols' changes, each symbol's in the feed's order."""
    for symbol in symbols if symbols is not None else (None,):
        cursor: str | None = None
        while True:
            page = changes(
                conn,
                start,
                end,
                streams=feed_streams(market),
                symbol=symbol,
                limit=CHANGES_PAGE,
                cursor=cursor,
            )
            for c in page.changes:
                yield (
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
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
