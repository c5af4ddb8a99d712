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

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import numpy.typing as npt
import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import ARRAY, Boolean, Connection, DateTime, Integer, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB

from core.changes import SYMBOL, observed_before, window_changes
from core.history import Layout, layout
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

INSTANT_TYPE = pa.timestamp("us", tz="UTC")
# How the export holds each kind in Arrow. Decimals stay PostgreSQL's exact text
# ("0.00000100", never an exponent) until a file's writer spells them: Parquet casts them
# to its decimal type, CSV writes the text as it is.
ARROW_TYPES = {
    TEXT: pa.string(),
    INTEGER: pa.int64(),
    BOOLEAN: pa.bool_(),
    DECIMAL: pa.string(),
    INSTANT: INSTANT_TYPE,
    TEXTS: pa.list_(pa.string()),
    JSON: pa.string(),
}

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

    def holds(self, valid_from: Any, valid_to: Any) -> Any:
        """Which ranges ``[valid_from, valid_to)`` (Arrow instants; NULL: still in force)
        overlap the window in time: the SQL of ``overlaps``, over arrays."""
        keep = pc.is_valid(valid_from)
        if self.end is not None:
            keep = pc.and_(keep, pc.less(valid_from, pa.scalar(self.end, INSTANT_TYPE)))
        if self.start is not None:
            later = pc.greater(valid_to, pa.scalar(self.start, INSTANT_TYPE))
            keep = pc.and_(keep, pc.or_kleene(pc.is_null(valid_to), later))
        return keep

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "symbols": list(self.symbols or ())}


def listings(conn: Connection, market: str, window: Window) -> dict[str, bool]:
    """Of ``window.symbols``, each ever listed on ``market`` -> whether it was at some
    instant of the window; a symbol never listed is absent. Asked apart from the history:
    "never listed" and "not listed then" are different mistakes (a typo, a wrong window)."""
    table = layout(market).symbols
    rows = conn.execute(
        text(
            f"SELECT s.symbol, bool_or({window.overlaps('s')}) FROM {table} s"
            " WHERE s.symbol = ANY(:symbols) GROUP BY s.symbol"
        ),
        window.params,
    )
    return {symbol: bool(in_window) for symbol, in_window in rows}


def _select_text(alias: str, columns: Sequence[Column]) -> str:
    """The columns as ``_reads`` read them: decimals and JSON as PostgreSQL's own text
    (exact, as the files spell them), the rest as they are stored."""
    as_text = {DECIMAL, JSON}
    return ", ".join(
        f"{alias}.{name}::text" if kind in as_text else f"{alias}.{name}" for name, kind in columns
    )


WORK_MEM = "64MB"


@dataclass(frozen=True, slots=True)
class _Reader:
    """Queries read into Arrow on an ADBC connection in another connection's snapshot."""

    conn: Connection  # whose snapshot is read; renders the parameters
    cursor: Any  # the ADBC connection's

    def render(self, sql: str, params: dict[str, Any]) -> str:
        """``sql`` with its parameters as literals (ADBC binds no arrays), rendered by
        psycopg on ``conn``: on the thread that uses ``conn``, never beside it."""
        compiled = text(sql).compile(dialect=self.conn.dialect)
        return psycopg.ClientCursor(self.conn.connection.driver_connection).mogrify(  # type: ignore[arg-type]
            compiled.string, compiled.construct_params(params)
        )

    def fetch(self, query: str, columns: Sequence[Column]) -> pa.Table:
        """The rows of ``query`` (``render``'s), its columns as ``_select_text`` spells
        ``columns``, as an Arrow table of the export's column types (``ARROW_TYPES``)."""
        self.cursor.execute(query)
        table = self.cursor.fetch_arrow_table().combine_chunks()  # takes gather from one chunk
        return pa.table(
            [_arrow_column(table.column(i), kind) for i, (_, kind) in enumerate(columns)],
            schema=schema(columns),
        )

    def __call__(self, sql: str, params: dict[str, Any], columns: Sequence[Column]) -> pa.Table:
        return self.fetch(self.render(sql, params), columns)


