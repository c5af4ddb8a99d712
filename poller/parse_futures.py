"""USD-M and COIN-M futures exchangeInfo bodies to entity snapshots (pure: no I/O).

The rules are spot's (poller.parse): a body is accepted only whole, because a contract
missing from a response is closed, so a partial or error body must never get that far;
typed columns are checked and everything Binance sends stays in ``raw``. What differs:

* Each market writes tables of its own (``usdm_*``, ``coinm_*``; bench/README.md says why),
  so a key is the symbol alone, as on spot: the table is the market.
* COIN-M names the status ``contractStatus``; both land in the one ``status`` column, so a
  contract's lifecycle reads the same on both markets.
* Money-like values are ``Decimal`` and Binance's epoch milliseconds aware datetimes, in
  the rows themselves: a futures row is read by more than one writer to come (the poller,
  the importer), and none of them should have to know Binance's encodings.
* A filter's ``limit`` means the order caps of ``MAX_NUM_ORDERS`` and
  ``MAX_NUM_ALGO_ORDERS`` here (spot says ``maxNumOrders``), so fields map per filter type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from core.ingest import Entity, InvalidPayloadError, KindSnapshot, Snapshot
from core.streams import market as market_declaration
from poller.parse import (
    _list_of_objects,
    _put,
    check_field,
    exchange_filter_row,
    exchange_info_document,
    ms_to_datetime,
    rate_limit_row,
)

Key = tuple[Any, ...]


@dataclass(frozen=True)
class FuturesMarket:
    """What tells one futures market's exchangeInfo from the other's."""

    name: str  # the market's word everywhere: usdm, coinm
    status_key: str  # the symbol field holding its status (core.streams declares it)
    has_assets: bool  # USD-M lists margin assets; COIN-M's documented body has no `assets`

    def table(self, kind: str) -> str:
        return f"{self.name}_{kind}_versions"


USDM: Final = FuturesMarket("usdm", market_declaration("usdm").status_key, has_assets=True)
COINM: Final = FuturesMarket("coinm", market_declaration("coinm").status_key, has_assets=False)
FUTURES_MARKETS: Final = {market.name: market for market in (USDM, COINM)}

# Binance contract field -> typed column of <market>_symbol_versions, and its kind. The
# status field is not here: its name depends on the market (FuturesMarket.status_key).
FUTURES_SYMBOL_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "pair": ("pair", "str"),
    "contractType": ("contract_type", "str"),
    "deliveryDate": ("delivery_date", "ms"),
    "onboardDate": ("onboard_date", "ms"),
    "contractSize": ("contract_size", "number"),
    "marginAsset": ("margin_asset", "str"),
    "baseAsset": ("base_asset", "str"),
    "quoteAsset": ("quote_asset", "str"),
    "underlyingType": ("underlying_type", "str"),
    "underlyingSubType": ("underlying_sub_type", "strlist"),
    "pricePrecision": ("price_precision", "int"),
    "quantityPrecision": ("quantity_precision", "int"),
    "baseAssetPrecision": ("base_asset_precision", "int"),
    "quotePrecision": ("quote_precision", "int"),
    "equalQtyPrecision": ("equal_qty_precision", "int"),
    "triggerProtect": ("trigger_protect", "decimal"),
    "liquidationFee": ("liquidation_fee", "decimal"),
    "marketTakeBound": ("market_take_bound", "decimal"),
    "maintMarginPercent": ("maint_margin_percent", "decimal"),
    "requiredMarginPercent": ("required_margin_percent", "decimal"),
    "maxMoveOrderLimit": ("max_move_order_limit", "int"),
    "orderTypes": ("order_types", "strlist"),
    "timeInForce": ("time_in_force", "strlist"),
    # Flat on USD-M (["GRID","COPY","DCA"]), nested on spot: kept as whatever list it is,
    # so that Binance nesting it one day is a change, not a failed poll.
    "permissionSets": ("permission_sets", "list"),
}
# Without these a row says nothing a contract's reader relies on; every real row has them.
REQUIRED_FUTURES_FIELDS: Final = (
    "pair",
    "contractType",
    "deliveryDate",
    "onboardDate",
    "baseAsset",
    "quoteAsset",
    "marginAsset",
)

# Binance filter field -> typed column of <market>_symbol_filter_versions, and its kind.
FUTURES_FILTER_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "minPrice": ("min_price", "decimal"),
    "maxPrice": ("max_price", "decimal"),
    "tickSize": ("tick_size", "decimal"),
    "minQty": ("min_qty", "decimal"),
    "maxQty": ("max_qty", "decimal"),
    "stepSize": ("step_size", "decimal"),
    "notional": ("notional", "decimal"),
    "multiplierUp": ("multiplier_up", "decimal"),
    "multiplierDown": ("multiplier_down", "decimal"),
    # A string ("4") in every real USD-M body, an integer in the docs' examples.
    "multiplierDecimal": ("multiplier_decimal", "intlike"),
    "positionControlSide": ("position_control_side", "str"),
}
# Fields whose meaning depends on the filter type.
FUTURES_FILTER_TYPE_FIELDS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("MAX_NUM_ORDERS", "limit"): ("max_num_orders", "int"),
    ("MAX_NUM_ALGO_ORDERS", "limit"): ("max_num_algo_orders", "int"),
}
FUTURES_FILTER_COLUMNS: Final = sorted(
    {column for column, _ in FUTURES_FILTER_FIELDS.values()}
    | {column for column, _ in FUTURES_FILTER_TYPE_FIELDS.values()}
)


def _ms(value: Any, where: str) -> Any:
    return ms_to_datetime(check_field(value, "int", where))


def _decimal(value: Any, where: str) -> Decimal:
    return Decimal(check_field(value, "decimal", where))


def _number(value: Any, where: str) -> Decimal:
    """An integer or a decimal string, as a Decimal (COIN-M's contractSize is an int)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return _decimal(value, where)


def _intlike(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    result: int = check_field(value, "int", where)
    return result


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidPayloadError(f"{where}: expected a list, got {value!r:.80}")
    return value


# Kinds that convert as they check; the others are poller.parse's checks, value kept as is.
_CONVERTERS: Final[dict[str, Callable[[Any, str], Any]]] = {
    "ms": _ms,
    "decimal": _decimal,
    "number": _number,
    "intlike": _intlike,
    "list": _list,
}


def _typed(value: Any, kind: str, where: str) -> Any:
    convert = _CONVERTERS.get(kind)
    return check_field(value, kind, where) if convert is None else convert(value, where)


def futures_symbol_row(market: FuturesMarket) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The row builder of ``market``'s symbol table: its status key goes to ``status``."""

    def row(src: Mapping[str, Any]) -> dict[str, Any]:
        where = f"{market.name} symbol {src.get('symbol')!r}"
        result: dict[str, Any] = dict.fromkeys(
            [column for column, _ in FUTURES_SYMBOL_FIELDS.values()]
        )
        result["status"] = check_field(src.get(market.status_key), "str", f"{where} status")
        for name, (column, kind) in FUTURES_SYMBOL_FIELDS.items():
            if name in src:
                result[column] = _typed(src[name], kind, f"{where} {name}")
        return result

    return row


def futures_filter_row(src: Mapping[str, Any]) -> dict[str, Any]:
    filter_type = src.get("filterType")
    where = f"filter {filter_type!r}"
    row: dict[str, Any] = dict.fromkeys(FUTURES_FILTER_COLUMNS)
    for name, value in src.items():
        mapped = FUTURES_FILTER_TYPE_FIELDS.get((str(filter_type), name))
        mapped = mapped or FUTURES_FILTER_FIELDS.get(name)
        if mapped is not None:
            column, kind = mapped
            row[column] = _typed(value, kind, f"{where} {name}")
    return row


def asset_row(src: Mapping[str, Any]) -> dict[str, Any]:
    """A margin asset of USD-M's Multi-Assets mode: eligible or not, auto-exchange threshold."""
    where = f"asset {src.get('asset')!r}"
    available = src.get("marginAvailable")
    threshold = src.get("autoAssetExchange")
    return {
        "margin_available": None
        if available is None
        else check_field(available, "bool", f"{where} marginAvailable"),
        "auto_asset_exchange": None
        if threshold is None
        else _decimal(threshold, f"{where} autoAssetExchange"),
    }


def parse_futures_exchange_info(body: bytes, market: FuturesMarket) -> Snapshot:
    """Split a complete futures exchangeInfo body into contracts, their filters, margin
    assets (USD-M), rate limits and exchange filters, each in ``market``'s tables."""
    doc = exchange_info_document(body)
    symbols, filters = _contracts(doc, market)
    snapshot = [
        KindSnapshot(market.table("symbol"), symbols, futures_symbol_row(market)),
        KindSnapshot(market.table("symbol_filter"), filters, futures_filter_row),
        KindSnapshot(
            market.table("rate_limit"),
            _keyed(doc, "rateLimits", _rate_limit_key),
            rate_limit_row,
        ),
        KindSnapshot(
            market.table("exchange_filter"),
            _keyed(doc, "exchangeFilters", _exchange_filter_key),
            exchange_filter_row,
        ),
    ]
    if market.has_assets:
        snapshot.append(
            KindSnapshot(market.table("asset"), _keyed(doc, "assets", _asset_key), asset_row)
        )
    return snapshot


def parse_usdm_exchange_info(body: bytes) -> Snapshot:
    """The USD-M stream's parser, as the catalogue names it (core.streams)."""
    return parse_futures_exchange_info(body, USDM)


def parse_coinm_exchange_info(body: bytes) -> Snapshot:
    """The COIN-M stream's parser, as the catalogue names it (core.streams)."""
    return parse_futures_exchange_info(body, COINM)


def _contracts(
    doc: Mapping[str, Any], market: FuturesMarket
) -> tuple[dict[Key, Entity], dict[Key, Entity]]:
    """Contracts keyed by symbol (without their filters) and filters by (symbol, type)."""
    symbols: dict[Key, Entity] = {}
    filters: dict[Key, Entity] = {}
    for contract in _list_of_objects(doc, "symbols"):
        name = contract.get("symbol")
        if not isinstance(name, str) or not name:
            raise InvalidPayloadError(f"symbol without a name: {contract!r:.120}")
        where = f"{market.name} symbol {name!r}"
        check_field(contract.get(market.status_key), "str", f"{where} {market.status_key}")
        missing = [field for field in REQUIRED_FUTURES_FIELDS if field not in contract]
        if missing:
            raise InvalidPayloadError(f"{where} without {', '.join(missing)}")
        for flt in _list_of_objects(contract, "filters"):
            filter_type = flt.get("filterType")
            if not isinstance(filter_type, str):
                raise InvalidPayloadError(f"{where} has a filter without filterType")
            _put(filters, (name, filter_type), flt)
        _put(symbols, (name,), {k: v for k, v in contract.items() if k != "filters"})
    return symbols, filters


def _keyed(
    doc: Mapping[str, Any], name: str, key_of: Callable[[Mapping[str, Any]], Key]
) -> dict[Key, Entity]:
    entities: dict[Key, Entity] = {}
    for item in _list_of_objects(doc, name):
        _put(entities, key_of(item), item)
    return entities


def _rate_limit_key(limit: Mapping[str, Any]) -> Key:
    return (
        check_field(limit.get("rateLimitType"), "str", "rateLimitType"),
        check_field(limit.get("interval"), "str", "rate limit interval"),
        check_field(limit.get("intervalNum"), "int", "rate limit intervalNum"),
    )


def _exchange_filter_key(flt: Mapping[str, Any]) -> Key:
    return (check_field(flt.get("filterType"), "str", "exchange filterType"),)


def _asset_key(asset: Mapping[str, Any]) -> Key:
    return (check_field(asset.get("asset"), "str", "asset name"),)
