"""Reading history: latest, as of t, versions over a window, and the evidence (DESIGN §2, §7).

Every answer about time t carries its evidence: the last successful observation at or
before t, the first one after it, and whether t lies in a gap (no success for more than
three intervals), because "TRADING at 14:03" means little if nobody looked between
09:00 and 18:00. A stream's move to another source (a ``switched`` observation, see
core.ingest) is a gap however short: from the old source's last success to the new
one's first, no one history covers the time, so no answer in between is vouched for.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from itertools import pairwise
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Dialect, Numeric, text

from core import obslog
from core import streams as catalogue
from core.bodies import restore_server_time
from core.cursors import decode_position, encode_position
from core.diff import FieldChange, diff_objects
from core.models import VERSIONED_TABLES, typed_columns
from core.streams import DEFAULT_MARKET, Market

GAP_FACTOR = 3

_VERSION_COLUMNS = "valid_from, valid_to, opened_by, closed_by, raw::text"
VERSION_FIELDS = ("valid_from", "valid_to", "opened_by", "closed_by", "raw_json")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a market's symbols are read from and how their rows are laid out.

    The columns are read from the models (a column added to a model is read without a list
    to edit): a symbol row is ``symbol_fields`` then the version columns; a filter row is
    symbol, filter type, ``filter_fields``, then the version columns. Spot's and the
    futures markets' rows differ only in these lists, so every reader below serves all.
    """

    market: Market
    symbol_fields: tuple[str, ...]
    filter_fields: tuple[str, ...]
    decimal_filter_fields: frozenset[str]
    symbol_instants: tuple[str, ...]  # a contract's deliveryDate and onboardDate

    @property
    def symbols(self) -> str:
        return self.market.symbols

    @property
    def filters(self) -> str:
        return self.market.filters

    @property
    def symbol_row_version(self) -> int:
        """Where a symbol row's version columns start."""
        return len(self.symbol_fields)

    @property
    def filter_row_version(self) -> int:
        """Where a filter row's version columns start."""
        return 2 + len(self.filter_fields)

    def filter_columns(self, decimals_as_text: bool) -> str:
        """The typed filter columns; numerics as PostgreSQL's exact text if asked.

        PostgreSQL renders a numeric exactly as stored ("0.00000100", never an exponent),
        so an API that answers in text skips a Decimal per value both ways.
        """
        return ", ".join(
            f"{c}::text" if decimals_as_text and c in self.decimal_filter_fields else c
            for c in self.filter_fields
        )


@cache
def layout(name: str = DEFAULT_MARKET) -> Layout:
    """The layout of market ``name``'s symbols (core.streams.MARKETS); KeyError if unknown."""
    declared = catalogue.market(name)
    symbols = VERSIONED_TABLES[declared.symbols].__table__.c  # type: ignore[attr-defined]
    filters = VERSIONED_TABLES[declared.filters].__table__.c  # type: ignore[attr-defined]
    symbol_fields = tuple(typed_columns(declared.symbols))
    return Layout(
        declared,
        symbol_fields,
        tuple(typed_columns(declared.filters, key=False)),
        frozenset(c.name for c in filters if isinstance(c.type, Numeric)),
        tuple(c.name for c in symbols if c.name in symbol_fields and isinstance(c.type, DateTime)),
    )


SPOT = layout()
# Spot's, by the names the API's tests and benches know.
SYMBOL_FIELDS = SPOT.symbol_fields
FILTER_FIELDS = SPOT.filter_fields


@dataclass(frozen=True, slots=True)
class Evidence:
    observed_before: datetime | None
    observed_after: datetime | None
    gap: bool
    gap_from: datetime | None = None
    gap_to: datetime | None = None
    # Whether ``observed_before`` was read from an archive (`exmeta import`), not polled.
    imported: bool = False
    # When a realtime listener saw the change of the answer's version coming (core.signals):
    # a tighter window than the polls around it. Only single-symbol answers look it up.
    change: ChangeWindow | None = None


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """The version's change happened after ``since`` (a pushed event's time, or the last
    market data before a silence) and was seen by the poll at ``seen_at``."""

    since: datetime
    seen_at: datetime
    signal: str  # core.signals kind


@dataclass(frozen=True, slots=True)
class Version:
    """One version row: its typed fields, its range and the source object."""

    fields: dict[str, Any]
    valid_from: datetime
    valid_to: datetime | None
    opened_by: int
    closed_by: int | None
    # The source object as JSON text: answers embed it as it is, without a decode and a
    # re-encode of ~20,000 objects per whole-exchange answer.
    raw_json: str

    @property
    def raw(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.raw_json)
        return parsed


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's own version plus its filters' versions, all in force at one instant."""

    symbol: Version
    filters: dict[str, Version]

    @property
    def valid_from(self) -> datetime:
        return max([self.symbol.valid_from, *(f.valid_from for f in self.filters.values())])

    @property
    def valid_to(self) -> datetime | None:
        ends = [v.valid_to for v in (self.symbol, *self.filters.values()) if v.valid_to]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One instant at which a symbol's rules changed, with what changed."""

    valid_from: datetime
    valid_to: datetime | None
    observation_id: int
    listed: bool
    changes: list[FieldChange] = field(default_factory=list)


def _in_force(at: datetime | None) -> str:
    """The condition for versions in force at ``:t``; None means the current ones (the
    ``valid_to IS NULL`` partial index, cheaper than a range search)."""
    if at is None:
        return "valid_to IS NULL"
    return "tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"


