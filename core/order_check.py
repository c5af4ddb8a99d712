"""Would Binance have accepted this order? The symbol's rules applied to one order (pure).

Incident review asks it about a rejected order: given the rules in force at the order's
instant (``core.history.symbol_as_of``), which of them did it break? The rules are read
from the filters' source objects as Binance sent them, following its filter docs
(binance-api-notes §3.6): a bound or step of ``0`` disables that check; LOT_SIZE applies
to every order and MARKET_LOT_SIZE to MARKET orders as well; the price rules apply only
to orders that carry a price; the notional rules apply to MARKET orders only where the
filter says so, against the reference price given (Binance uses its average price).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MARKET = "MARKET"
PRICED_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})


@dataclass(frozen=True, slots=True)
class Order:
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None = None  # for MARKET orders: the reference (average) price, if known


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # e.g. "PRICE_FILTER.tickSize", "status", "orderTypes"
    message: str


def _dec(flt: Mapping[str, Any], name: str) -> Decimal | None:
    """The filter's field as a Decimal, or None where it is absent or 0 (disabled)."""
    value = flt.get(name)
    if value is None:
        return None
    number = Decimal(str(value))
    return None if number == 0 else number


def _bounds(
    flt: Mapping[str, Any], ftype: str, value: Decimal, what: str, low: str, high: str, step: str
) -> list[Violation]:
    found = []
    minimum, maximum, increment = _dec(flt, low), _dec(flt, high), _dec(flt, step)
    if minimum is not None and value < minimum:
        found.append(Violation(f"{ftype}.{low}", f"{what} {value} is below {minimum}"))
    if maximum is not None and value > maximum:
        found.append(Violation(f"{ftype}.{high}", f"{what} {value} is above {maximum}"))
    if increment is not None and value % increment != 0:
        found.append(
            Violation(f"{ftype}.{step}", f"{what} {value} is not a multiple of {increment}")
        )
    return found


def _notional(filters: Mapping[str, Mapping[str, Any]], order: Order) -> list[Violation]:
    if order.price is None:
        return []
    notional = order.price * order.quantity
    market = order.type == MARKET
    found = []
    flt = filters.get("NOTIONAL")
    if flt is not None:
        low, high = _dec(flt, "minNotional"), _dec(flt, "maxNotional")
        if low is not None and notional < low and (not market or flt.get("applyMinToMarket")):
            found.append(Violation("NOTIONAL.minNotional", f"notional {notional} is below {low}"))
        if high is not None and notional > high and (not market or flt.get("applyMaxToMarket")):
            found.append(Violation("NOTIONAL.maxNotional", f"notional {notional} is above {high}"))
    legacy = filters.get("MIN_NOTIONAL")
    if legacy is not None:
        low = _dec(legacy, "minNotional")
        if low is not None and notional < low and (not market or legacy.get("applyToMarket")):
            found.append(
                Violation("MIN_NOTIONAL.minNotional", f"notional {notional} is below {low}")
            )
    return found


def check_order(
    symbol: Mapping[str, Any], filters: Mapping[str, Mapping[str, Any]], order: Order
) -> list[Violation]:
    """Every rule of ``symbol`` (its source object) and ``filters`` that ``order`` breaks."""
    found = []
    status = symbol.get("status")
    if status != "TRADING":
        found.append(Violation("status", f"the symbol's status is {status}, not TRADING"))
    if order.type not in (symbol.get("orderTypes") or []):
        found.append(Violation("orderTypes", f"{order.type} orders are not allowed"))
    if order.type in PRICED_TYPES:
        if order.price is None:
            found.append(Violation("price", f"a {order.type} order needs a price"))
        elif "PRICE_FILTER" in filters:
            found += _bounds(
                filters["PRICE_FILTER"],
                "PRICE_FILTER",
                order.price,
                "price",
                "minPrice",
                "maxPrice",
                "tickSize",
            )
    lot_types = ["LOT_SIZE", "MARKET_LOT_SIZE"] if order.type == MARKET else ["LOT_SIZE"]
    for ftype in lot_types:
        if ftype in filters:
            found += _bounds(
                filters[ftype], ftype, order.quantity, "quantity", "minQty", "maxQty", "stepSize"
            )
    return found + _notional(filters, order)
