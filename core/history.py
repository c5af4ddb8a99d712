"""Reading history: latest, as of t, versions over a window, and the evidence (DESIGN §2, §7).

Every answer about time t carries its evidence: the last successful observation at or
before t, the first one after it, and whether t lies in a gap (no success for more than
three intervals), because "TRADING at 14:03" means little if nobody looked between
09:00 and 18:00.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, text

from core.bodies import restore_server_time
from core.diff import FieldChange, diff_objects
from core.models import SUCCESS_OUTCOMES

GAP_FACTOR = 3

_SYMBOL_COLUMNS = (
    "symbol, status, base_asset, quote_asset, base_asset_precision, quote_precision,"
    " quote_asset_precision, base_commission_precision, quote_commission_precision,"
    " order_types, iceberg_allowed, oco_allowed, oto_allowed, quote_order_qty_market_allowed,"
    " allow_trailing_stop, cancel_replace_allowed, amend_allowed, is_spot_trading_allowed,"
    " is_margin_trading_allowed, permissions, permission_sets,"
    " default_self_trade_prevention_mode, allowed_self_trade_prevention_modes"
)
_FILTER_COLUMNS = (
    "min_price, max_price, tick_size, min_qty, max_qty, step_size, min_notional, max_notional,"
    " apply_min_to_market, apply_max_to_market, avg_price_mins, multiplier_up, multiplier_down,"
    " bid_multiplier_up, bid_multiplier_down, ask_multiplier_up, ask_multiplier_down,"
    " max_position, parts_limit, max_num_orders, max_num_algo_orders, max_num_iceberg_orders"
)
_VERSION_COLUMNS = "valid_from, valid_to, opened_by, closed_by, raw"


@dataclass(frozen=True, slots=True)
class Evidence:
    observed_before: datetime | None
    observed_after: datetime | None
    gap: bool
    gap_from: datetime | None = None
    gap_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class Version:
    """One version row: its typed fields, its range and the source object."""

    fields: dict[str, Any]
    valid_from: datetime
    valid_to: datetime | None
    opened_by: int
    raw: dict[str, Any]


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


def _version(row: Any, typed: Sequence[str]) -> Version:
    return Version(
        fields={name: row[name] for name in typed},
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        opened_by=row["opened_by"],
        raw=row["raw"],
    )


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


SYMBOL_FIELDS = _names(_SYMBOL_COLUMNS)
FILTER_FIELDS = _names(_FILTER_COLUMNS)


def evidence(
    conn: Connection, stream: str, at: datetime, interval_seconds: float, now: datetime
) -> Evidence:
    row = conn.execute(
        text(
            "SELECT (SELECT max(observed_at) FROM observations WHERE stream = :s"
            "        AND outcome = ANY(:ok) AND observed_at <= :t),"
            "       (SELECT min(observed_at) FROM observations WHERE stream = :s"
            "        AND outcome = ANY(:ok) AND observed_at > :t)"
        ),
        {"s": stream, "t": at, "ok": list(SUCCESS_OUTCOMES)},
    ).one()
    before, after = row[0], row[1]
    limit = timedelta(seconds=GAP_FACTOR * interval_seconds)
    end = after if after is not None else max(now, at)
    in_gap = before is None or end - before > limit
    if not in_gap:
        return Evidence(before, after, False)
    return Evidence(before, after, True, gap_from=before, gap_to=after)


def _symbol_rows(conn: Connection, where: str, params: dict[str, Any]) -> list[Any]:
    return list(
        conn.execute(
            text(
                f"SELECT {_SYMBOL_COLUMNS}, {_VERSION_COLUMNS} FROM symbol_versions WHERE {where}"
            ),
            params,
        ).mappings()
    )


def _filter_rows(conn: Connection, where: str, params: dict[str, Any]) -> list[Any]:
    return list(
        conn.execute(
            text(
                f"SELECT symbol, filter_type, {_FILTER_COLUMNS}, {_VERSION_COLUMNS}"
                f" FROM symbol_filter_versions WHERE {where}"
            ),
            params,
        ).mappings()
    )


def symbol_as_of(conn: Connection, symbol: str, at: datetime) -> SymbolRules | None:
    """The symbol's rules in force at ``at``, or None if it was not listed then."""
    where = "symbol = :sym AND tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
    rows = _symbol_rows(conn, where, {"sym": symbol, "t": at})
    if not rows:
        return None
    filters = {
        r["filter_type"]: _version(r, FILTER_FIELDS)
        for r in _filter_rows(conn, where, {"sym": symbol, "t": at})
    }
    return SymbolRules(_version(rows[0], SYMBOL_FIELDS), filters)


