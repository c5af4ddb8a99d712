"""Turning core's answers into JSON (pure, apart from building the Response).

The shapes are documented by ``api.schemas``; here they are built as plain dicts and
serialised by orjson, because validating thousands of objects on the way out would cost
more than reading them. Decimals become text with ``format(value, "f")``: ``str()`` would
turn a ``0.00000000`` from PostgreSQL into ``0E-8``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from flask import Response

from core.changes import ChangePage
from core.history import (
    SPOT,
    VERSION_FIELDS,
    ChangeWindow,
    Evidence,
    Gap,
    HistoryPage,
    Layout,
    ObservationRow,
    RulesRows,
    Since,
    SymbolRules,
    Version,
    WalletCoin,
)
from core.order_check import Order, Verdict
from core.replicas import ReplicaInfo
from core.state_diff import EntityDiff, StateDiff
from core.streams import DEFAULT_MARKET
from core.timeparse import format_instant

JSON = "application/json"


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = orjson.dumps(payload, default=_unsupported)
    return Response(body, status=status, mimetype=JSON, headers=headers)


def json_body(body: bytes) -> Response:
    """An answer serialised before, sent as it is."""
    return Response(body, mimetype=JSON)


def _unsupported(value: Any) -> str:
    """orjson's fallback, called only for types it lacks: a Decimal becomes exact text."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# All versions written by one observation share its timestamp, so a whole-exchange answer
# formats a few thousand distinct instants (about two a day of history) ~45,000 times.
_instant = lru_cache(maxsize=8192)(format_instant)


def decimal_text(value: Decimal) -> str:
    return format(value, "f")


def evidence(found: Evidence) -> dict[str, Any]:
    out: dict[str, Any] = {
        "observed_before": format_instant(found.observed_before),
        "observed_after": format_instant(found.observed_after),
        "gap": found.gap,
        "gap_from": format_instant(found.gap_from),
        "gap_to": format_instant(found.gap_to),
        "imported": found.imported,
    }
    if found.change is not None:
        out["change"] = change_window(found.change)
    return out


# How each kind of signal (core.signals) puts the start of a change in words.
_SIGNAL_WORDS = {
    "silence": "market stream went silent",
    "resumed": "market stream resumed",
    "contract_info": "contractInfo event",
    "account_update": "account event",
    "balance_update": "balance event",
}


def change_window(change: ChangeWindow) -> dict[str, Any]:
    """The realtime window of a change, with a sentence an incident review can quote."""
    since, seen = format_instant(change.since), format_instant(change.seen_at)
    words = _SIGNAL_WORDS.get(change.signal, change.signal)
    return {
        "since": since,
        "seen_at": seen,
        "signal": change.signal,
        "says": f"changed between {since} and {seen} ({words} at {since},"
        f" poll confirmed at {seen})",
    }


def filter_rules(version: Version) -> dict[str, Any]:
    # A plain copy: a whole exchange has ~20,000 filters, and json_response turns any
    # Decimal into text without a look at every value here.
    out: dict[str, Any] = dict(version.fields)
    out["valid_from"] = _instant(version.valid_from)
    out["valid_to"] = _instant(version.valid_to)
    out["raw"] = orjson.Fragment(version.raw_json)
    return out


def _market_head(market: str) -> dict[str, Any]:
    """Spot's answers keep the shape they had before markets existed; another market's
    answer names its market first."""
    return {} if market == DEFAULT_MARKET else {"market": market}


