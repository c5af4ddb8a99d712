"""The whole-state diff: how the state at one instant differs from another's.

Unlike the change feed, which lists every step, this compares two snapshots only: a tick
size that went 0.01 → 0.10 → 0.01 between them is no difference. Both snapshots are read
with the same as-of rule as every other answer, and symbols are compared as a reader
sees them: their own fields and their filters (``filters.PRICE_FILTER.tickSize``). The
account and commissions are compared field by field like in the change feed (nested
rates as ``commissionRates.maker``); balances are not compared (see core.changes), and
the account's part is read only when the caller asks for it (``private``). Which tables
are compared, in which section, comes from the stream catalogue (core.streams).
The shape of the public streams' documents (core.schema) is compared too, keyed
``<stream>:<path>``: a filter type Binance started sending between the two instants is
``added``.

Two instants in different sources' histories (a stream moved to another source between
them, core.ingest) are not compared: what one exchange has and the other lacks would read
as every symbol removed and added, the delistings a move must never look like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

from core.diff import FieldChange, diff_objects, flatten
from core.history import symbols_as_of
from core.models import VERSIONED_TABLES
from core.streams import (
    CATALOGUE,
    DEFAULT_MARKET,
    PRIVATE_STREAMS,
    SCHEMA_FEED,
    FeedTable,
    feed_streams,
)
from core.streams import market as market_declaration


class DifferentSourcesError(Exception):
    """The two instants lie in different sources' histories of a stream."""

    def __init__(self, stream: str, at: datetime) -> None:
        self.stream = stream
        self.at = at
        super().__init__(f"{stream} moved to another source at {at.isoformat()}")


@dataclass(frozen=True, slots=True)
class EntityChange:
    key: str
    changes: list[FieldChange]


@dataclass(frozen=True, slots=True)
class EntityDiff:
    """Keys present only at the end, only at the start, and present at both but different."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[EntityChange] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StateDiff:
    """Each section of the market's diff (core.streams.diff_sections) by name; None:
    private, not asked for."""

    sections: dict[str, EntityDiff | None]


def _symbol_objects(conn: Connection, at: datetime, market: str) -> dict[str, dict[str, Any]]:
    """Every symbol of ``market`` at ``at`` as ``{own fields..., "filters": {type: filter}}``."""
    return {
        rules.symbol.fields["symbol"]: {
            **rules.symbol.raw,
            "filters": {ftype: v.raw for ftype, v in rules.filters.items()},
        }
        for rules in symbols_as_of(conn, at, market=market)
    }


def _symbol_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    own = diff_objects(
        {k: v for k, v in old.items() if k != "filters"},
        {k: v for k, v in new.items() if k != "filters"},
    )
    for ftype in sorted(old["filters"].keys() | new["filters"].keys()):
        own.extend(
            diff_objects(
                old["filters"].get(ftype), new["filters"].get(ftype), prefix=f"filters.{ftype}."
            )
        )
    return own


def _raw_at(conn: Connection, table: str, key: str, at: datetime) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        text(
            f"SELECT {key}, raw::text FROM {table}"
            " WHERE tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
        ),
        {"t": at},
    ).all()
    return {r[0]: orjson.loads(r[1]) for r in rows}


def _nested_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    return diff_objects(flatten(old), flatten(new))


def _compare(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    differ: Callable[[Any, Any], list[FieldChange]],
) -> EntityDiff:
    changed = []
    for key in sorted(before.keys() & after.keys()):
        found = differ(before[key], after[key])
        if found:
            changed.append(EntityChange(key, found))
    return EntityDiff(
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=changed,
    )


def _table_diff(conn: Connection, table: FeedTable, start: datetime, end: datetime) -> EntityDiff:
    """A table whose entities are one row each, keyed as the feed keys them (``a:b:c``)."""
    key = " || ':' || ".join(VERSIONED_TABLES[table.table].__key__)
    differ = _nested_changes if table.nested else diff_objects
    return _compare(
        _raw_at(conn, table.table, key, start), _raw_at(conn, table.table, key, end), differ
    )


def state_diff(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    private: bool = False,
    market: str = DEFAULT_MARKET,
) -> StateDiff:
    """How the state of ``market`` as of ``end`` differs from its state as of ``start``.

    The private streams' sections (the account's) are compared only if ``private``.
    Raises DifferentSourcesError if a stream compared moved to another source in between.
    """
    compared = feed_streams(market, private=True)
    moved = conn.execute(
        text(
            "SELECT stream, observed_at FROM observations WHERE outcome = 'switched'"
            " AND observed_at > :start AND observed_at <= :end AND stream = ANY(:compared)"
            " AND (:private OR stream <> ALL(:private_streams)) ORDER BY observed_at LIMIT 1"
        ),
        {
            "start": start,
            "end": end,
            "compared": list(compared),
            "private": private,
            "private_streams": sorted(PRIVATE_STREAMS),
        },
    ).one_or_none()
    if moved is not None:
        raise DifferentSourcesError(moved.stream, moved.observed_at)
    symbols = market_declaration(market).symbols
    sections: dict[str, EntityDiff | None] = {}
    for stream in CATALOGUE:
        if stream.name not in compared:
            continue
        for table in stream.feed:
            if table.diff is None:
                continue
            if stream.private and not private:
                sections[table.diff] = None
            elif table.table == symbols:  # with its filters
                sections[table.diff] = _compare(
                    _symbol_objects(conn, start, market),
                    _symbol_objects(conn, end, market),
                    _symbol_changes,
                )
            else:
                sections[table.diff] = _table_diff(conn, table, start, end)
    shapes = _table_diff(conn, SCHEMA_FEED, start, end)

    def reported(shape_key: str) -> bool:
        """Whether a shape (``<stream>:<path>``) is of a stream this diff compares."""
        return shape_key.split(":", 1)[0] in compared

    sections["schema"] = EntityDiff(
        added=[k for k in shapes.added if reported(k)],
        removed=[k for k in shapes.removed if reported(k)],
        changed=[c for c in shapes.changed if reported(c.key)],
    )
    return StateDiff(sections)