def _version(row: Sequence[Any], typed: Sequence[str], offset: int = 0) -> Version:
    """A version from a row laid out as [offset key columns] typed columns, version columns."""
    n = offset + len(typed)
    return Version(dict(zip(typed, row[offset:n], strict=True)), *row[n : n + 5])


def _filter_version(row: Sequence[Any], shape: Layout) -> Version:
    """A filter version with only the typed fields its filter type has (no NULL columns)."""
    n = shape.filter_row_version
    fields = {k: v for k, v in zip(shape.filter_fields, row[2:n], strict=True) if v is not None}
    return Version(fields, *row[n : n + 5])


# The evidence of an answer about ``:t`` from stream ``:s``'s observations, as one row
# (observed_before, observed_after, switched, imported), with ``:horizon`` the later of
# now and ``:t`` (``_evidence_params``). Poll instants are read through core.obslog (detail
# rows and folded runs alike); ``evidence`` runs it alone, and the
# answers read in one statement embed it whole. The move to another source is looked for
# in it too: as of answers are the API's hot path.
EVIDENCE_SQL = (
    "SELECT b.observed_at AS observed_before, a.observed_at AS observed_after,"
    " EXISTS (SELECT FROM observations WHERE stream = :s"
    "        AND outcome = 'switched' AND observed_at > b.observed_at"
    "        AND observed_at <= coalesce(a.observed_at, :horizon)) AS switched,"
    " b.origin IS NOT NULL AS imported"
    f" FROM (SELECT 1) AS one LEFT JOIN LATERAL {obslog.first_success_after(':s', ':t')}"
    " AS a ON true"
    f" LEFT JOIN LATERAL {obslog.last_success(':s', ':t')} AS b ON true"
)
_EVIDENCE_COLUMNS = 4


def _evidence_params(stream: str, at: datetime, now: datetime) -> dict[str, Any]:
    return {"s": stream, "t": at, "horizon": max(now, at)}


def _judged(row: Sequence[Any], at: datetime, interval_seconds: float, now: datetime) -> Evidence:
    """The evidence from a row of ``EVIDENCE_SQL``: whether ``at`` lies in a gap."""
    before, after, switched, imported = row[0], row[1], row[2], bool(row[3])
    limit = timedelta(seconds=GAP_FACTOR * interval_seconds)
    end = after if after is not None else max(now, at)
    in_gap = before is None or end - before > limit or switched
    if not in_gap:
        return Evidence(before, after, False, imported=imported)
    return Evidence(before, after, True, gap_from=before, gap_to=after, imported=imported)


def evidence(
    conn: Connection, stream: str, at: datetime, interval_seconds: float, now: datetime
) -> Evidence:
    row = conn.execute(text(EVIDENCE_SQL), _evidence_params(stream, at, now)).one()
    return _judged(row, at, interval_seconds, now)


def versions_generation(conn: Connection, stream: str) -> int | None:
    """The id of the observation that last changed ``stream``'s versions (None: none yet).

    It grows with every write that opens or closes a version of the stream, in the same
    transaction, so two equal readings mean the stream's versions did not change between.
    """
    return conn.execute(
        text("SELECT state_observation_id FROM stream_heads WHERE stream = :s"), {"s": stream}
    ).scalar_one_or_none()