def _own_fields(shape: Layout, fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A symbol's own typed fields as answers show them (``_market_head`` first). A
    contract's dates (deliveryDate, onboardDate) are instants like every other in the API.
    """
    out = _market_head(shape.market.name)
    out.update(fields)
    for name in shape.symbol_instants:
        out[name] = _instant(out[name])
    return out


def symbol_rules(rules: SymbolRules, shape: Layout = SPOT) -> dict[str, Any]:
    out = _own_fields(shape, rules.symbol.fields.items())
    out["filters"] = {ftype: filter_rules(v) for ftype, v in sorted(rules.filters.items())}
    out["valid_from"] = _instant(rules.valid_from)
    out["valid_to"] = _instant(rules.valid_to)
    out["raw"] = orjson.Fragment(rules.symbol.raw_json)
    return out


def symbol_as_of(
    rules: SymbolRules, shape: Layout, at: datetime, found: Evidence
) -> dict[str, Any]:
    return {
        **symbol_rules(rules, shape),
        "as_of": format_instant(at),
        "evidence": evidence(found),
    }


# Where a RulesRows row's version columns are, from its first one; a filter row's type.
_FROM, _TO, _RAW = (VERSION_FIELDS.index(name) for name in ("valid_from", "valid_to", "raw_json"))
_FILTER_TYPE = itemgetter(1)


def symbol_list(rows: RulesRows, at: datetime, found: Evidence) -> dict[str, Any]:
    """``symbol_rules`` of every symbol, built straight from the rows (see RulesRows)."""
    by_symbol: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows.filters:
        by_symbol[row[0]].append(row)
    shape = rows.shape
    fv, sv = shape.filter_row_version, shape.symbol_row_version
    filter_fields = shape.filter_fields
    symbols = []
    for srow in rows.symbols:
        out = _own_fields(shape, zip(shape.symbol_fields, srow[:sv], strict=True))
        frows = sorted(by_symbol.get(srow[0], ()), key=_FILTER_TYPE)
        filters = {}
        starts, ends = [srow[sv + _FROM]], [srow[sv + _TO]]
        for row in frows:
            # strict=False: the slice has the filter fields' length by construction, and
            # the check costs ~3 ms over a whole exchange.
            values = zip(filter_fields, row[2:fv], strict=False)
            fields = {k: v for k, v in values if v is not None}
            fields["valid_from"] = _instant(row[fv + _FROM])
            fields["valid_to"] = _instant(row[fv + _TO])
            fields["raw"] = orjson.Fragment(row[fv + _RAW])
            filters[row[1]] = fields
            starts.append(row[fv + _FROM])
            ends.append(row[fv + _TO])
        out["filters"] = filters
        out["valid_from"] = _instant(max(starts))
        out["valid_to"] = _instant(min([e for e in ends if e is not None], default=None))
        out["raw"] = orjson.Fragment(srow[sv + _RAW])
        symbols.append(out)
    head = _market_head(shape.market.name)
    return {**head, "as_of": format_instant(at), "evidence": evidence(found), "symbols": symbols}


def _history(page: HistoryPage, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {
        "from": format_instant(start),
        "to": format_instant(end),
        "versions": [
            {
                "valid_from": format_instant(e.valid_from),
                "valid_to": format_instant(e.valid_to),
                "observation_id": e.observation_id,
                "listed": e.listed,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in e.changes],
            }
            for e in page.entries
        ],
        "next": page.next_cursor,
    }


def symbol_history(
    symbol: str, page: HistoryPage, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    return {"symbol": symbol, **_history(page, start, end)}


def rate_limits(versions: Iterable[Version], at: datetime, found: Evidence) -> dict[str, Any]:
    return {
        "as_of": format_instant(at),
        "evidence": evidence(found),
        "rate_limits": [
            {
                "rate_limit_type": v.fields["rate_limit_type"],
                "interval": v.fields["interval"],
                "interval_num": v.fields["interval_num"],
                "limit": v.fields["limit_value"],
                "valid_from": format_instant(v.valid_from),
                "valid_to": format_instant(v.valid_to),
            }
            for v in versions
        ],
    }


def observation_log(
    rows: Iterable[ObservationRow],
    gaps: Iterable[Gap],
    start: datetime,
    end: datetime,
    *,
    truncated: bool,
) -> dict[str, Any]:
    return {
        "from": format_instant(start),
        "to": format_instant(end),
        "observations": [
            {
                "id": r.id,
                "stream": r.stream,
                "replica_id": r.replica_id,
                "observed_at": format_instant(r.observed_at),
                "requested_at": format_instant(r.requested_at),
                "duration_ms": r.duration_ms,
                "outcome": r.outcome,
                "http_status": r.http_status,
                "used_weight": r.used_weight,
                "error_class": r.error_class,
                "error_code": r.error_code,
                "error_message": r.error_message,
                "attempts": r.attempts,
                "backoff_ms": r.backoff_ms,
                "source": r.source,
            }
            for r in rows
        ],
        "truncated": truncated,
        "gaps": [
            {"stream": g.stream, "start": format_instant(g.start), "end": format_instant(g.end)}
            for g in gaps
        ],
    }


def _field(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return _instant(value)
    return value


def version(v: Version, *, raw: bool = True) -> dict[str, Any]:
    """A version's typed fields (decimals as text, instants RFC 3339) with its range."""
    out: dict[str, Any] = {name: _field(value) for name, value in v.fields.items()}
    out["valid_from"] = _instant(v.valid_from)
    out["valid_to"] = _instant(v.valid_to)
    if raw:
        out["raw"] = orjson.Fragment(v.raw_json)
    return out


def version_as_of(v: Version, at: datetime, found: Evidence) -> dict[str, Any]:
    return {**version(v), "as_of": format_instant(at), "evidence": evidence(found)}


def versions_as_of(
    name: str, versions: Iterable[Version], at: datetime, found: Evidence
) -> dict[str, Any]:
    return {
        "as_of": format_instant(at),
        "evidence": evidence(found),
        name: [version(v, raw=False) for v in versions],
    }


def wallet_network_history(
    coin: str, network: str, page: HistoryPage, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    return {"coin": coin, "network": network, **_history(page, start, end)}


def margin_pairs(
    kind: str, versions: Iterable[Version], at: datetime, found: Evidence
) -> dict[str, Any]:
    """The pairs of one type with their raw objects (small, and the unit of their
    ``delistTime`` is only known from what Binance sent)."""
    return {
        "type": kind,
        "as_of": format_instant(at),
        "evidence": evidence(found),
        "pairs": [version(v) for v in versions],
    }


def margin_pair_history(
    symbol: str, kind: str, page: HistoryPage, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    return {"symbol": symbol, "type": kind, **_history(page, start, end)}


def _switch(enabled: bool, message: str | None, since: Since) -> dict[str, Any]:
    return {
        "enabled": enabled,
        "message": message,
        "since": _instant(since.at),
        "since_first_seen": since.first_seen,
    }


# The network's fields /v1/wallet/{coin} answers besides its two switches.
WALLET_COIN_NETWORK_FIELDS = (
    "network",
    "name",
    "is_default",
    "busy",
    "withdraw_fee",
    "withdraw_min",
    "withdraw_max",
    "withdraw_integer_multiple",
    "withdraw_internal_min",
    "min_confirm",
    "unlock_confirm",
    "estimated_arrival_time",
)


def wallet_coin(wallet: WalletCoin, at: datetime, found: Evidence) -> dict[str, Any]:
    """The coin's switches at ``at``, each network with since when its deposit and its
    withdrawal switch had been in the position it was in."""
    listed = []
    for n in wallet.networks:
        network, deposit_since, withdraw_since = n.version, n.deposit_since, n.withdraw_since
        f = network.fields
        listed.append(
            {
                **{name: _field(f[name]) for name in WALLET_COIN_NETWORK_FIELDS},
                "deposit": _switch(f["deposit_enable"], f["deposit_desc"], deposit_since),
                "withdraw": _switch(f["withdraw_enable"], f["withdraw_desc"], withdraw_since),
                "valid_from": _instant(network.valid_from),
                "valid_to": _instant(network.valid_to),
            }
        )
    out = version(wallet.coin, raw=False)
    out["deposit_networks"] = [n["network"] for n in listed if n["deposit"]["enabled"]]
    out["withdraw_networks"] = [n["network"] for n in listed if n["withdraw"]["enabled"]]
    out["networks"] = listed
    out["as_of"] = format_instant(at)
    out["evidence"] = evidence(found)
    return out


def replica_list(found: Iterable[ReplicaInfo]) -> dict[str, Any]:
    return {
        "replicas": [
            {
                "replica_id": r.replica_id,
                "version": r.version,
                "started_at": format_instant(r.started_at),
                "last_seen_at": format_instant(r.last_seen_at),
                "stopped_at": format_instant(r.stopped_at),
                "seconds_since_seen": round(r.seconds_since_seen, 3),
                "leases": list(r.leases),
            }
            for r in found
        ]
    }


def change_feed(
    page: ChangePage, start: datetime, end: datetime, streams: Sequence[str]
) -> dict[str, Any]:
    return {
        "from": format_instant(start),
        "to": format_instant(end),
        "streams": list(streams),
        "changes": [
            {
                "changed_at": _instant(c.changed_at),
                "observed_before": _instant(c.observed_before),
                "observation_id": c.observation_id,
                "stream": c.stream,
                "entity": c.entity,
                "key": c.key,
                "field": c.field,
                "old": c.old,
                "new": c.new,
            }
            for c in page.changes
        ],
        "next": page.next_cursor,
    }


def _entity_diff(found: EntityDiff) -> dict[str, Any]:
    return {
        "added": found.added,
        "removed": found.removed,
        "changed": [
            {
                "key": c.key,
                "changes": [{"field": f.field, "old": f.old, "new": f.new} for f in c.changes],
            }
            for c in found.changed
        ],
    }


def state_diff(
    found: StateDiff,
    start: datetime,
    end: datetime,
    before: Evidence,
    after: Evidence,
    market: str = DEFAULT_MARKET,
) -> dict[str, Any]:
    return {
        **_market_head(market),
        "from": format_instant(start),
        "to": format_instant(end),
        "evidence": {"from": evidence(before), "to": evidence(after)},
        **{
            name: None if section is None else _entity_diff(section)
            for name, section in found.sections.items()
        },
    }


def _decimal_or_none(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def order_check(
    symbol: str, order: Order, verdict: Verdict, at: datetime, found: Evidence
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "as_of": format_instant(at),
        "evidence": evidence(found),
        "order": {
            "side": order.side,
            "type": order.type,
            "quantity": _decimal_or_none(order.quantity),
            "quote_quantity": _decimal_or_none(order.quote_quantity),
            "price": _decimal_or_none(order.price),
            "reference_price": _decimal_or_none(order.reference_price),
            "iceberg_quantity": _decimal_or_none(order.iceberg_quantity),
        },
        "accepted": not verdict.violations,
        "violations": [{"rule": v.rule, "message": v.message} for v in verdict.violations],
        "not_checked": [{"rule": u.rule, "reason": u.reason} for u in verdict.not_checked],
        "nearest": {
            "price": _decimal_or_none(verdict.nearest_price),
            "quantity": _decimal_or_none(verdict.nearest_quantity),
        },
    }


def schema(stream: str, paths: Sequence[Version], at: datetime, found: Evidence) -> dict[str, Any]:
    return {
        "stream": stream,
        "as_of": format_instant(at),
        "evidence": evidence(found),
        "paths": [
            {
                **p.fields,
                "valid_from": _instant(p.valid_from),
                "valid_to": _instant(p.valid_to),
            }
            for p in paths
        ],
    }