@contextmanager
def _reads(conn: Connection) -> Iterator[_Reader]:
    """A reader of queries into Arrow tables, in ``conn``'s snapshot.

    Read by the ADBC PostgreSQL driver on a connection of its own, which imports the
    snapshot of ``conn``'s transaction (``pg_export_snapshot``), so the rows are those
    ``conn`` would read: its binary COPY goes into Arrow in C++, with no text to format
    in PostgreSQL or to parse here and no Python call per row, and it lets go of the GIL
    while PostgreSQL works (bench/export.py: the CSV COPY through psycopg that it
    replaces cost ~2 µs of Python a row for psycopg's messages, and the CSV parse as
    much again)."""
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    # conn's own parameters (host, login, TLS, keepalives, application name...), as
    # core.db connected it; an empty password is none, and lets libpq look in .pgpass.
    info = conn.connection.driver_connection.info  # type: ignore[union-attr]
    dsn = psycopg.conninfo.make_conninfo(info.dsn, password=info.password or None)
    with adbc.connect(dsn, autocommit=True) as arrow, arrow.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # SET TRANSACTION takes no parameters; the identifier is the server's own.
        cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        cursor.execute("SET LOCAL statement_timeout = 0")  # as without_time_limits
        cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        # The feed's hash join of the versions closed with those opened spilled to disk
        # in the server's default 4 MB (a year: 16 batches), and the filter versions'
        # sort read slower; one export's two such connections can afford this each.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        yield _Reader(conn, cursor)


def _arrow_column(values: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """ADBC's type for a PostgreSQL one as the export holds it (int4 as int64...)."""
    return values.cast(ARROW_TYPES[kind])


def schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns])


def _sorted_symbols(read: _Reader, shape: Layout, window: Window) -> pa.Table:
    own = _typed(shape.symbols, shape.symbol_fields)
    return read(
        f"SELECT {_select_text('s', (*own, *VALIDITY))} FROM {shape.symbols} s"
        f" WHERE {window.overlaps('s')} ORDER BY s.symbol, s.valid_from",
        window.params,
        (*own, *VALIDITY),
    )


def _sorted_filters(read: _Reader, shape: Layout, window: Window, market: str) -> pa.Table:
    """The filter versions the export needs, in ``filter_columns`` order and sorted by
    symbol, type and valid_from: those of the window (``spot_filters``) and every version
    of a symbol listed in it (the stretches start wherever one opens or closes, even
    outside the window). One read serves both; ``_in_window`` tells them apart."""
    listed = f"SELECT s.symbol FROM {shape.symbols} s WHERE {window.overlaps('s')}"
    columns = filter_columns(market)
    return read(
        f"SELECT {_select_text('f', columns)} FROM {shape.filters} f"
        f" WHERE f.symbol IN ({listed}) OR {window.overlaps('f')}"
        " ORDER BY f.symbol, f.filter_type, f.valid_from",
        window.params,
        columns,
    )


def _in_window(table: pa.Table, window: Window) -> Any:
    """``Window.overlaps`` over a table's rows (valid_from, valid_to, symbol)."""
    keep = window.holds(table["valid_from"], table["valid_to"])
    if window.symbols is not None:
        keep = pc.and_(keep, pc.is_in(table["symbol"], pa.array(window.symbols, pa.string())))
    return keep


def history_tables(conn: Connection, market: str, window: Window) -> tuple[pa.Table, pa.Table]:
    """The rules stretches (``rules_columns``, ordered by symbol and valid_from) and the
    filter versions (``filter_columns``, ordered by symbol, type and valid_from) of
    ``window``, as Arrow tables."""
    shape = layout(market)
    with _reads(conn) as read:
        symbols = _sorted_symbols(read, shape, window)
        filters = _sorted_filters(read, shape, window, market)
    rules = stretches(symbols, filters, market, window)
    return rules, filters.filter(_in_window(filters, window))


def use_system_allocator() -> None:
    """Arrow's buffers from the C library's allocator for the rest of the process.

    Arrow's default (mimalloc) copies a large buffer on every growth and every
    concatenation, where glibc's moves its pages (mremap): measured on a year of spot,
    the stretches took 2.5 s with mimalloc against 1.0 s, and reading the filter
    versions and writing the files lost as much again (bench/export.py)."""
    pa.set_memory_pool(pa.system_memory_pool())


def _micros(values: pa.ChunkedArray, missing: int) -> npt.NDArray[np.int64]:
    """Instants as microseconds since the epoch, NULL (still in force) as ``missing``."""
    return pc.fill_null(values.cast(pa.int64()), missing).to_numpy()  # type: ignore[no-any-return]