def _fetch(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples from the driver, in ``conn``'s transaction.

    The bulk readers skip SQLAlchemy's result layer: a whole-exchange answer is ~25,000
    rows, and per-row ``Row`` handling cost more than the query itself. Results come in
    PostgreSQL's binary format (the same Python values; timestamps decode faster).
    """
    cursor = conn.connection.driver_connection.cursor(binary=True)  # type: ignore[union-attr]
    with cursor:
        cursor.execute(_driver_sql(sql, conn.dialect), params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


@cache
def _driver_sql(sql: str, dialect: Dialect) -> str:
    """``sql``'s named parameters in the driver's style, compiled once per statement (it
    cost a single-symbol answer more than the database's work)."""
    return text(sql).compile(dialect=dialect).string


def _symbol_sql(shape: Layout, where: str) -> str:
    return (
        f"SELECT {', '.join(shape.symbol_fields)}, {_VERSION_COLUMNS} FROM {shape.symbols}"
        f" WHERE {where}"
    )


def _symbol_rows(
    conn: Connection, shape: Layout, where: str, params: dict[str, Any]
) -> list[Version]:
    sql = _symbol_sql(shape, where)
    return [_version(r, shape.symbol_fields) for r in _fetch(conn, sql, params)]


def _filter_rows(
    conn: Connection,
    shape: Layout,
    where: str,
    params: dict[str, Any],
    *,
    decimals_as_text: bool = False,
) -> list[tuple[str, str, Version]]:
    """(symbol, filter type, version) of every filter version matching ``where``."""
    sql = _filter_sql(shape, where, decimals_as_text)
    return [(r[0], r[1], _filter_version(r, shape)) for r in _fetch(conn, sql, params)]


def _filter_sql(shape: Layout, where: str, decimals_as_text: bool) -> str:
    return (
        f"SELECT symbol, filter_type, {shape.filter_columns(decimals_as_text)},"
        f" {_VERSION_COLUMNS} FROM {shape.filters} WHERE {where}"
    )


def symbol_as_of(
    conn: Connection,
    symbol: str,
    at: datetime,
    *,
    market: str = DEFAULT_MARKET,
    decimals_as_text: bool = False,
) -> SymbolRules | None:
    """The symbol's rules on ``market`` in force at ``at``, or None if it was not listed then.

    Filter fields are Decimal, or exact text with ``decimals_as_text``.
    """
    shape = layout(market)
    where = "symbol = :sym AND tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
    versions = _symbol_rows(conn, shape, where, {"sym": symbol, "t": at})
    if not versions:
        return None
    params = {"sym": symbol, "t": at}
    found = _filter_rows(conn, shape, where, params, decimals_as_text=decimals_as_text)
    filters = {ftype: v for _, ftype, v in found}
    return SymbolRules(versions[0], filters)


@dataclass(frozen=True, slots=True)
class SymbolAnswer:
    """A symbol's rules at an instant (None: not listed then), their evidence, and the
    generation of the market's versions (``versions_generation``), all of one snapshot."""

    rules: SymbolRules | None
    evidence: Evidence
    generation: int | None


@cache
def _symbol_answer_sql(market: str, decimals_as_text: bool) -> str:
    """One statement for ``symbol_answer``: a head row (evidence, generation, the listeners'
    signal of the change, the symbol's version or NULLs) and a row per filter, padded with NULLs to one shape (UNION ALL takes
    the columns' types from the branch that has them)."""
    shape = layout(market)
    where = "symbol = :sym AND tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
    symbol_width = len(shape.symbol_fields) + len(VERSION_FIELDS)
    filter_width = shape.filter_row_version + len(VERSION_FIELDS)
    return (
        f"WITH e AS ({EVIDENCE_SQL})"
        " SELECT e.*, (SELECT state_observation_id FROM stream_heads WHERE stream = :s),"
        f" c.kind, c.since, s.*{', NULL' * filter_width}"
        f" FROM e LEFT JOIN ({_symbol_sql(shape, where)}) AS s ON true"
        f" LEFT JOIN LATERAL {change_since_sql(':s', ':sym', 's.valid_from')} AS c ON true"
        f" UNION ALL SELECT {', '.join(['NULL'] * (_EVIDENCE_COLUMNS + 3 + symbol_width))},"
        f" {_filter_sql(shape, where, decimals_as_text)[len('SELECT ') :]}"
    )


def change_since_sql(stream: str, subject: str, valid_from: str) -> str:
    """SQL: the earliest confirmed listener signal (kind, since) of the change that opened
    ``subject``'s version at ``valid_from`` (core.signals records them), or no row; the
    arguments are SQL expressions (parameters, or columns of the enclosing query)."""
    return (
        "(SELECT kind, coalesce(event_at, received_at) AS since FROM stream_signals"
        f" WHERE stream = {stream} AND symbol = {subject} AND observed_at >= {valid_from}"
        f" AND confirmed AND coalesce(event_at, received_at) <= {valid_from}"
        " ORDER BY 2 LIMIT 1)"
    )


def symbol_answer(
    conn: Connection,
    symbol: str,
    at: datetime,
    interval_seconds: float,
    now: datetime,
    *,
    market: str = DEFAULT_MARKET,
    decimals_as_text: bool = False,
) -> SymbolAnswer:
    """``symbol_as_of``, the ``evidence`` of the market's exchangeInfo stream at ``at`` (with
    the listeners' ``change`` window of the symbol's version) and its
    ``versions_generation``, in one statement: one round trip, and one snapshot
    without a transaction to begin and end (each would be another round trip)."""
    shape = layout(market)
    stream = shape.market.exchange_info
    params = {**_evidence_params(stream, at, now), "sym": symbol}
    rows = _fetch(conn, _symbol_answer_sql(market, decimals_as_text), params)
    generation, change = _EVIDENCE_COLUMNS, _EVIDENCE_COLUMNS + 1  # then kind, since
    start = change + 2  # the symbol's columns
    start_filter = start + len(shape.symbol_fields) + len(VERSION_FIELDS)
    head: Sequence[Any] = ()
    filters: dict[str, Version] = {}
    for row in rows:
        filter_type = row[start_filter + 1]
        if filter_type is None:
            head = row
        else:
            filters[filter_type] = _filter_version(row[start_filter:], shape)
    found = _judged(head, at, interval_seconds, now)
    listed = head[start] is not None
    rules = SymbolRules(_version(head, shape.symbol_fields, start), filters) if listed else None
    if rules is not None and head[change] is not None:  # a listener saw the change coming
        since = head[change + 1]
        found = replace(found, change=ChangeWindow(since, rules.symbol.valid_from, head[change]))
    return SymbolAnswer(rules, found, head[generation])


@dataclass(frozen=True, slots=True)
class RulesRows:
    """Every symbol's rules at one instant as the driver's tuples.

    A whole exchange is ~2,300 symbols and ~20,000 filters: an answer that renders them all
    cannot afford a ``Version`` and a field dict per row on the way (it cost as much as the
    queries). ``symbols`` rows are the layout's symbol fields then the version columns,
    sorted by symbol; ``filters`` rows are symbol, filter type, its filter fields (NULL
    where the filter lacks the field), then the version columns, in no order. The version
    columns are laid out as ``VERSION_FIELDS`` (``Layout`` says where they start).
    """

    shape: Layout
    symbols: list[tuple[Any, ...]]
    filters: list[tuple[Any, ...]]


def rules_rows_as_of(
    conn: Connection,
    at: datetime | None,
    *,
    market: str = DEFAULT_MARKET,
    status: str | None = None,
    base_asset: str | None = None,
    quote_asset: str | None = None,
    decimals_as_text: bool = False,
) -> RulesRows:
    """Every symbol of ``market`` in force at ``at`` (None: the current versions), with its
    filters."""
    shape = layout(market)
    when = _in_force(at)
    params: dict[str, Any] = {"t": at}
    where = [when]
    for column, value in (
        ("status", status),
        ("base_asset", base_asset),
        ("quote_asset", quote_asset),
    ):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    symbols = _fetch(conn, _symbol_sql(shape, f"{' AND '.join(where)} ORDER BY symbol"), params)
    if not symbols:
        return RulesRows(shape, [], [])
    filter_where = when
    if len(where) > 1:
        filter_where += " AND symbol = ANY(:names)"
        params["names"] = [row[0] for row in symbols]
    filters = _fetch(conn, _filter_sql(shape, filter_where, decimals_as_text), params)
    return RulesRows(shape, symbols, filters)


def symbols_as_of(
    conn: Connection, at: datetime | None, *, market: str = DEFAULT_MARKET
) -> list[SymbolRules]:
    """Every symbol of ``market`` in force at ``at`` (None: the current versions), sorted by
    name, as ``SymbolRules`` (filter fields as Decimal)."""
    rows = rules_rows_as_of(conn, at, market=market)
    shape = rows.shape
    filters: dict[str, dict[str, Version]] = defaultdict(dict)
    for row in rows.filters:
        filters[row[0]][row[1]] = _filter_version(row, shape)
    return [SymbolRules(_version(r, shape.symbol_fields), filters[r[0]]) for r in rows.symbols]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None  # None: no entry follows in the window


_JUST_BEFORE = timedelta(microseconds=1)  # PostgreSQL's resolution: the instant before


def symbol_history(
    conn: Connection,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    *,
    limit: int,
    cursor: str | None = None,
    market: str = DEFAULT_MARKET,
) -> HistoryPage:
    """The instants at which the symbol's rules on ``market`` changed, overlapping [start, end), with diffs;
    at most ``limit``, after ``cursor`` (the ``next_cursor`` of the previous page).

    Each entry is diffed against the rules in force just before it, so a window that
    starts mid-history still says what changed; a delisting is an entry with
    ``listed=False`` whose changes remove every field. A page reads the versions in force
    during its own entries only (found by the key and the range), never the whole history.
    Raises ``core.cursors.CursorError`` for a token this history did not hand out.
    """
    shape = layout(market)
    if cursor is not None:
        after, _ = decode_position(cursor, 0, "this history")
        base: datetime | None = after  # the previous page's last entry: in force, done
    else:
        first = _instant_in_force(conn, shape, symbol, start) if start is not None else None
        base = first - _JUST_BEFORE if first is not None else start
    n = limit + 1
    while True:
        # The nth instant a version opens after base bounds the page: with the closings
        # before it, at least n instants, which a page needs (the last one ends the
        # page's last entry and says that more follow). An opening that changed nothing
        # (where history prepended by an import meets the history on record, the same
        # rules on both sides) is no entry: read further if a page would hold none.
        params = {"sym": symbol, "base": base, "n": n}
        upper = conn.execute(
            text(_page_end_sql(shape, after_base=base is not None)), params
        ).scalar_one_or_none()
        where = (
            "symbol = :sym AND tstzrange(valid_from, valid_to)"
            " && tstzrange(CAST(:base AS timestamptz), CAST(:upper AS timestamptz), '[]')"
        )
        window = {"sym": symbol, "base": base, "upper": upper}
        parts = [("symbol", v) for v in _symbol_rows(conn, shape, where, window)]
        parts += [(ftype, v) for _, ftype, v in _filter_rows(conn, shape, where, window)]
        entries = _entries(parts, base, upper)
        in_window = [e for e in entries if end is None or e.valid_from < end]
        # The last entry read ends past what was read: it only says that more follow.
        page = in_window[: limit if upper is None else min(limit, len(entries) - 1)]
        more = len(in_window) > len(page)
        if page or not more:
            return HistoryPage(page, encode_position(page[-1].valid_from, ()) if more else None)
        n *= 2


def symbol_seen(conn: Connection, symbol: str, *, market: str = DEFAULT_MARKET) -> bool:
    """Whether any version of the symbol was ever recorded on ``market``."""
    return bool(
        conn.execute(
            text(f"SELECT EXISTS (SELECT FROM {layout(market).symbols} WHERE symbol = :sym)"),
            {"sym": symbol},
        ).scalar_one()
    )


def symbol_names(
    conn: Connection, at: datetime | None = None, *, market: str = DEFAULT_MARKET
) -> list[str]:
    """The names of ``market``'s symbols in force at ``at``, or (None) ever recorded: what
    a 404 about a mistyped symbol can suggest, read only on that error's path."""
    table = layout(market).symbols
    if at is None:
        sql = f"SELECT DISTINCT symbol FROM {table}"
    else:
        sql = f"SELECT symbol FROM {table} WHERE {_in_force(at)}"
    return list(conn.execute(text(sql), {"t": at}).scalars())


def _page_end_sql(shape: Layout, *, after_base: bool) -> str:
    """The ``:n``th instant after ``:base`` at which a version of ``:sym`` opens.

    Read from the primary keys, at most ``:n`` entries per key: the filters' key is
    (symbol, filter_type, valid_from), so their types are found one index probe each (a
    loose index scan) and each type's openings are a range of its own.
    """
    later = " AND valid_from > :base" if after_base else ""
    symbols, filters = shape.symbols, shape.filters
    return (
        "WITH RECURSIVE types(t) AS ("
        f"  SELECT min(filter_type) FROM {filters} WHERE symbol = :sym"
        "  UNION ALL"
        f"  SELECT (SELECT min(filter_type) FROM {filters}"
        "          WHERE symbol = :sym AND filter_type > types.t)"
        "  FROM types WHERE types.t IS NOT NULL"
        ") SELECT at FROM ("
        f"  (SELECT valid_from AS at FROM {symbols} WHERE symbol = :sym{later}"
        "   ORDER BY valid_from LIMIT :n)"
        "  UNION"
        "  SELECT o.at FROM types CROSS JOIN LATERAL ("
        f"    SELECT valid_from AS at FROM {filters}"
        f"   WHERE symbol = :sym AND filter_type = types.t{later}"
        "    ORDER BY valid_from LIMIT :n) AS o"
        ") AS openings ORDER BY at OFFSET :n - 1 LIMIT 1"
    )


def _instant_in_force(
    conn: Connection, shape: Layout, symbol: str, at: datetime
) -> datetime | None:
    """The last instant at or before ``at`` at which the symbol's rules changed.

    The last opening at or before ``at``, unless a version in force then closed after it,
    by ``at``, with no successor (a delisting, a filter removed).
    """
    symbols, filters = shape.symbols, shape.filters
    opened: datetime | None = conn.execute(
        text(
            "SELECT greatest("
            f" (SELECT max(valid_from) FROM {symbols} WHERE symbol = :sym"
            "  AND valid_from <= :t),"
            f" (SELECT max(valid_from) FROM {filters} WHERE symbol = :sym"
            "  AND valid_from <= :t))"
        ),
        {"sym": symbol, "t": at},
    ).scalar_one()
    if opened is None:
        return None
    closed: datetime | None = conn.execute(
        text(
            "SELECT max(valid_to) FROM ("
            f"  SELECT valid_to FROM {symbols} WHERE symbol = :sym"
            "   AND tstzrange(valid_from, valid_to) && tstzrange(:o, :t, '[]') AND valid_to <= :t"
            "  UNION ALL"
            f"  SELECT valid_to FROM {filters} WHERE symbol = :sym"
            "   AND tstzrange(valid_from, valid_to) && tstzrange(:o, :t, '[]') AND valid_to <= :t"
            ") AS c"
        ),
        {"sym": symbol, "o": opened, "t": at},
    ).scalar_one()
    return max(opened, closed) if closed is not None else opened


def _entries(
    parts: Sequence[tuple[str, Version]], base: datetime | None, upper: datetime | None
) -> list[HistoryEntry]:
    """The entries at the instants in (base, upper] found in ``parts``, the versions in force
    between, diffed against the rules in force at ``base``."""
    openers: dict[datetime, int | None] = {}
    for _, v in parts:
        openers.setdefault(v.valid_from, v.opened_by)
        if v.valid_to is not None:
            openers.setdefault(v.valid_to, v.closed_by)
    instants = sorted(
        t for t in openers if (base is None or t > base) and (upper is None or t <= upper)
    )

    def in_force(at: datetime | None) -> dict[str, Any]:
        if at is None:
            return {}
        return {
            name: v.raw
            for name, v in parts
            if v.valid_from <= at and (v.valid_to is None or at < v.valid_to)
        }

    entries: list[HistoryEntry] = []
    previous = in_force(base)
    for instant in instants:
        state = in_force(instant)
        changes = _rules_diff(previous, state)
        previous = state
        if changes:
            opener = openers[instant] or 0
            entries.append(HistoryEntry(instant, None, opener, "symbol" in state, changes))
    for i in range(len(entries) - 1):
        entries[i] = replace(entries[i], valid_to=entries[i + 1].valid_from)
    return entries


def _rules_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    changes = diff_objects(before.get("symbol"), after.get("symbol"))
    for ftype in sorted((before.keys() | after.keys()) - {"symbol"}):
        changes.extend(
            diff_objects(before.get(ftype), after.get(ftype), prefix=f"filters.{ftype}.")
        )
    return changes


def rate_limits_as_of(
    conn: Connection, at: datetime | None, *, market: str = DEFAULT_MARKET
) -> list[Version]:
    """The rate limits of ``market`` in force at ``at`` (None: the current ones)."""
    return _versions_at(
        conn,
        catalogue.market(market).rate_limits,
        ("rate_limit_type", "interval", "interval_num", "limit_value"),
        at,
        order="rate_limit_type, interval, interval_num",
    )


def request_weight_limit(conn: Connection, table: str = "rate_limit_versions") -> int | None:
    """The current REQUEST_WEIGHT per 1 minute, the window of ``X-MBX-USED-WEIGHT-1M``, of
    the market whose rate limits ``table`` versions (core.streams.RATE_LIMIT_TABLES)."""
    value = conn.execute(
        text(
            f"SELECT limit_value FROM {table} WHERE valid_to IS NULL"
            " AND rate_limit_type = 'REQUEST_WEIGHT' AND interval = 'MINUTE' AND interval_num = 1"
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    observation_id: int
    observed_at: datetime
    body: bytes


def exchange_info_as_of(
    conn: Connection, at: datetime, *, market: str = DEFAULT_MARKET
) -> StoredDocument | None:
    """The exact exchangeInfo body of ``market``'s last successful observation at or before
    ``at``."""
    row = conn.execute(
        text(
            "SELECT o.id, o.observed_at, b.body, coalesce(o.server_time, o.observed_at)"
            f" FROM {obslog.last_success(':s', ':t')} AS o"
            " JOIN raw_bodies b ON b.sha256 = o.body_sha256"
        ),
        {"s": catalogue.market(market).exchange_info, "t": at},
    ).one_or_none()
    if row is None:
        return None
    # The serverTime Binance sent: the observation's time, unless it did not date it.
    server_ms = int(row[3].timestamp() * 1000)
    return StoredDocument(row[0], row[1], restore_server_time(bytes(row[2]), server_ms))


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: int
    stream: str
    replica_id: str
    observed_at: datetime
    # None on a folded poll (core.obslog), as are used_weight, attempts and backoff_ms.
    requested_at: datetime | None
    duration_ms: int | None
    outcome: str
    http_status: int | None
    used_weight: int | None
    error_class: str | None
    error_code: int | None
    error_message: str | None
    attempts: int | None
    backoff_ms: int | None
    source: str | None


def observations(
    conn: Connection,
    *,
    stream: str | None,
    outcome: str | None,
    start: datetime,
    end: datetime,
    limit: int,
    hidden: Collection[str] = (),
) -> list[ObservationRow]:
    """The poll log within [start, end), without the ``hidden`` streams' polls."""
    params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    where = ["observed_at >= :start", "observed_at < :end"]
    # Folded polls (core.obslog) are unchanged successes of the runs around the window.
    runs = ["r.last_at >= :start", "r.first_at < :end"]
    if hidden:
        where.append("stream <> ALL(:hidden)")
        runs.append("r.stream <> ALL(:hidden)")
        params["hidden"] = sorted(hidden)
    if stream is not None:
        where.append("stream = :stream")
        runs.append("r.stream = :stream")
        params["stream"] = stream
    if outcome is not None:
        where.append("outcome = :outcome")
        runs.append("'unchanged' = :outcome")
        params["outcome"] = outcome
    folded = obslog.folded_polls(
        " AND ".join(runs), "p.observed_at >= :start AND p.observed_at < :end", ":limit"
    )
    rows = conn.execute(
        text(
            "(SELECT id, stream, replica_id, observed_at, requested_at, duration_ms, outcome,"
            " http_status, used_weight, error_class, error_code, error_message, attempts,"
            " backoff_ms, source FROM observations"
            f" WHERE {' AND '.join(where)} ORDER BY observed_at, id LIMIT :limit)"
            f" UNION ALL ({folded}) ORDER BY observed_at, id LIMIT :limit"
        ),
        params,
    )
    return [ObservationRow(*r) for r in rows]


def _switches(conn: Connection, stream: str, start: datetime, end: datetime) -> list[datetime]:
    """When ``stream`` moved to another source within ``(start, end]``, in order."""
    return list(
        conn.execute(
            text(
                "SELECT observed_at FROM observations WHERE stream = :s"
                " AND outcome = 'switched' AND observed_at > :start AND observed_at <= :end"
                " ORDER BY observed_at"
            ),
            # Instants are whole microseconds: after the one before ``end`` is at or after it.
            {
                "s": stream,
                "start": start,
                "end": end,
                "just_before_end": end - timedelta(microseconds=1),
            },
        ).scalars()
    )


@dataclass(frozen=True, slots=True)
class Gap:
    stream: str
    start: datetime | None  # the last success before the gap (None: none ever)
    end: datetime | None  # the first success after it (None: still open)


def gaps(
    conn: Connection,
    stream: str,
    start: datetime,
    end: datetime,
    interval_seconds: float,
    now: datetime,
) -> list[Gap]:
    """Stretches within [start, end) with no successful observation for > 3 intervals, or
    across a move to another source."""
    limit = timedelta(seconds=GAP_FACTOR * interval_seconds)
    rows = conn.execute(
        text(
            "SELECT observed_at FROM ("
            f"  SELECT observed_at FROM {obslog.last_success(':s', ':start', strictly=True)} b"
            "  UNION ALL"
            f"  SELECT observed_at FROM {obslog.successes_within(':s', ':start', ':end')} w"
            "  UNION ALL"
            f"  SELECT observed_at FROM {obslog.first_success_after(':s', ':just_before_end')} a"
            ") AS s ORDER BY observed_at"
        ),
        # Instants are whole microseconds: after the one before ``end`` is at or after it.
        {
            "s": stream,
            "start": start,
            "end": end,
            "just_before_end": end - timedelta(microseconds=1),
        },
    ).scalars()
    times: list[datetime] = list(rows)
    found: list[Gap] = []
    if not times:
        return [Gap(stream, None, None)]
    horizon = min(end, now)
    switches = _switches(conn, stream, times[0], max(times[-1], horizon))

    def switched(a: datetime, b: datetime) -> bool:
        """Whether the stream moved to another source in ``(a, b]``."""
        return bisect_right(switches, b) > bisect_right(switches, a)

    if times[0] > start and times[0] - start > limit:
        found.append(Gap(stream, None, times[0]))
    for a, b in pairwise(times):
        if (b - a > limit or switched(a, b)) and b > start and a < end:
            found.append(Gap(stream, a, b))
    if times[-1] < horizon and (horizon - times[-1] > limit or switched(times[-1], horizon)):
        found.append(Gap(stream, times[-1], None))
    return found


def last_successes(conn: Connection, streams: Iterable[str]) -> dict[str, datetime | None]:
    result: dict[str, datetime | None] = {}
    for stream in streams:
        result[stream] = conn.execute(
            text(f"SELECT observed_at FROM {obslog.last_success(':s', obslog.NEWEST)} AS b"),
            {"s": stream},
        ).scalar_one_or_none()
    return result


# --- account, commissions, system status, delistings -----------------------------------

# The one account and the one exchange status are not named in their answers.
ACCOUNT_FIELDS = typed_columns("account_versions", key=False)
BALANCE_FIELDS = typed_columns("balance_versions")
COMMISSION_FIELDS = typed_columns("commission_versions")
SYSTEM_STATUS_FIELDS = typed_columns("system_status_versions", key=False)
DELISTING_FIELDS = typed_columns("delisting_versions")


def _versions_at(
    conn: Connection,
    table: str,
    typed: Sequence[str],
    at: datetime | None,
    where: str = "TRUE",
    params: Mapping[str, Any] | None = None,
    order: str = "1",
) -> list[Version]:
    """The versions of ``table`` in force at ``at`` (None: the current ones)."""
    when = _in_force(at)
    rows = conn.execute(
        text(
            f"SELECT {', '.join(typed)}, {_VERSION_COLUMNS} FROM {table}"
            f" WHERE {when} AND {where} ORDER BY {order}"
        ),
        {**(params or {}), "t": at},
    ).all()
    return [_version(r, typed) for r in rows]


def account_as_of(conn: Connection, at: datetime | None) -> Version | None:
    """Commissions, permissions and flags of the polled account at ``at``."""
    found = _versions_at(conn, "account_versions", ACCOUNT_FIELDS, at)
    return found[0] if found else None


def balances_as_of(
    conn: Connection, at: datetime | None, asset: str | None = None
) -> list[Version]:
    """Non-zero balances at ``at``, by asset; an asset without a row held zero."""
    where, params = ("asset = :asset", {"asset": asset}) if asset is not None else ("TRUE", {})
    return _versions_at(conn, "balance_versions", BALANCE_FIELDS, at, where, params, "asset")


def commission_as_of(conn: Connection, symbol: str, at: datetime | None) -> Version | None:
    found = _versions_at(
        conn, "commission_versions", COMMISSION_FIELDS, at, "symbol = :symbol", {"symbol": symbol}
    )
    return found[0] if found else None


def system_status_as_of(conn: Connection, at: datetime | None) -> Version | None:
    found = _versions_at(conn, "system_status_versions", SYSTEM_STATUS_FIELDS, at)
    return found[0] if found else None


def delistings_as_of(conn: Connection, at: datetime | None) -> list[Version]:
    """Delistings announced and still scheduled at ``at``; ``valid_from`` is when first seen."""
    return _versions_at(
        conn, "delisting_versions", DELISTING_FIELDS, at, order="delist_time, symbol"
    )


SCHEMA_FIELDS = ["path", *typed_columns("schema_versions", key=False)]  # the stream is asked


def schema_as_of(conn: Connection, stream: str, at: datetime | None) -> list[Version]:
    """The field paths of ``stream``'s documents in force at ``at``, by path (core.schema)."""
    return _versions_at(
        conn, "schema_versions", SCHEMA_FIELDS, at, "stream = :stream", {"stream": stream}, "path"
    )


# --- the wallet: coins and their networks (core.wallet: no balance is ever stored) ------

WALLET_COIN_FIELDS = typed_columns("wallet_coin_versions")
WALLET_NETWORK_FIELDS = typed_columns("wallet_network_versions")


def wallet_networks_as_of(
    conn: Connection, at: datetime | None, coin: str | None = None, network: str | None = None
) -> list[Version]:
    """Every network (of ``coin``, named ``network``, if given) in force at ``at``."""
    conditions = [f"{name} = :{name}" for name, v in (("coin", coin), ("network", network)) if v]
    return _versions_at(
        conn,
        "wallet_network_versions",
        WALLET_NETWORK_FIELDS,
        at,
        " AND ".join(conditions) or "TRUE",
        {"coin": coin, "network": network},
        "coin, network",
    )


def wallet_coin_as_of(conn: Connection, coin: str, at: datetime | None) -> Version | None:
    found = _versions_at(
        conn, "wallet_coin_versions", WALLET_COIN_FIELDS, at, "coin = :coin", {"coin": coin}
    )
    return found[0] if found else None


def wallet_network_versions(
    conn: Connection, coin: str, network: str | None = None, until: datetime | None = None
) -> list[Version]:
    """Every version of the coin's networks (or of one) opened by ``until`` (None: all),
    by network and time: a network's history is a few versions a year, read whole."""
    conditions = ["coin = :coin"]
    if network is not None:
        conditions.append("network = :network")
    if until is not None:
        conditions.append("valid_from <= :until")
    rows = conn.execute(
        text(
            f"SELECT {', '.join(WALLET_NETWORK_FIELDS)}, {_VERSION_COLUMNS}"
            f" FROM wallet_network_versions WHERE {' AND '.join(conditions)}"
            " ORDER BY network, valid_from"
        ),
        {"coin": coin, "network": network, "until": until},
    ).all()
    return [_version(r, WALLET_NETWORK_FIELDS) for r in rows]


@dataclass(frozen=True, slots=True)
class Since:
    """Since when a field has held its value at an instant: the ``valid_from`` of the first
    of the unbroken run of versions holding it; ``first_seen`` when that run reaches back to
    the key's first version ever recorded (before it, nothing is known)."""

    at: datetime
    first_seen: bool


def held_since(versions: Sequence[Version], field_name: str) -> Since:
    """Since when the last of ``versions`` (one key's, in time order) has held its
    ``field_name``: a version that opened where another closed continues its run; a gap
    (the network gone from the answers meanwhile) starts a new one."""
    current = versions[-1]
    start = len(versions) - 1
    while start > 0:
        before = versions[start - 1]
        if before.valid_to != versions[start].valid_from:
            break
        if before.fields[field_name] != current.fields[field_name]:
            break
        start -= 1
    return Since(versions[start].valid_from, start == 0)


@dataclass(frozen=True, slots=True)
class NetworkInForce:
    version: Version
    deposit_since: Since
    withdraw_since: Since


@dataclass(frozen=True, slots=True)
class WalletCoin:
    """A coin's own switches at an instant and its networks in force then."""

    coin: Version
    networks: list[NetworkInForce]


def wallet_coin_at(conn: Connection, coin: str, at: datetime) -> WalletCoin | None:
    """The coin and each of its networks in force at ``at``, with since when its deposit and
    withdrawal switches had been in their positions; None if the coin was not listed."""
    found = wallet_coin_as_of(conn, coin, at)
    if found is None:
        return None
    by_network: dict[str, list[Version]] = defaultdict(list)
    for v in wallet_network_versions(conn, coin, until=at):
        by_network[v.fields["network"]].append(v)
    return WalletCoin(
        found,
        [
            NetworkInForce(
                runs[-1],
                held_since(runs, "deposit_enable"),
                held_since(runs, "withdraw_enable"),
            )
            for runs in by_network.values()
            if runs[-1].valid_to is None or runs[-1].valid_to > at
        ],
    )


def wallet_network_history(
    conn: Connection,
    coin: str,
    network: str,
    start: datetime | None,
    end: datetime | None,
    *,
    limit: int,
    cursor: str | None = None,
) -> HistoryPage:
    """The instants at which the network's answer changed, overlapping [start, end), each
    with the fields that changed (a network gone from the answers: ``listed`` false); at
    most ``limit``, after ``cursor``. Raises ``core.cursors.CursorError`` for a token this
    history did not hand out."""
    return _object_history(wallet_network_versions(conn, coin, network), start, end, limit, cursor)


def _object_history(
    versions: Sequence[Version],
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> HistoryPage:
    """A page of the history of one entity that is one object (a network, a margin pair):
    its versions, oldest first, each with the fields that changed. Raises
    ``core.cursors.CursorError`` for a token this history did not hand out."""
    after = decode_position(cursor, 0, "this history")[0] if cursor is not None else None
    # _entries reads an entity's own object under the name "symbol" (a symbol's filters
    # under their types): such an entity is one object, so all its versions go there.
    entries = [
        e
        for e in _entries([("symbol", v) for v in versions], None, None)
        if (end is None or e.valid_from < end)
        and (start is None or e.valid_to is None or e.valid_to > start)
        and (after is None or e.valid_from > after)
    ]
    page = entries[:limit]
    more = len(entries) > limit
    return HistoryPage(page, encode_position(page[-1].valid_from, ()) if more else None)


# --- margin: cross and isolated pairs, the margin delist schedule -----------------------

# Both pair tables have one shape (core.models.MarginPairColumns).
MARGIN_PAIR_FIELDS = typed_columns("margin_pair_versions")
MARGIN_DELISTING_FIELDS = typed_columns("margin_delisting_versions")


def margin_pairs_as_of(conn: Connection, table: str, at: datetime | None) -> list[Version]:
    """Every pair of ``table`` (cross or isolated) in force at ``at``, by symbol."""
    return _versions_at(conn, table, MARGIN_PAIR_FIELDS, at, order="symbol")


def margin_pair_versions(conn: Connection, table: str, symbol: str) -> list[Version]:
    """Every version of one pair, oldest first: a few a year, read whole."""
    rows = conn.execute(
        text(
            f"SELECT {', '.join(MARGIN_PAIR_FIELDS)}, {_VERSION_COLUMNS} FROM {table}"
            " WHERE symbol = :symbol ORDER BY valid_from"
        ),
        {"symbol": symbol},
    ).all()
    return [_version(r, MARGIN_PAIR_FIELDS) for r in rows]


def margin_pair_history(
    conn: Connection,
    table: str,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    *,
    limit: int,
    cursor: str | None = None,
) -> HistoryPage:
    """The instants at which the pair's answer changed, overlapping [start, end), each
    with the fields that changed (gone from the answers: ``listed`` false)."""
    return _object_history(margin_pair_versions(conn, table, symbol), start, end, limit, cursor)


def margin_delistings_as_of(conn: Connection, at: datetime | None) -> list[Version]:
    """Margin delistings announced and still scheduled at ``at``; ``valid_from`` is when
    first seen."""
    return _versions_at(
        conn,
        "margin_delisting_versions",
        MARGIN_DELISTING_FIELDS,
        at,
        order="delist_time, type, name",
    )
