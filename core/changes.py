"""The change feed: every change of the versioned entities, field by field, in time order.

A change happens at the instant one version of an entity closes and its successor opens
(the writer dates both with the observation that saw the change), so the feed pairs, per
entity key and instant, the version that closed with the one that opened and diffs their
source objects with ``core.diff``. A symbol's own fields and its filters are versioned
apart but reported together, under the symbol's key (``filters.PRICE_FILTER.tickSize``),
because that is how a reader thinks of a symbol. A listing is one change of the field
``listed`` from null to the whole object, filters included, and a delisting the reverse:
reporting every field of a new symbol as a change would bury the one fact that matters.
A stream's move to another source (core.ingest) is neither: the versions its ``switched``
observation closes and those the new source's first success opens are the ends of two
histories, not delistings and listings, and the feed leaves them out (``_new_histories``);
the observation log and the gap in the evidence tell of the move.
The account and commission objects nest their rates, so their nested fields are
reported one by one (``commissionRates.maker``). The shape of each public stream's
documents (core.schema) is the entity ``schema``, keyed ``<stream>:<path>``: a path that
Binance starts sending is ``listed``, one it stops sending is delisted, and a change of
the JSON types it holds is a change of ``types``. Its rows carry their stream, so they
are listed under it and filtered with it. They are listed only when asked for
(``schema``): a stream's first observation lists every path it has, and a reader of rule
changes should not wade through those.

A feed covers one market's streams (core.streams.feed_streams): USD-M's and COIN-M's
contracts, rate limits, exchange filters and (USD-M) assets are entities of the same names
as spot's (``symbol``...), told apart by their stream, so one page never mixes markets.

Balances are left out on purpose: they change with every fill, and in incident work
that churn would bury the permission or commission change that matters; they stay
readable as of any instant (``/v1/account/balances``, ``balance_versions``). The account
and commission streams are private (``PRIVATE_STREAMS``): the caller decides whether to
ask for them, and by default they are not read.

Changes are ordered by ``(changed_at, entity, key, field)``, which is unique, and a page
ends with a cursor holding the last of those tuples: the next page starts strictly after
it, so pages never repeat or skip a change, whatever their size, and changes recorded
later (always at later instants) only extend the feed.

A page is read by keyset, at the cost of the page, not of the window: first the next
entities in ``(changed_at, entity, key)`` order after the cursor, each table's open and
close indexes walked in that order with a LIMIT (keys compare byte-wise, ``COLLATE "C"``,
as Python compares the same strings), then the versions of exactly those entities, so the
version closed and its successor opened by one observation always come in one page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

from core.cursors import decode_position, encode_position
from core.diff import FieldChange, diff_objects, flatten
from core.models import VERSIONED_TABLES
from core.streams import CATALOGUE, STREAMS, feed_streams
from core.streams import stream as stream_declaration

LISTED = "listed"


@dataclass(frozen=True, slots=True)
class Change:
    changed_at: datetime
    stream: str
    entity: str  # symbol, rate_limit, exchange_filter, account, commission, ...
    key: str
    field: str
    old: Any
    new: Any
    observation_id: int
    # The last successful poll of the stream before the change: it happened in between.
    observed_before: datetime | None

    @property
    def position(self) -> tuple[datetime, str, str, str]:
        return (self.changed_at, self.entity, self.key, self.field)


@dataclass(frozen=True, slots=True)
class ChangePage:
    changes: list[Change]
    next_cursor: str | None


def encode_cursor(position: tuple[datetime, str, str, str]) -> str:
    changed_at, entity, key, field = position
    return encode_position(changed_at, (entity, key, field))


def decode_cursor(token: str) -> tuple[datetime, str, str, str]:
    """Raises ``core.cursors.CursorError`` for a token this feed did not hand out."""
    when, (entity, key, field) = decode_position(token, 3, "this feed")
    return (when, entity, key, field)


@dataclass(frozen=True, slots=True)
class _Row:
    key: tuple[Any, ...]
    valid_from: datetime
    valid_to: datetime | None
    opened_by: int
    closed_by: int | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Table:
    stream: str
    entity: str
    name: str
    key_columns: tuple[str, ...]
    nested: bool = False  # report nested objects' fields one by one (core.diff.flatten)
    # The leading key columns that name the entity in the feed (a symbol's filters are
    # reported under the symbol); all of them when None.
    feed_key: tuple[str, ...] | None = None
    # The rows belong to the stream named in their ``stream`` column (the first key
    # column), not to ``stream``: one table holds every stream's shape.
    by_stream: bool = False

    @property
    def per_symbol(self) -> bool:
        return "symbol" in self.key_columns

    @property
    def key_sql(self) -> str:
        """The feed's key (``_key_text``) in SQL, compared byte-wise (``COLLATE "C"``) so
        that PostgreSQL orders keys as Python orders the same strings (code points)."""
        columns = self.feed_key or self.key_columns
        if len(columns) == 1:
            return f'({columns[0]} COLLATE "C")'
        parts = " || ':' || ".join(f'"{c}"::text' for c in columns)
        return f'(({parts}) COLLATE "C")'


SYMBOL = "symbol"
SCHEMA = "schema"
_SCHEMA = _Table("", SCHEMA, "schema_versions", ("stream", "path"), by_stream=True)
# Every table the feed reads, from the stream catalogue, in catalogue order.
_FEED_TABLES = tuple(
    _Table(s.name, f.entity, f.table, VERSIONED_TABLES[f.table].__key__, f.nested, f.feed_key)
    for s in CATALOGUE
    for f in s.feed
)


def _is_filters(table: _Table) -> bool:
    """A symbol's filters: versioned apart, reported under the symbol (``filters.<type>.``)."""
    return table.entity == SYMBOL and "filter_type" in table.key_columns