def symbols_as_of(
    conn: Connection,
    at: datetime | None,
    *,
    status: str | None = None,
    base_asset: str | None = None,
    quote_asset: str | None = None,
) -> list[SymbolRules]:
    """Every symbol in force at ``at`` (None: the current versions), sorted by name."""
    when = (
        "valid_to IS NULL"
        if at is None
        else "tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
    )
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
    symbols = _symbol_rows(conn, " AND ".join(where) + " ORDER BY symbol", params)
    if not symbols:
        return []
    filters: dict[str, dict[str, Version]] = defaultdict(dict)
    filter_where = when
    if len(where) > 1:
        filter_where += " AND symbol = ANY(:names)"
        params["names"] = [r["symbol"] for r in symbols]
    for r in _filter_rows(conn, filter_where, params):
        filters[r["symbol"]][r["filter_type"]] = _version(r, FILTER_FIELDS)
    return [SymbolRules(_version(r, SYMBOL_FIELDS), filters[r["symbol"]]) for r in symbols]


def symbol_history(
    conn: Connection, symbol: str, start: datetime | None, end: datetime | None
) -> list[HistoryEntry]:
    """The instants at which the symbol's rules changed, overlapping [start, end), with diffs.

    Each entry is diffed against the rules in force just before it, so a window that
    starts mid-history still says what changed; a delisting is an entry with
    ``listed=False`` whose changes remove every field.
    """
    params = {"sym": symbol}
    parts: list[tuple[str, Any]] = [
        ("symbol", r) for r in _symbol_rows(conn, "symbol = :sym", params)
    ]
    parts += [(r["filter_type"], r) for r in _filter_rows(conn, "symbol = :sym", params)]
    openers: dict[datetime, int] = {}
    for _, r in parts:
        openers.setdefault(r["valid_from"], r["opened_by"])
        if r["valid_to"] is not None:
            openers.setdefault(r["valid_to"], r["closed_by"])

    entries: list[HistoryEntry] = []
    previous: dict[str, Any] = {}
    for instant in sorted(openers):
        state = {
            name: r["raw"]
            for name, r in parts
            if r["valid_from"] <= instant and (r["valid_to"] is None or instant < r["valid_to"])
        }
        changes = _rules_diff(previous, state)
        previous = state
        if changes:
            entries.append(
                HistoryEntry(instant, None, openers[instant], "symbol" in state, changes)
            )
    for i in range(len(entries) - 1):
        entries[i] = replace(entries[i], valid_to=entries[i + 1].valid_from)
    return [
        e
        for e in entries
        if (end is None or e.valid_from < end)
        and (start is None or e.valid_to is None or e.valid_to > start)
    ]


def _rules_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    changes = diff_objects(before.get("symbol"), after.get("symbol"))
    for ftype in sorted((before.keys() | after.keys()) - {"symbol"}):
        changes.extend(
            diff_objects(before.get(ftype), after.get(ftype), prefix=f"filters.{ftype}.")
        )
    return changes


def rate_limits_as_of(conn: Connection, at: datetime | None) -> list[Version]:
    when = (
        "valid_to IS NULL"
        if at is None
        else "tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)"
    )
    rows = conn.execute(
        text(
            f"SELECT rate_limit_type, interval, interval_num, limit_value, {_VERSION_COLUMNS}"
            f" FROM rate_limit_versions WHERE {when} ORDER BY rate_limit_type, interval, interval_num"
        ),
        {"t": at},
    ).mappings()
    return [
        _version(r, ("rate_limit_type", "interval", "interval_num", "limit_value")) for r in rows
    ]


