"""The change feed: every change of the versioned entities, field by field, in time order.

A change happens at the instant one version of an entity closes and its successor opens
(the writer dates both with the observation that saw the change), so the feed pairs, per
entity key and instant, the version that closed with the one that opened and diffs their
source objects with ``core.diff``. A symbol's own fields and its filters are versioned
apart but reported together, under the symbol's key (``filters.PRICE_FILTER.tickSize``),
because that is how a reader thinks of a symbol. A listing is one change of the field
``listed`` from null to the whole object, filters included, and a delisting the reverse:
reporting every field of a new symbol as a change would bury the one fact that matters.
The account and commission objects nest their rates, so their nested fields are
reported one by one (``commissionRates.maker``).

Balances are left out on purpose: they change with every fill, and in incident work
that churn would bury the permission or commission change that matters; they stay
readable as of any instant (``/v1/account/balances``, ``balance_versions``). The account
and commission streams are private (``PRIVATE_STREAMS``): the caller decides whether to
ask for them, and by default they are not read.

Changes are ordered by ``(changed_at, entity, key, field)``, which is unique, and a page
ends with a cursor holding the last of those tuples: the next page starts strictly after
it, so pages never repeat or skip a change, whatever their size, and changes recorded
later (always at later instants) only extend the feed.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

from core.diff import FieldChange, diff_objects, flatten
from core.models import PRIVATE_STREAMS, SUCCESS_OUTCOMES

LISTED = "listed"
STREAMS = ("exchange_info", "account", "account_commission", "system_status", "delistings")
PUBLIC_STREAMS = tuple(s for s in STREAMS if s not in PRIVATE_STREAMS)


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


class CursorError(ValueError):
    """A ``next`` token that this feed did not hand out."""


def encode_cursor(position: tuple[datetime, str, str, str]) -> str:
    changed_at, entity, key, field = position
    payload = orjson.dumps([changed_at.isoformat(), entity, key, field])
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str, str, str]:
    try:
        payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        changed_at, entity, key, field = orjson.loads(payload)
        when = datetime.fromisoformat(changed_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CursorError("next: not a cursor returned by this feed") from exc
    if when.tzinfo is None or not all(isinstance(x, str) for x in (entity, key, field)):
        raise CursorError("next: not a cursor returned by this feed")
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

    @property
    def per_symbol(self) -> bool:
        return "symbol" in self.key_columns


_SYMBOLS = _Table("exchange_info", "symbol", "symbol_versions", ("symbol",))
_FILTERS = _Table("exchange_info", "symbol", "symbol_filter_versions", ("symbol", "filter_type"))
# Entities whose object is one version row, in the order of STREAMS.
_WHOLE_ROW_TABLES = (
    _Table(
        "exchange_info",
        "rate_limit",
        "rate_limit_versions",
        ("rate_limit_type", "interval", "interval_num"),
    ),
    _Table("exchange_info", "exchange_filter", "exchange_filter_versions", ("filter_type",)),
    _Table("account", "account", "account_versions", ("account",), nested=True),
    _Table("account_commission", "commission", "commission_versions", ("symbol",), nested=True),
    _Table("system_status", "system_status", "system_status_versions", ("system",)),
    _Table("delistings", "delisting", "delisting_versions", ("symbol",)),
)
_STREAM_OF = {t.entity: t.stream for t in (_SYMBOLS, *_WHOLE_ROW_TABLES)}


def _rows_changing(
    conn: Connection, table: _Table, start: datetime, end: datetime, symbol: str | None
) -> list[_Row]:
    """Versions of ``table`` that open or close within ``[start, end)``."""
    keys = ", ".join(table.key_columns)
    where = (
        "((valid_from >= :start AND valid_from < :end) OR (valid_to >= :start AND valid_to < :end))"
    )
    if symbol is not None:
        assert table.per_symbol
        where += " AND symbol = :symbol"
    rows = conn.execute(
        text(
            f"SELECT {keys}, valid_from, valid_to, opened_by, closed_by, raw::text"
            f" FROM {table.name} WHERE {where}"
        ),
        {"start": start, "end": end, "symbol": symbol},
    ).all()
    n = len(table.key_columns)
    return [
        _Row(tuple(r[:n]), r[n], r[n + 1], r[n + 2], r[n + 3], orjson.loads(r[n + 4])) for r in rows
    ]


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


def _events(
    rows: Iterable[_Row], start: datetime, end: datetime
) -> dict[tuple[tuple[Any, ...], datetime], _Event]:
    events: dict[tuple[tuple[Any, ...], datetime], _Event] = defaultdict(_Event)
    for row in rows:
        if start <= row.valid_from < end:
            events[(row.key, row.valid_from)].new = row
        if row.valid_to is not None and start <= row.valid_to < end:
            events[(row.key, row.valid_to)].old = row
    return events


def _key_text(key: Sequence[Any]) -> str:
    return ":".join(str(part) for part in key)


def _raw_changes(
    table: _Table, events: dict[tuple[tuple[Any, ...], datetime], _Event]
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
    symbols: dict[tuple[tuple[Any, ...], datetime], _Event],
    filters: dict[tuple[tuple[Any, ...], datetime], _Event],
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
            found.append((at, "symbol", name, change, event.observation_id))
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
            found.append((at, "symbol", name, change, event.observation_id))
    for (name, at), event in listings.items():
        parts = sorted(listed_filters[(name, at)], key=lambda p: p[0])
        if event.new is not None:
            new = {**event.new.raw, "filters": [e.new.raw for _, e in parts if e.new]}
            change = FieldChange(LISTED, None, new)
        else:
            assert event.old is not None
            old = {**event.old.raw, "filters": [e.old.raw for _, e in parts if e.old]}
            change = FieldChange(LISTED, old, None)
        found.append((at, "symbol", name, change, event.observation_id))
    return found


def _observed_before(
    conn: Connection, instants: Iterable[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Any]:
    """For each (stream, instant), the stream's last successful observation before it."""
    pairs = sorted(set(instants))
    if not pairs:
        return {}
    rows = conn.execute(
        text(
            "SELECT s, t, (SELECT max(observed_at) FROM observations WHERE stream = s"
            "              AND outcome = ANY(:ok) AND observed_at < t)"
            " FROM unnest(CAST(:streams AS text[]), CAST(:times AS timestamptz[])) AS u(s, t)"
        ),
        {
            "ok": list(SUCCESS_OUTCOMES),
            "streams": [p[0] for p in pairs],
            "times": [p[1] for p in pairs],
        },
    ).all()
    return {(r[0], r[1]): r[2] for r in rows}