def _stream_of(entity: str, key: str, streams_of: dict[str, str]) -> str:
    """The stream a change belongs to: a schema key leads with it (``exchange_info:...``);
    any other entity is one stream's within a market (``streams_of``)."""
    return key.split(":", 1)[0] if entity == SCHEMA else streams_of[entity]


_BOUNDS = ("valid_from", "valid_to")  # a version opens at one and closes at the other

# Where an entity's change stands in the feed, before its fields: (changed_at, entity, key).
EventPosition = tuple[datetime, str, str]


@dataclass(frozen=True, slots=True)
class _After:
    """Where the next events start: at ``position`` itself (``inclusive``) or after it."""

    position: EventPosition
    inclusive: bool


def _after_condition(table: _Table, bound: str, after: _After | None) -> str:
    """The keyset condition on ``bound`` for the events of ``table`` after ``after``.

    The entity is a constant of the table, so the tuple comparison reduces to a range on
    the bound (the index's leading column) and, for the cursor's own entity, on the key.
    """
    if after is None:
        return "TRUE"
    entity = after.position[1]
    if table.entity > entity:
        return f"{bound} >= :after_at"
    if table.entity < entity:
        return f"{bound} > :after_at"
    op = ">=" if after.inclusive else ">"
    return f"{bound} >= :after_at AND ({bound}, {table.key_sql}) {op} (:after_at, :after_key)"