def request_weight_limit(conn: Connection) -> int | None:
    """The current REQUEST_WEIGHT per 1 minute, the window of ``X-MBX-USED-WEIGHT-1M``."""
    value = conn.execute(
        text(
            "SELECT limit_value FROM rate_limit_versions WHERE valid_to IS NULL"
            " AND rate_limit_type = 'REQUEST_WEIGHT' AND interval = 'MINUTE' AND interval_num = 1"
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    observation_id: int
    observed_at: datetime
    body: bytes


def exchange_info_as_of(conn: Connection, at: datetime) -> StoredDocument | None:
    """The exact exchangeInfo body of the last successful observation at or before ``at``."""
    row = conn.execute(
        text(
            "SELECT o.id, o.observed_at, b.body FROM observations o"
            " JOIN raw_bodies b ON b.sha256 = o.body_sha256"
            " WHERE o.stream = 'exchange_info' AND o.outcome = ANY(:ok) AND o.observed_at <= :t"
            " ORDER BY o.observed_at DESC LIMIT 1"
        ),
        {"t": at, "ok": list(SUCCESS_OUTCOMES)},
    ).one_or_none()
    if row is None:
        return None
    server_ms = int(row[1].timestamp() * 1000)
    return StoredDocument(row[0], row[1], restore_server_time(bytes(row[2]), server_ms))


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: int
    stream: str
    replica_id: str
    observed_at: datetime
    requested_at: datetime
    duration_ms: int
    outcome: str
    http_status: int | None
    used_weight: int | None
    error_class: str | None
    error_code: int | None
    error_message: str | None
    attempts: int | None
    backoff_ms: int | None


def observations(
    conn: Connection,
    *,
    stream: str | None,
    outcome: str | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[ObservationRow]:
    where = ["observed_at >= :start", "observed_at < :end"]
    params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    if stream is not None:
        where.append("stream = :stream")
        params["stream"] = stream
    if outcome is not None:
        where.append("outcome = :outcome")
        params["outcome"] = outcome
    rows = conn.execute(
        text(
            "SELECT id, stream, replica_id, observed_at, requested_at, duration_ms, outcome,"
            " http_status, used_weight, error_class, error_code, error_message, attempts,"
            f" backoff_ms FROM observations WHERE {' AND '.join(where)} ORDER BY observed_at, id LIMIT :limit"
        ),
        params,
    )
    return [ObservationRow(*r) for r in rows]


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
    """Stretches within [start, end) with no successful observation for > 3 intervals."""
    limit = timedelta(seconds=GAP_FACTOR * interval_seconds)
    rows = conn.execute(
        text(
            "SELECT observed_at FROM ("
            "  (SELECT observed_at FROM observations WHERE stream = :s AND outcome = ANY(:ok)"
            "   AND observed_at < :start ORDER BY observed_at DESC LIMIT 1)"
            "  UNION ALL"
            "  (SELECT observed_at FROM observations WHERE stream = :s AND outcome = ANY(:ok)"
            "   AND observed_at >= :start AND observed_at < :end)"
            "  UNION ALL"
            "  (SELECT observed_at FROM observations WHERE stream = :s AND outcome = ANY(:ok)"
            "   AND observed_at >= :end ORDER BY observed_at LIMIT 1)"
            ") AS s ORDER BY observed_at"
        ),
        {"s": stream, "ok": list(SUCCESS_OUTCOMES), "start": start, "end": end},
    ).scalars()
    times: list[datetime] = list(rows)
    found: list[Gap] = []
    if not times:
        return [Gap(stream, None, None)]
    if times[0] > start and times[0] - start > limit:
        found.append(Gap(stream, None, times[0]))
    for a, b in pairwise(times):
        if b - a > limit and b > start and a < end:
            found.append(Gap(stream, a, b))
    horizon = min(end, now)
    if times[-1] < horizon and horizon - times[-1] > limit:
        found.append(Gap(stream, times[-1], None))
    return found


def last_successes(conn: Connection, streams: Iterable[str]) -> dict[str, datetime | None]:
    result: dict[str, datetime | None] = {}
    for stream in streams:
        result[stream] = conn.execute(
            text(
                "SELECT max(observed_at) FROM observations WHERE stream = :s AND outcome = ANY(:ok)"
            ),
            {"s": stream, "ok": list(SUCCESS_OUTCOMES)},
        ).scalar_one()
    return result
