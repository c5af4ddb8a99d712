"""The margin streams' bodies to snapshots (pure): cross and isolated pairs, delist schedule.

A pair is one entity keyed by its symbol, so switching its buying off is one new version
of that pair alone. As with every stream, only a whole document is accepted: a pair
missing from an answer closes its version, so an empty list of pairs (which Binance never
sends while margin trading exists) is refused rather than read as every pair gone. The
delist schedule may well be empty: nothing announced.

``delistTime`` and its unit: Binance's docs give the schedule's in milliseconds
(``1686161202000``) but ``allPairs``' example in seconds (``1704973040``), and no real
answer was ever captured (notes §16). So the unit is read from the number, explicitly:
below 10^11 it is seconds (10^11 s is year 5138; 10^11 ms is 1973-03-03, before margin
trading existed), otherwise milliseconds. The typed ``delist_time`` holds the instant;
``raw`` keeps the number as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.ingest import Entity, InvalidPayloadError, KindSnapshot, Snapshot, canonical_entity
from poller.parse import check_field, ms_to_datetime
from poller.parse_account import _document, _object

Key = tuple[Any, ...]

# Smallest delistTime read as milliseconds (see the module's docstring).
FIRST_MS = 10**11

# Binance field -> typed column of margin_pair_versions / margin_isolated_pair_versions,
# and its kind; ``delistTime`` is read apart (delist_instant).
PAIR_FIELDS: dict[str, tuple[str, str]] = {
    "id": ("pair_id", "int"),
    "base": ("base", "str"),
    "quote": ("quote", "str"),
    "isMarginTrade": ("is_margin_trade", "bool"),
    "isBuyAllowed": ("is_buy_allowed", "bool"),
    "isSellAllowed": ("is_sell_allowed", "bool"),
}
# Without these a pair's answer says nothing of what the stream is for.
REQUIRED_PAIR_FIELDS = ("isMarginTrade", "isBuyAllowed", "isSellAllowed")
# The schedule's lists -> the ``type`` of margin_delisting_versions their entries get.
SCHEDULE_LISTS = {"crossMarginAssets": "cross", "isolatedMarginSymbols": "isolated"}


def delist_instant(value: Any, where: str) -> datetime:
    """A ``delistTime`` as an instant, in seconds or milliseconds by its size."""
    number: int = check_field(value, "int", where)
    if number <= 0:
        raise InvalidPayloadError(f"{where}: expected a time after 1970, got {number}")
    return ms_to_datetime(number if number >= FIRST_MS else number * 1000)


def pair_row(src: Mapping[str, Any]) -> dict[str, Any]:
    where = f"margin pair {src.get('symbol')!r}"
    row: dict[str, Any] = dict.fromkeys(column for column, _ in PAIR_FIELDS.values())
    for name, (column, kind) in PAIR_FIELDS.items():
        value = src.get(name)
        if value is not None:
            row[column] = check_field(value, kind, f"{where} {name}")
    delist = src.get("delistTime")
    row["delist_time"] = None if delist is None else delist_instant(delist, f"{where} delistTime")
    return row


def _pairs(body: bytes, what: str, table: str) -> Snapshot:
    doc = _document(body, what)
    if not isinstance(doc, list):
        raise InvalidPayloadError(f"{what} body is not a list of pairs")
    if not doc:
        raise InvalidPayloadError(f"{what} body lists no pair")
    pairs: dict[Key, Entity] = {}
    for item in doc:
        pair = _object(item, "margin pair")
        symbol = check_field(pair.get("symbol"), "str", "margin pair symbol")
        if (symbol,) in pairs:
            raise InvalidPayloadError(f"margin pair {symbol!r} is listed twice")
        for field in REQUIRED_PAIR_FIELDS:
            check_field(pair.get(field), "bool", f"margin pair {symbol!r} {field}")
        pair_row(pair)  # validate now: a bad field must fail the poll, not the write
        pairs[(symbol,)] = canonical_entity(pair)
    return [KindSnapshot(table, pairs, pair_row)]


def parse_cross_pairs(body: bytes) -> Snapshot:
    """Every cross margin pair (``GET /sapi/v1/margin/allPairs``)."""
    return _pairs(body, "cross margin pairs", "margin_pair_versions")


def parse_isolated_pairs(body: bytes) -> Snapshot:
    """Every isolated margin pair (``GET /sapi/v1/margin/isolated/allPairs``)."""
    return _pairs(body, "isolated margin pairs", "margin_isolated_pair_versions")


def margin_delisting_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {"delist_time": delist_instant(src["delistTime"], f"{src['name']!r} delistTime")}


def parse_margin_delist_schedule(body: bytes) -> Snapshot:
    """One entity per announced cross margin asset and isolated margin symbol:
    ``{type, name, delistTime}``, keyed ``(type, name)`` as the spot schedule is keyed by
    symbol, so a postponement is a new version and ``valid_from`` says when the
    announcement was first seen."""
    doc = _document(body, "margin delist schedule")
    if not isinstance(doc, list):
        raise InvalidPayloadError("margin delist schedule body is not a list")
    entities: dict[Key, Entity] = {}
    for item in doc:
        entry = _object(item, "margin delist schedule entry")
        delist_time = entry.get("delistTime")
        delist_instant(delist_time, "margin delist schedule delistTime")
        for field, kind in SCHEDULE_LISTS.items():
            names = check_field(entry.get(field, []), "strlist", f"margin delist schedule {field}")
            for name in names:
                if (kind, name) in entities:
                    raise InvalidPayloadError(f"{kind} {name!r} is scheduled for delisting twice")
                entities[(kind, name)] = canonical_entity(
                    {"type": kind, "name": name, "delistTime": delist_time}
                )
    return [KindSnapshot("margin_delisting_versions", entities, margin_delisting_row)]