OPEN = np.iinfo(np.int64).max  # the valid_to of a version still in force: after any instant


def _equal(values: pa.ChunkedArray, value: str) -> npt.NDArray[np.bool_]:
    return pc.fill_null(pc.equal(values, value), False).to_numpy()  # type: ignore[no-any-return]


def _distinct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``np.unique(values)``, by a sort: numpy's hashing unique took ~0.2 s a call on a
    year's million instants, a sort and a comparison of neighbours ~0.05 s."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def stretches(symbols: pa.Table, filters: pa.Table, market: str, window: Window) -> pa.Table:
    """One row per stretch of unchanged rules of each symbol, laid out as
    ``rules_columns(market)``: ``symbols`` are its versions (own columns, valid_from,
    valid_to) sorted by symbol and valid_from, ``filters`` its filter versions.

    A stretch starts at each instant at which a symbol version or any of its filter
    versions opens or closes (a filter closing without a successor ends a stretch too:
    the symbol lost that rule), and ends at the symbol's next such instant. The versions
    in force over it are found by one sort and binary searches over arrays (numpy), the
    rows of every version in force at each stretch's start, never a lookup per stretch in
    SQL (~100 µs each) nor a Python walk (~20 µs each; a year of spot is ~500,000
    stretches: bench/export.py).
    """
    names = pc.unique(symbols["symbol"])  # in the database's order of symbols
    code_of_symbol = pc.index_in(symbols["symbol"], value_set=names).to_numpy()
    code_of_filter = pc.fill_null(pc.index_in(filters["symbol"], value_set=names), -1).to_numpy()
    of_listed = code_of_filter >= 0
    s_from, s_to = _micros(symbols["valid_from"], OPEN), _micros(symbols["valid_to"], OPEN)
    f_from, f_to = _micros(filters["valid_from"], OPEN), _micros(filters["valid_to"], OPEN)
    codes = np.concatenate([code_of_symbol, code_of_symbol, code_of_filter, code_of_filter])
    instants = np.concatenate([s_from, s_to, f_from, f_to])
    is_bound = np.concatenate([np.ones(2 * len(s_from), bool), of_listed, of_listed])
    is_bound &= instants != OPEN
    codes, instants = codes[is_bound], instants[is_bound]
    # Rank the instants, so that (symbol, instant) packs into one sortable integer.
    distinct = _distinct(instants)
    n = max(len(distinct), 1)

    def keys(code: npt.NDArray[np.int64], at: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return code.astype(np.int64) * n + np.searchsorted(distinct, at)

    bounds = _distinct(keys(codes, instants))
    code, start = bounds // n, distinct[bounds % n]
    # A stretch ends where its symbol's next one starts; a symbol's last is open. Sized
    # by the stretches, not by appending to them: with none (a market never polled, a
    # window before any listing) there is no last stretch to append for.
    end = np.full(len(bounds), OPEN)
    end[:-1] = np.where(code[1:] == code[:-1], start[1:], OPEN)

    def in_force(
        rows: npt.NDArray[np.bool_],
        v_code: npt.NDArray[np.int64],
        v_from: npt.NDArray[np.int64],
        v_to: npt.NDArray[np.int64],
    ) -> pa.Array:
        """For each stretch, the index of the version among ``rows`` in force at its
        start (NULL if none): the last to open at or before it, if not closed by then."""
        at = np.flatnonzero(rows)
        if not len(at):
            return pa.nulls(len(bounds), pa.int64())
        v_keys = keys(v_code[at], v_from[at])
        order = np.argsort(v_keys, kind="stable")
        at, v_keys = at[order], v_keys[order]
        i = np.searchsorted(v_keys, bounds, side="right") - 1
        j = at[np.maximum(i, 0)]
        found = (i >= 0) & (v_code[j] == code) & (v_to[j] > start)
        return pa.array(j, mask=~found)

    # Only the stretches kept are gathered: each take copies every column it gathers
    # (the lists of order types too), and filtering a gathered table would copy it again.
    own = in_force(np.ones(len(s_from), bool), code_of_symbol, s_from, s_to)
    instant = pa.array(start).cast(INSTANT_TYPE)
    until = pa.array(end, mask=end == OPEN).cast(INSTANT_TYPE)
    keep = pc.and_(pc.is_valid(own), window.holds(instant, until))
    by_type: dict[str, pa.Array] = {}
    pivoted: list[pa.Array] = []
    for _, types, field in pivot(market):
        sources = []
        for t in types:
            if t not in by_type:
                by_type[t] = in_force(
                    of_listed & _equal(filters["filter_type"], t), code_of_filter, f_from, f_to
                ).filter(keep)
            sources.append(pc.take(filters[field], by_type[t]))
        pivoted.append(pc.coalesce(*sources) if len(sources) > 1 else sources[0])
    own_columns = symbols.select(list(range(symbols.num_columns - 2)))
    return pa.table(
        [
            *pc.take(own_columns, own.filter(keep)).columns,
            *pivoted,
            instant.filter(keep),
            until.filter(keep),
        ],
        schema=schema(rules_columns(market)),
    )


def change_table(
    conn: Connection, market: str, start: datetime, end: datetime, symbols: Sequence[str] | None
) -> pa.Table:
    """The change feed of ``market``'s public streams in ``[start, end)``, laid out as
    ``CHANGE_COLUMNS`` (old and new as JSON text; a text value as it is), in the feed's
    order; with ``symbols``, only those symbols' changes.

    core.changes reads and diffs all but the field changes of symbols' filters, which are
    most of a long window's (~95 % of a year's) and are diffed in SQL (``_filter_changes``)."""
    sql, params, columns = _filter_changes(market, start, end, symbols)
    with _reads(conn) as reads, ThreadPoolExecutor(1, thread_name_prefix="export-diff") as pool:
        # PostgreSQL diffs the filters' fields (on a long window, most of the feed's time)
        # while core.changes diffs the rest on this thread.
        diffing = pool.submit(reads.fetch, reads.render(sql, params), columns)
        found = window_changes(
            conn, start, end, streams=feed_streams(market), symbols=symbols, filter_fields=False
        )
        diffed_fields = diffing.result()
    fields = _filter_change_rows(conn, diffed_fields, market)
    values = {
        "changed_at": [c.changed_at for c in found],
        "stream": [c.stream for c in found],
        "entity": [c.entity for c in found],
        "key": [c.key for c in found],
        "field": [c.field for c in found],
        "old": _json_texts(c.old for c in found),
        "new": _json_texts(c.new for c in found),
        "observation_id": [c.observation_id for c in found],
        "observed_before": [c.observed_before for c in found],
    }
    diffed = pa.table(
        [pa.array(values[name], ARROW_TYPES[kind]) for name, kind in CHANGE_COLUMNS],
        schema=schema(CHANGE_COLUMNS),
    )
    feed = pa.concat_tables([diffed, fields])
    # The feed's order; Arrow compares text byte by byte, which for UTF-8 is the order of
    # code points in which Python (core.changes) compares the same strings.
    return feed.sort_by([(name, "ascending") for name in ("changed_at", "entity", "key", "field")])


def _filter_changes(
    market: str, start: datetime, end: datetime, symbols: Sequence[str] | None
) -> tuple[str, dict[str, Any], tuple[Column, ...]]:
    """The query (sql, parameters, columns) of the field changes of symbols' filters in
    ``[start, end)`` that core.changes leaves out with ``filter_fields=False``, as it
    would report them (``filters.<type>.<field>``, under the symbol, with the observation
    that opened or closed the versions; ``_filter_change_rows`` lays them out), diffed
    in SQL from the versions' stored JSON: a version closed and the one opened at the same
    instant are paired, and each top-level field whose values differ (a JSON null is an
    absent field) is a change; not at a symbol's listing or delisting, whose ``listed``
    object holds its filters. Values come back as JSON text, a text value as it is; numbers,
    lists and objects are written again as core.changes writes the values it parses."""
    shape = layout(market)
    only = " AND symbol = ANY(:symbols)" if symbols is not None else ""

    def at(bound: str) -> str:
        return f"{bound} >= :start AND {bound} < :end{only}"

    value = "nullif(e.{side}_raw -> k.name, 'null')"
    sql = f"""
        WITH opened AS (
            SELECT symbol, filter_type, valid_from AS at, raw, opened_by
            FROM {shape.filters} WHERE {at("valid_from")}
        ), closed AS (
            SELECT symbol, filter_type, valid_to AS at, raw, closed_by
            FROM {shape.filters} WHERE {at("valid_to")}
        ), listings AS (
            SELECT symbol, at FROM (
                SELECT symbol, valid_from AS at FROM {shape.symbols} WHERE {at("valid_from")}
                UNION ALL
                SELECT symbol, valid_to FROM {shape.symbols} WHERE {at("valid_to")}
            ) AS bounds GROUP BY symbol, at HAVING count(*) = 1
        ), events AS (
            SELECT coalesce(n.symbol, o.symbol) AS symbol,
                coalesce(n.filter_type, o.filter_type) AS filter_type,
                coalesce(n.at, o.at) AS at, o.raw AS old_raw, n.raw AS new_raw,
                coalesce(n.opened_by, o.closed_by) AS observation_id
            FROM opened n
            FULL JOIN closed o
                ON o.symbol = n.symbol AND o.filter_type = n.filter_type AND o.at = n.at
        ), diffs AS (
            SELECT e.at, e.symbol, 'filters.' || e.filter_type || '.' || k.name AS field,
                {value.format(side="old")} AS old, {value.format(side="new")} AS new,
                e.observation_id
            FROM events e
            CROSS JOIN LATERAL
                jsonb_object_keys(coalesce(e.old_raw, '{{}}') || coalesce(e.new_raw, '{{}}'))
                AS k(name)
            WHERE NOT EXISTS (SELECT 1 FROM listings l WHERE l.symbol = e.symbol AND l.at = e.at)
                AND {value.format(side="old")} IS DISTINCT FROM {value.format(side="new")}
        )
        SELECT d.at, d.symbol, d.field,
            d.old #>> '{{}}', jsonb_typeof(d.old), d.new #>> '{{}}', jsonb_typeof(d.new),
            d.observation_id
        FROM diffs d
    """
    columns: tuple[Column, ...] = (
        ("changed_at", INSTANT),
        ("key", TEXT),
        ("field", TEXT),
        ("old", JSON),
        ("old_type", TEXT),
        ("new", JSON),
        ("new_type", TEXT),
        ("observation_id", INTEGER),
    )
    params = {"start": start, "end": end, "symbols": list(symbols or ())}
    return sql, params, columns


def _filter_change_rows(conn: Connection, read: pa.Table, market: str) -> pa.Table:
    """The rows of ``_filter_changes``' query as the feed's (``CHANGE_COLUMNS``), each
    dated by its stream's last successful poll before it (core.changes' own lookup, once
    per distinct instant: a year has a few hundred, where its changes are ~500,000; done
    in the diff's query, it had PostgreSQL store and read the whole diff twice)."""
    stream = layout(market).market.exchange_info
    instants = pc.unique(read["changed_at"])
    before = observed_before(conn, ((stream, t) for t in instants.to_pylist()))
    observed = pa.array([before[(stream, t)] for t in instants.to_pylist()], INSTANT_TYPE)
    n = read.num_rows
    values = {
        **{name: read[name] for name in ("changed_at", "key", "field", "observation_id")},
        "observed_before": pc.take(observed, pc.index_in(read["changed_at"], value_set=instants)),
        "stream": pa.array([stream] * n, pa.string()),
        "entity": pa.array([SYMBOL] * n, pa.string()),
        "old": _as_written(read["old"], read["old_type"]),
        "new": _as_written(read["new"], read["new_type"]),
    }
    return pa.table([values[name] for name, _ in CHANGE_COLUMNS], schema=schema(CHANGE_COLUMNS))


def _as_written(texts: pa.ChunkedArray, types: pa.ChunkedArray) -> pa.Array:
    """JSON values' text as core.changes writes the values it parses (``_json_texts``):
    PostgreSQL spells numbers, lists and objects its own way (``1e-8`` as ``0.00000001``,
    spaces after commas), so those few are parsed and written again."""
    again = pc.fill_null(pc.is_in(types, pa.array(["number", "array", "object"])), False)
    texts = texts.combine_chunks()
    if not pc.any(again).as_py():
        return texts
    written = [orjson.dumps(orjson.loads(v)).decode() for v in texts.filter(again).to_pylist()]
    return pc.replace_with_mask(texts, again.combine_chunks(), pa.array(written, pa.string()))


def _json_texts(values: Iterable[Any]) -> list[str | None]:
    """The feed's Python values as JSON, except a text, which is written as it is."""
    return [
        v if isinstance(v, str) or v is None else orjson.dumps(v, default=str).decode()
        for v in values
    ]
