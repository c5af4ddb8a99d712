"""Binance exchangeInfo bodies to entity snapshots (pure: no I/O).

A body is accepted only whole: any shape error makes the poll an ``error`` observation,
because a partial document would otherwise "delist" every symbol it lacks. Fields are
validated only where they feed a typed column; everything else is kept verbatim in
``raw`` so new Binance fields and filter types are never lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from core.bodies import load_document
from core.ingest import (
    Entity,
    Group,
    InvalidPayloadError,
    KindSnapshot,
    Snapshot,
    canonical_entity,
    object_digest,
)
from core.models import typed_columns

_DECIMAL = re.compile(r"-?\d+(\.\d+)?")

# Binance filter field -> typed column of symbol_filter_versions, and its kind.
FILTER_FIELDS: dict[str, tuple[str, str]] = {
    "minPrice": ("min_price", "decimal"),
    "maxPrice": ("max_price", "decimal"),
    "tickSize": ("tick_size", "decimal"),
    "minQty": ("min_qty", "decimal"),
    "maxQty": ("max_qty", "decimal"),
    "stepSize": ("step_size", "decimal"),
    "minNotional": ("min_notional", "decimal"),
    "maxNotional": ("max_notional", "decimal"),
    "applyToMarket": ("apply_min_to_market", "bool"),  # MIN_NOTIONAL's name for the same rule
    "applyMinToMarket": ("apply_min_to_market", "bool"),
    "applyMaxToMarket": ("apply_max_to_market", "bool"),
    "avgPriceMins": ("avg_price_mins", "int"),
    "multiplierUp": ("multiplier_up", "decimal"),
    "multiplierDown": ("multiplier_down", "decimal"),
    "bidMultiplierUp": ("bid_multiplier_up", "decimal"),
    "bidMultiplierDown": ("bid_multiplier_down", "decimal"),
    "askMultiplierUp": ("ask_multiplier_up", "decimal"),
    "askMultiplierDown": ("ask_multiplier_down", "decimal"),
    "maxPosition": ("max_position", "decimal"),
    "limit": ("parts_limit", "int"),
    "maxNumOrders": ("max_num_orders", "int"),
    "maxNumAlgoOrders": ("max_num_algo_orders", "int"),
    "maxNumIcebergOrders": ("max_num_iceberg_orders", "int"),
}
FILTER_COLUMNS = typed_columns("symbol_filter_versions", key=False)

# Binance symbol field -> typed column of symbol_versions, and its kind.
SYMBOL_FIELDS: dict[str, tuple[str, str]] = {
    "status": ("status", "str"),
    "baseAsset": ("base_asset", "str"),
    "quoteAsset": ("quote_asset", "str"),
    "baseAssetPrecision": ("base_asset_precision", "int"),
    "quotePrecision": ("quote_precision", "int"),
    "quoteAssetPrecision": ("quote_asset_precision", "int"),
    "baseCommissionPrecision": ("base_commission_precision", "int"),
    "quoteCommissionPrecision": ("quote_commission_precision", "int"),
    "orderTypes": ("order_types", "strlist"),
    "icebergAllowed": ("iceberg_allowed", "bool"),
    "ocoAllowed": ("oco_allowed", "bool"),
    "otoAllowed": ("oto_allowed", "bool"),
    "quoteOrderQtyMarketAllowed": ("quote_order_qty_market_allowed", "bool"),
    "allowTrailingStop": ("allow_trailing_stop", "bool"),
    "cancelReplaceAllowed": ("cancel_replace_allowed", "bool"),
    "amendAllowed": ("amend_allowed", "bool"),
    "isSpotTradingAllowed": ("is_spot_trading_allowed", "bool"),
    "isMarginTradingAllowed": ("is_margin_trading_allowed", "bool"),
    "permissions": ("permissions", "strlist"),
    "permissionSets": ("permission_sets", "strlistlist"),
    "defaultSelfTradePreventionMode": ("default_self_trade_prevention_mode", "str"),
    "allowedSelfTradePreventionModes": ("allowed_self_trade_prevention_modes", "strlist"),
}
SYMBOL_COLUMNS = typed_columns("symbol_versions", key=False)
REQUIRED_SYMBOL_FIELDS = ("status", "baseAsset", "quoteAsset")


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "decimal": lambda v: isinstance(v, str) and _DECIMAL.fullmatch(v) is not None,
    "strlist": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "strlistlist": lambda v: (
        isinstance(v, list)
        and all(isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v)
    ),
}


def check_field(value: Any, kind: str, where: str) -> Any:
    if not _CHECKS[kind](value):
        raise InvalidPayloadError(f"{where}: expected {kind}, got {value!r:.80}")
    return value


def symbol_row(src: Mapping[str, Any]) -> dict[str, Any]:
    where = f"symbol {src.get('symbol')!r}"
    row: dict[str, Any] = dict.fromkeys(SYMBOL_COLUMNS)
    for name, (column, kind) in SYMBOL_FIELDS.items():
        if name in src:
            row[column] = check_field(src[name], kind, f"{where} {name}")
    return row


def filter_row(src: Mapping[str, Any]) -> dict[str, Any]:
    where = f"filter {src.get('filterType')!r}"
    row: dict[str, Any] = dict.fromkeys(FILTER_COLUMNS)
    for name, (column, kind) in FILTER_FIELDS.items():
        if name in src:
            row[column] = check_field(src[name], kind, f"{where} {name}")
    return row


def rate_limit_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {"limit_value": check_field(src.get("limit"), "int", "rate limit limit")}


def exchange_filter_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _list_of_objects(doc: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = doc.get(name)
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise InvalidPayloadError(f"exchangeInfo without a list of objects in {name!r}")
    return value


def _put(entities: dict[tuple[Any, ...], Entity], key: tuple[Any, ...], obj: Any) -> None:
    if key in entities:
        raise InvalidPayloadError(f"duplicate entity {key!r}")
    entities[key] = canonical_entity(obj)


def exchange_info_document(body: bytes) -> dict[str, Any]:
    """The JSON object of an exchangeInfo body (any market's), or InvalidPayloadError: not
    JSON, not an object, or Binance's ``{"code", "msg"}`` error in its place."""
    try:
        doc = load_document(body)
    except ValueError as exc:
        raise InvalidPayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidPayloadError("exchangeInfo body is not a JSON object")
    if "symbols" not in doc and "code" in doc:
        raise InvalidPayloadError(
            f"Binance error body: code={doc.get('code')!r} msg={doc.get('msg')!r:.200}"
        )
    return doc


def _symbol_of(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return key[:1]


def _symbol_entities(name: str, sym: dict[str, Any]) -> dict[tuple[Any, ...], Entity]:
    for required in REQUIRED_SYMBOL_FIELDS:
        check_field(sym.get(required), "str", f"symbol {name!r} {required}")
    _list_of_objects(sym, "filters")
    return {(name,): canonical_entity({k: v for k, v in sym.items() if k != "filters"})}


def _filter_entities(name: str, sym: dict[str, Any]) -> dict[tuple[Any, ...], Entity]:
    filters: dict[tuple[Any, ...], Entity] = {}
    for flt in _list_of_objects(sym, "filters"):
        ftype = flt.get("filterType")
        if not isinstance(ftype, str):
            raise InvalidPayloadError(f"symbol {name!r} has a filter without filterType")
        _put(filters, (name, ftype), flt)
    return filters


def parse_exchange_info(body: bytes) -> Snapshot:
    """Split a complete exchangeInfo body into symbols, filters, rate limits, exchange filters."""
    doc = exchange_info_document(body)

    # A symbol's own fields are built (and checked) only when their digest differs from the
    # current state's (core.ingest.Group), and its filters only when theirs does: a day
    # moves filters of most symbols and the own fields of a few. A new name always is.
    symbols: dict[tuple[Any, ...], Group] = {}
    filters: dict[tuple[Any, ...], Group] = {}
    for sym in _list_of_objects(doc, "symbols"):
        name = sym.get("symbol")
        if not isinstance(name, str) or not name:
            raise InvalidPayloadError(f"symbol without a name: {sym!r:.120}")
        if (name,) in symbols:
            raise InvalidPayloadError(f"duplicate entity {(name,)!r}")
        own = object_digest({k: v for k, v in sym.items() if k != "filters"})
        symbols[(name,)] = Group(own, partial(_symbol_entities, name, sym))
        filters[(name,)] = Group(
            object_digest(sym.get("filters")), partial(_filter_entities, name, sym)
        )

    rate_limits: dict[tuple[Any, ...], Entity] = {}
    for limit in _list_of_objects(doc, "rateLimits"):
        key = (
            check_field(limit.get("rateLimitType"), "str", "rateLimitType"),
            check_field(limit.get("interval"), "str", "rate limit interval"),
            check_field(limit.get("intervalNum"), "int", "rate limit intervalNum"),
        )
        _put(rate_limits, key, limit)

    exchange_filters: dict[tuple[Any, ...], Entity] = {}
    for flt in _list_of_objects(doc, "exchangeFilters"):
        _put(
            exchange_filters,
            (check_field(flt.get("filterType"), "str", "exchange filterType"),),
            flt,
        )

    return [
        KindSnapshot("symbol_versions", {}, symbol_row, groups=symbols, group_of=_symbol_of),
        KindSnapshot("symbol_filter_versions", {}, filter_row, groups=filters, group_of=_symbol_of),
        KindSnapshot("rate_limit_versions", rate_limits, rate_limit_row),
        KindSnapshot("exchange_filter_versions", exchange_filters, exchange_filter_row),
    ]