def _next_events(
    conn: Connection,
    tables: Sequence[_Table],
    start: datetime,
    end: datetime,
    symbol: str | None,
    after: _After | None,
    limit: int,
    streams: Collection[str] | None = None,
) -> list[EventPosition]:
    """The first ``limit`` (changed_at, entity, key) in ``[start, end)`` after ``after``.

    Each table is read from its open and its close index in the feed's order, at most
    ``limit`` entries each, so a page costs what it returns, however long the window.
    ``streams`` (None: all) keeps the rows of a table that holds several streams' entities.
    """
    if not tables:  # a symbol asked of streams whose entities are not symbols
        return []
    selects = []
    for table in tables:
        for bound in _BOUNDS:
            where = [
                f"{bound} >= :start",
                f"{bound} < :end",
                _after_condition(table, bound, after),
            ]
            if symbol is not None:
                where.append("symbol = :symbol")
            if table.by_stream and streams is not None:
                where.append("stream = ANY(:streams)")
            selects.append(
                f"(SELECT DISTINCT {bound} AS at, '{table.entity}' COLLATE \"C\" AS entity,"
                f" {table.key_sql} AS k FROM {table.name} WHERE {' AND '.join(where)}"
                " ORDER BY 1, 3 LIMIT :limit)"
            )
    rows = conn.execute(
        text(
            f"SELECT DISTINCT at, entity, k FROM ({' UNION ALL '.join(selects)}) AS e"
            " ORDER BY at, entity, k LIMIT :limit"
        ),
        {
            "start": start,
            "end": end,
            "symbol": symbol,
            "streams": list(streams or ()),
            "limit": limit,
            "after_at": after.position[0] if after is not None else None,
            "after_key": after.position[2] if after is not None else None,
        },
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


@dataclass
class _Event:
    """What closed and what opened for one key at one instant."""

    old: _Row | None = None
    new: _Row | None = None

    @property
    def observation_id(self) -> int:
        if self.new is not None:
            return self.new.opened_by
        assert self.old is not None
        assert self.old.closed_by is not None
        return self.old.closed_by


Events = dict[tuple[tuple[Any, ...], datetime], _Event]


def _events_of(conn: Connection, table: _Table, positions: Sequence[EventPosition]) -> Events:
    """The versions of ``table`` that open or close at the given positions, by key and instant.

    Both halves of a change (the version closed and its successor opened by one
    observation) belong to one position, so a page never holds half of a change.
    """
    events: Events = defaultdict(_Event)
    mine = [(at, key) for at, entity, key in positions if entity == table.entity]
    if not mine:
        return events
    keys = ", ".join(table.key_columns)
    selects = [
        f"SELECT '{bound}', {keys}, valid_from, valid_to, opened_by, closed_by, raw::text"
        f" FROM {table.name} JOIN unnest(CAST(:ats AS timestamptz[]), CAST(:keys AS text[]))"
        f" AS e(at, k) ON {bound} = e.at AND {table.key_sql} = e.k"
        for bound in _BOUNDS
    ]
    rows = conn.execute(
        text(" UNION ALL ".join(selects)),
        {"ats": [at for at, _ in mine], "keys": [key for _, key in mine]},
    ).all()
    n = len(table.key_columns)
    for r in rows:
        row = _Row(
            tuple(r[1 : n + 1]), r[n + 1], r[n + 2], r[n + 3], r[n + 4], orjson.loads(r[n + 5])
        )
        if r[0] == "valid_from":
            events[(row.key, row.valid_from)].new = row
        else:
            assert row.valid_to is not None
            events[(row.key, row.valid_to)].old = row
    return events


def _window_events(
    conn: Connection,
    table: _Table,
    start: datetime,
    end: datetime,
    symbols: Sequence[str] | None,
) -> Events:
    """Every version of ``table`` that opens or closes within ``[start, end)``, by key and
    instant: ``_events_of`` for a whole window at once, each version read once even when
    it both opens and closes there."""
    events: Events = defaultdict(_Event)
    where = "(valid_from >= :start AND valid_from < :end OR valid_to >= :start AND valid_to < :end)"
    if symbols is not None:
        where += " AND symbol = ANY(:symbols)"
    keys = ", ".join(table.key_columns)
    rows = conn.execute(
        text(
            f"SELECT {keys}, valid_from, valid_to, opened_by, closed_by, raw::text"
            f" FROM {table.name} WHERE {where}"
        ),
        {"start": start, "end": end, "symbols": list(symbols or ())},
    ).all()
    n = len(table.key_columns)
    for r in rows:
        row = _Row(tuple(r[:n]), r[n], r[n + 1], r[n + 2], r[n + 3], orjson.loads(r[n + 4]))
        if start <= row.valid_from < end:
            events[(row.key, row.valid_from)].new = row
        if row.valid_to is not None and start <= row.valid_to < end:
            events[(row.key, row.valid_to)].old = row
    return events


def _key_text(key: Sequence[Any]) -> str:
    return ":".join(str(part) for part in key)


def _raw_changes(
    table: _Table, events: Events
) -> list[tuple[datetime, str, str, FieldChange, int]]:
    """Changes of entities whose object is one version row: listed, delisted or diffed."""
    found: list[tuple[datetime, str, str, FieldChange, int]] = []
    for (key, at), event in events.items():
        old = event.old.raw if event.old is not None else None
        new = event.new.raw if event.new is not None else None
        if old is None or new is None:
            fields = [FieldChange(LISTED, old, new)]
        elif table.nested:
            fields = diff_objects(flatten(old), flatten(new))
        else:
            fields = diff_objects(old, new)
        found.extend((at, table.entity, _key_text(key), c, event.observation_id) for c in fields)
    return found


def _symbol_changes(
    symbols: Events,
    filters: Events,
) -> list[tuple[datetime, str, str, FieldChange, int]]:
    """Symbol changes: own fields and ``filters.<type>.<field>``; listings as one change."""
    listings: dict[tuple[str, datetime], _Event] = {}
    found: list[tuple[datetime, str, str, FieldChange, int]] = []
    for (key, at), event in symbols.items():
        name = key[0]
        if event.old is None or event.new is None:
            listings[(name, at)] = event
            continue
        for change in diff_objects(event.old.raw, event.new.raw):
            found.append((at, SYMBOL, name, change, event.observation_id))
    listed_filters: dict[tuple[str, datetime], list[tuple[str, _Event]]] = defaultdict(list)
    for (key, at), event in filters.items():
        name, ftype = key
        if (name, at) in listings:
            listed_filters[(name, at)].append((ftype, event))
            continue
        prefix = f"filters.{ftype}."
        old = event.old.raw if event.old is not None else None
        new = event.new.raw if event.new is not None else None
        for change in diff_objects(old, new, prefix=prefix):
            found.append((at, SYMBOL, name, change, event.observation_id))
    for (name, at), event in listings.items():
        parts = sorted(listed_filters[(name, at)], key=lambda p: p[0])
        if event.new is not None:
            new = {**event.new.raw, "filters": [e.new.raw for _, e in parts if e.new]}
            change = FieldChange(LISTED, None, new)
        else:
            assert event.old is not None
            old = {**event.old.raw, "filters": [e.old.raw for _, e in parts if e.old]}
            change = FieldChange(LISTED, old, None)
        found.append((at, SYMBOL, name, change, event.observation_id))
    return found


def observed_before(
    conn: Connection, instants: Iterable[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Any]:
    """For each (stream, instant), the stream's last successful observation before it."""
    pairs = sorted(set(instants))
    if not pairs:
        return {}
    rows = conn.execute(
        text(
            # The database's function, over detail rows and folded runs (core.obslog): the
            # analysts' changes view reads the same.
            "SELECT s, t, last_success_before(s, t)"
            " FROM unnest(CAST(:streams AS text[]), CAST(:times AS timestamptz[])) AS u(s, t)"
        ),
        {
            "streams": [p[0] for p in pairs],
            "times": [p[1] for p in pairs],
        },
    ).all()
    return {(r[0], r[1]): r[2] for r in rows}


def _matches(field: str, patterns: Sequence[str]) -> bool:
    """``filters.PRICE_FILTER`` matches itself and every field under it."""
    return any(field == p or field.startswith(p + ".") for p in patterns)


def _tables(streams: Collection[str], *, schema: bool, per_symbol: bool) -> list[_Table]:
    """The tables holding the changes of ``streams`` (one market's: a ValueError
    otherwise), with their document shapes' if ``schema``, only per-symbol ones if
    ``per_symbol``."""
    unknown = set(streams) - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown streams: {', '.join(sorted(unknown))}")
    markets = {stream_declaration(s).market for s in streams}
    if len(markets) > 1:
        raise ValueError(f"streams of one market at a time, not {', '.join(sorted(markets))}")
    return [
        t
        for t in (*_FEED_TABLES, _SCHEMA)
        if (t.stream in streams or (t.by_stream and schema)) and (not per_symbol or t.per_symbol)
    ]


def changes(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    streams: Collection[str] = feed_streams(),
    symbol: str | None = None,
    fields: Sequence[str] = (),
    exclude_fields: Sequence[str] = (),
    schema: bool = False,
    limit: int,
    cursor: str | None = None,
) -> ChangePage:
    """One page of the changes of ``streams`` within ``[start, end)``, after ``cursor``.

    The default ``streams`` are spot's public ones (core.streams.feed_streams): the
    account's need asking for. ``streams`` are one market's (each market's symbols are
    its own entities, under the same names): a ValueError otherwise.
    ``symbol`` keeps only that symbol's changes (its rules, its commission and its
    delisting; the account, rate limits, exchange filters and system status are no
    symbol's); ``fields`` keeps, and ``exclude_fields`` drops, the fields named or under
    a named prefix; ``schema`` adds the changes of ``streams``' document shapes. Raises ``core.cursors.CursorError`` for a token this feed did not make.
    """
    tables = _tables(streams, schema=schema, per_symbol=symbol is not None)
    streams_of = {t.entity: t.stream for t in tables if not t.by_stream}
    position = decode_cursor(cursor) if cursor is not None else None
    # The cursor's own change may be followed by more fields of the same entity at the
    # same instant: its event is read again and only the fields after it are kept.
    after = _After(position[:3], inclusive=True) if position is not None else None
    selected: list[tuple[datetime, str, str, FieldChange, int]] = []
    # Events to read: one more change than the page tells whether there is more, and the
    # cursor's own event comes back first.
    batch = limit + 1 + (position is not None)
    while len(selected) <= limit:
        positions = _next_events(conn, tables, start, end, symbol, after, batch, streams)
        found = _changes_at(conn, tables, positions)
        selected.extend(
            item
            for item in found
            if (position is None or (item[0], item[1], item[2], item[3].field) > position)
            and (not fields or _matches(item[3].field, fields))
            and not _matches(item[3].field, exclude_fields)
        )
        if len(positions) < batch:
            break
        after = _After(positions[-1], inclusive=False)
        # Field filters may drop most events: read on in growing batches, not one by one.
        batch *= 2
    result = _dated(conn, selected[:limit], streams_of)
    more = len(selected) > limit
    return ChangePage(result, encode_cursor(result[-1].position) if more else None)


def window_changes(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    streams: Collection[str],
    symbols: Sequence[str] | None = None,
    filter_fields: bool = True,
) -> list[Change]:
    """Every change of ``streams`` within ``[start, end)`` in the feed's order, with
    ``symbols`` only those symbols': what paging through ``changes`` to the end gives.

    For exports of a whole window: each table's versions that open or close in it are read
    in one statement and diffed in one pass, instead of a keyset walk per page, which
    costs ~80 µs a change over a year of history against a few here (bench/export.py).
    Without ``filter_fields``, the changes of symbols' filters other than those a listing
    or delisting holds are left out, and so are the reads of their versions: most of a
    long window's changes, which core.export diffs in SQL instead of a Python object each.
    """
    tables = _tables(streams, schema=False, per_symbol=symbols is not None)
    streams_of = {t.entity: t.stream for t in tables}

    def window(table: _Table) -> Events:
        return _window_events(conn, table, start, end, symbols)

    found = _changes_of(conn, tables, window if filter_fields else _listed_filters(conn, window))
    return _dated(conn, found, streams_of)


def _listed_filters(
    conn: Connection, events_of: Callable[[_Table], Events]
) -> Callable[[_Table], Events]:
    """``events_of``, except that a symbols' filters table gives only the versions at its
    symbols' listings and delistings (what their ``listed`` objects hold)."""
    read: dict[str, Events] = {}

    def events(table: _Table) -> Events:
        if not _is_filters(table):
            if table.name not in read:
                read[table.name] = events_of(table)
            return read[table.name]
        [own] = [
            t
            for t in _FEED_TABLES
            if t.stream == table.stream and t.entity == SYMBOL and not _is_filters(t)
        ]
        listings = [
            (at, SYMBOL, key[0])
            for (key, at), event in events(own).items()
            if event.old is None or event.new is None
        ]
        return _events_of(conn, table, listings)

    return events


def _dated(
    conn: Connection,
    found: Sequence[tuple[datetime, str, str, FieldChange, int]],
    streams_of: dict[str, str],
) -> list[Change]:
    """The changes ``found``, each with its stream's last successful poll before it."""
    before = observed_before(
        conn, ((_stream_of(item[1], item[2], streams_of), item[0]) for item in found)
    )
    return [
        Change(
            at,
            _stream_of(entity, key, streams_of),
            entity,
            key,
            c.field,
            c.old,
            c.new,
            observation_id,
            before[(_stream_of(entity, key, streams_of), at)],
        )
        for at, entity, key, c, observation_id in found
    ]


def _changes_at(
    conn: Connection, tables: Sequence[_Table], positions: Sequence[EventPosition]
) -> list[tuple[datetime, str, str, FieldChange, int]]:
    """Every change at ``positions``, in the feed's order."""
    return _changes_of(conn, tables, lambda table: _events_of(conn, table, positions))


def _changes_of(
    conn: Connection, tables: Sequence[_Table], events_of: Callable[[_Table], Events]
) -> list[tuple[datetime, str, str, FieldChange, int]]:
    """Every change of the events ``events_of`` reads from each table, in the feed's order."""
    found: list[tuple[datetime, str, str, FieldChange, int]] = []
    own = [t for t in tables if t.entity == SYMBOL and not _is_filters(t)]
    if own:  # one market's: its symbols and their filters
        [symbols] = own
        [filters] = [t for t in tables if _is_filters(t)]
        found.extend(_symbol_changes(events_of(symbols), events_of(filters)))
    for table in tables:
        if table.entity != SYMBOL:
            found.extend(_raw_changes(table, events_of(table)))
    moves = _new_histories(conn, {item[4] for item in found if item[3].field == LISTED})
    if moves:
        found = [item for item in found if item[3].field != LISTED or item[4] not in moves]
    return sorted(found, key=lambda item: (item[0], item[1], item[2], item[3].field))


def _new_histories(conn: Connection, observation_ids: Collection[int]) -> set[int]:
    """Those of the observations that end a history or begin the next: a ``switched`` one,
    or the first success of its stream after one (the new source's first snapshot)."""
    if not observation_ids:
        return set()
    rows = conn.execute(
        text(
            "SELECT o.id FROM observations o WHERE o.id = ANY(:ids) AND (o.outcome = 'switched'"
            # The stream's last switch before o is later than its last success before
            # o, folded ones included (core.obslog): nothing succeeded in between.
            " OR (SELECT max(p.observed_at) FROM observations p WHERE p.stream = o.stream"
            "     AND p.outcome = 'switched' AND p.observed_at < o.observed_at)"
            "    > coalesce(last_success_before(o.stream, o.observed_at), '-infinity'))"
        ),
        {"ids": sorted(observation_ids)},
    ).scalars()
    return set(rows)