def _matches(field: str, patterns: Sequence[str]) -> bool:
    """``filters.PRICE_FILTER`` matches itself and every field under it."""
    return any(field == p or field.startswith(p + ".") for p in patterns)


def changes(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    streams: Collection[str] = PUBLIC_STREAMS,
    symbol: str | None = None,
    fields: Sequence[str] = (),
    exclude_fields: Sequence[str] = (),
    limit: int,
    cursor: str | None = None,
) -> ChangePage:
    """One page of the changes of ``streams`` within ``[start, end)``, after ``cursor``.

    The default ``streams`` are the public ones: the account's need asking for.
    ``symbol`` keeps only that symbol's changes (its rules, its commission and its
    delisting; the account, rate limits, exchange filters and system status are no
    symbol's); ``fields`` keeps, and ``exclude_fields`` drops, the fields named or under
    a named prefix. Raises ``CursorError`` for a token this feed did not make.
    """
    unknown = set(streams) - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown streams: {', '.join(sorted(unknown))}")
    after = decode_cursor(cursor) if cursor is not None else None
    lower = max(start, after[0]) if after is not None else start
    found: list[tuple[datetime, str, str, FieldChange, int]] = []
    if "exchange_info" in streams:
        symbol_events = _events(_rows_changing(conn, _SYMBOLS, lower, end, symbol), lower, end)
        filter_events = _events(_rows_changing(conn, _FILTERS, lower, end, symbol), lower, end)
        found.extend(_symbol_changes(symbol_events, filter_events))
    for table in _WHOLE_ROW_TABLES:
        if table.stream in streams and (symbol is None or table.per_symbol):
            rows = _rows_changing(conn, table, lower, end, symbol)
            found.extend(_raw_changes(table, _events(rows, lower, end)))
    selected = sorted(
        (
            item
            for item in found
            if (after is None or (item[0], item[1], item[2], item[3].field) > after)
            and (not fields or _matches(item[3].field, fields))
            and not _matches(item[3].field, exclude_fields)
        ),
        key=lambda item: (item[0], item[1], item[2], item[3].field),
    )
    page = selected[:limit]
    before = _observed_before(conn, ((_STREAM_OF[item[1]], item[0]) for item in page))
    result = [
        Change(
            at,
            _STREAM_OF[entity],
            entity,
            key,
            c.field,
            c.old,
            c.new,
            observation_id,
            before[(_STREAM_OF[entity], at)],
        )
        for at, entity, key, c, observation_id in page
    ]
    more = len(selected) > limit
    return ChangePage(result, encode_cursor(result[-1].position) if more else None)
