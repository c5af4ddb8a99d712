"""Would Binance have accepted this order? The symbol's rules applied to one order (pure).

Incident review asks it about a rejected order: given the rules in force at the order's
instant (``core.history.symbol_as_of``), which of them did it break? The rules are read
from the filters' source objects as Binance sent them, following its filter docs
(binance-api-notes §3.6): a bound, step or multiplier of ``0`` disables that check;
LOT_SIZE applies to every order (and to an iceberg's visible part) and MARKET_LOT_SIZE
to MARKET orders as well; the price rules apply only to orders that carry a price; the
notional rules apply to MARKET orders only where the filter says so. Binance's average
or reference price is not recorded, so the rules that need it (PERCENT_PRICE,
PERCENT_PRICE_BY_SIDE, a MARKET order's notional) are checked only when the caller gives
it, and otherwise reported as not checked, never as passed.

A MARKET order may be sized by what it spends or receives in the quote asset
(``quoteOrderQty``) instead of a quantity, where the symbol allows it
(``quoteOrderQtyMarketAllowed``). Its notional is then that amount; Binance picks the
quantity, rounded to the step so that it keeps LOT_SIZE's step, but it still has to lie
within the lot bounds: with a reference price that quantity is estimated and checked,
without one the lot bounds are not checked.

Rules that depend on more than the order (MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS,
MAX_NUM_ICEBERG_ORDERS, MAX_NUM_ORDER_LISTS, MAX_POSITION, the exchange-wide limits) are
out of scope: the open orders and balances of the moment are not known here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any

MARKET = "MARKET"
PRICED_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
SPOT = "SPOT"
# Order numbers have at most 30 digits (api.params); a quotient such as price / tickSize
# may need 48, beyond the default context's 28, where Decimal would round or refuse.
PRECISION = 80
NEEDS_REFERENCE = "needs reference_price (Binance's average or reference price then)"


@dataclass(frozen=True, slots=True)
class Order:
    side: str
    type: str
    quantity: Decimal | None  # None for a MARKET order sized by quote_quantity
    price: Decimal | None = None  # the limit price; MARKET orders have none
    reference_price: Decimal | None = None  # Binance's average / reference price then
    iceberg_quantity: Decimal | None = None  # the visible part of an iceberg order
    quote_quantity: Decimal | None = None  # a MARKET order's quoteOrderQty


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # e.g. "PRICE_FILTER.tickSize", "status", "orderTypes"
    message: str


@dataclass(frozen=True, slots=True)
class Unchecked:
    rule: str  # e.g. "PERCENT_PRICE_BY_SIDE", "account"
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    not_checked: list[Unchecked] = field(default_factory=list)
    # The valid price and quantity nearest the order's, on the tick and step in force,
    # within every bound checked; None where the order has no price or no value is valid.
    nearest_price: Decimal | None = None
    nearest_quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class _Range:
    """Where a value may lie: ``[low, high]`` on multiples of ``step`` (None: no limit)."""

    low: Decimal | None = None
    high: Decimal | None = None
    step: Decimal | None = None

    def nearest(self, value: Decimal) -> Decimal | None:
        """The allowed value nearest ``value`` (half up), or None if none is allowed.

        Out of bounds, it is the first multiple of the step inside them: rounding always
        moves toward the valid side, never out of it.
        """
        if self.step is not None:
            value = _multiple(value, self.step, ROUND_HALF_UP)
        if self.low is not None and value < self.low:
            value = self.low if self.step is None else _multiple(self.low, self.step, ROUND_CEILING)
        if self.high is not None and value > self.high:
            value = self.high if self.step is None else _multiple(self.high, self.step, ROUND_FLOOR)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return None
        return value


def _multiple(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return ((value / step).to_integral_value(rounding) * step).quantize(step)


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


def _percent_price(
    filters: Mapping[str, Mapping[str, Any]], order: Order
) -> tuple[list[Violation], list[Unchecked], _Range]:
    """PERCENT_PRICE and PERCENT_PRICE_BY_SIDE: the price within multiples of the reference."""
    found: list[Violation] = []
    unchecked: list[Unchecked] = []
    low: Decimal | None = None
    high: Decimal | None = None
    side = "bid" if order.side == "BUY" else "ask"
    for ftype, up, down in (
        ("PERCENT_PRICE", "multiplierUp", "multiplierDown"),
        ("PERCENT_PRICE_BY_SIDE", f"{side}MultiplierUp", f"{side}MultiplierDown"),
    ):
        flt = filters.get(ftype)
        if flt is None or order.price is None:
            continue
        if order.reference_price is None:
            unchecked.append(Unchecked(ftype, NEEDS_REFERENCE))
            continue
        ref = order.reference_price
        up_by, down_by = _dec(flt, up), _dec(flt, down)
        if up_by is not None:
            cap = ref * up_by
            high = cap if high is None else min(high, cap)
            if order.price > cap:
                found.append(
                    Violation(
                        f"{ftype}.{up}",
                        f"price {order.price} is above {cap} (reference {ref} * {up_by})",
                    )
                )
        if down_by is not None:
            floor = ref * down_by
            low = floor if low is None else max(low, floor)
            if order.price < floor:
                found.append(
                    Violation(
                        f"{ftype}.{down}",
                        f"price {order.price} is below {floor} (reference {ref} * {down_by})",
                    )
                )
    return found, unchecked, _Range(low, high)


def _price(
    filters: Mapping[str, Mapping[str, Any]], order: Order
) -> tuple[list[Violation], list[Unchecked], Decimal | None]:
    """The price rules of a priced order, and the nearest price they all allow."""
    if order.type not in PRICED_TYPES:
        return [], [], None
    if order.price is None:
        return [Violation("price", f"a {order.type} order needs a price")], [], None
    found: list[Violation] = []
    flt = filters.get("PRICE_FILTER", {})
    if flt:
        found += _bounds(
            flt, "PRICE_FILTER", order.price, "price", "minPrice", "maxPrice", "tickSize"
        )
    percent, unchecked, band = _percent_price(filters, order)
    allowed = _Range(
        _tighter(max, _dec(flt, "minPrice"), band.low),
        _tighter(min, _dec(flt, "maxPrice"), band.high),
        _dec(flt, "tickSize"),
    )
    return found + percent, unchecked, allowed.nearest(order.price)


def _tighter(pick: Callable[[list[Decimal]], Decimal], *bounds: Decimal | None) -> Decimal | None:
    """The tightest of the bounds set (``max`` of lower ones, ``min`` of upper ones)."""
    present = [b for b in bounds if b is not None]
    return pick(present) if present else None


def _quantity(
    filters: Mapping[str, Mapping[str, Any]], order: Order
) -> tuple[list[Violation], list[Unchecked], Decimal | None]:
    """LOT_SIZE (and MARKET_LOT_SIZE for MARKET), and the nearest quantity both allow.

    Where both filters have a step, the coarser one: Binance's steps are powers of ten,
    so a multiple of the coarser is a multiple of both. An order sized by quote_quantity
    gets the quantity Binance would pick (quote / reference, down to the step), if the
    reference price is known; it has no nearest quantity to suggest.
    """
    lot_types = [t for t in ("LOT_SIZE", "MARKET_LOT_SIZE") if t in filters]
    if order.type != MARKET:
        lot_types = [t for t in lot_types if t == "LOT_SIZE"]
    lows = [_dec(filters[t], "minQty") for t in lot_types]
    highs = [_dec(filters[t], "maxQty") for t in lot_types]
    allowed = _Range(
        _tighter(max, *lows),
        _tighter(min, *highs),
        _tighter(max, *(_dec(filters[t], "stepSize") for t in lot_types)),
    )
    quantity, what = order.quantity, "quantity"
    if quantity is None:
        assert order.quote_quantity is not None
        if order.reference_price is None:
            return [], [Unchecked(t, NEEDS_REFERENCE) for t in lot_types], None
        quantity = order.quote_quantity / order.reference_price
        if allowed.step is not None:
            quantity = _multiple(quantity, allowed.step, ROUND_FLOOR)
        what = (
            f"quantity (quote_quantity {order.quote_quantity} / reference_price"
            f" {order.reference_price}, down to the step)"
        )
    found: list[Violation] = []
    for ftype in lot_types:
        found += _bounds(filters[ftype], ftype, quantity, what, "minQty", "maxQty", "stepSize")
    return found, [], allowed.nearest(quantity) if order.quantity is not None else None


def _iceberg(
    symbol: Mapping[str, Any], filters: Mapping[str, Mapping[str, Any]], order: Order
) -> list[Violation]:
    """An iceberg: allowed on the symbol, its visible part a valid lot, few enough parts."""
    visible = order.iceberg_quantity
    if visible is None or order.quantity is None:
        return []
    found = []
    if not symbol.get("icebergAllowed"):
        found.append(Violation("icebergAllowed", "iceberg orders are not allowed"))
    if "LOT_SIZE" in filters:
        found += _bounds(
            filters["LOT_SIZE"],
            "LOT_SIZE",
            visible,
            "iceberg quantity",
            "minQty",
            "maxQty",
            "stepSize",
        )
    flt = filters.get("ICEBERG_PARTS")
    limit = None if flt is None else _dec(flt, "limit")
    if limit is not None:
        parts = (order.quantity / visible).to_integral_value(ROUND_CEILING)
        if parts > limit:
            found.append(
                Violation(
                    "ICEBERG_PARTS.limit",
                    f"{parts} parts (ceil({order.quantity} / {visible})) is above {limit}",
                )
            )
    return found


def _notional(
    filters: Mapping[str, Mapping[str, Any]], order: Order
) -> tuple[list[Violation], list[Unchecked]]:
    market = order.type == MARKET
    price = order.reference_price if market else order.price
    notional: Decimal | None = order.quote_quantity
    if notional is None and price is not None and order.quantity is not None:
        notional = price * order.quantity
    found: list[Violation] = []
    unchecked: list[Unchecked] = []
    # (rule, bound, the flag that applies it to MARKET orders, its filter, a minimum?)
    checks: list[tuple[str, Decimal | None, str, Mapping[str, Any], bool]] = []
    if (flt := filters.get("NOTIONAL")) is not None:
        checks += [
            ("NOTIONAL.minNotional", _dec(flt, "minNotional"), "applyMinToMarket", flt, True),
            ("NOTIONAL.maxNotional", _dec(flt, "maxNotional"), "applyMaxToMarket", flt, False),
        ]
    if (legacy := filters.get("MIN_NOTIONAL")) is not None:
        checks.append(
            ("MIN_NOTIONAL.minNotional", _dec(legacy, "minNotional"), "applyToMarket", legacy, True)
        )
    for rule, bound, flag, flt, is_min in checks:
        if bound is None or (market and not flt.get(flag)):
            continue
        if notional is None:
            if market:
                unchecked.append(Unchecked(rule, NEEDS_REFERENCE))
            continue
        if notional < bound if is_min else notional > bound:
            where = "below" if is_min else "above"
            found.append(Violation(rule, f"notional {notional} is {where} {bound}"))
    return found, unchecked


def permission_sets(symbol: Mapping[str, Any]) -> list[list[str]]:
    """The symbol's permissions as an AND of ORs: ``permissionSets`` since 2024-04-25,
    the flat ``permissions`` (one OR) before; empty if neither was sent."""
    sets: Sequence[Sequence[str]] = symbol.get("permissionSets") or []
    if sets:
        return [list(s) for s in sets]
    flat: Sequence[str] = symbol.get("permissions") or []
    return [list(flat)] if flat else []


def _permissions(
    symbol: Mapping[str, Any], account: Mapping[str, Any] | None
) -> tuple[list[Violation], list[Unchecked]]:
    """SPOT trading on the symbol; and, given the account, that it may trade the symbol."""
    sets = permission_sets(symbol)
    if not sets:
        return [], [Unchecked("permissions", "the symbol lists no permissions")]
    found = []
    if not any(SPOT in s for s in sets):
        found.append(
            Violation("permissions", f"the symbol does not allow SPOT (permissions {sets})")
        )
    if account is None:
        return found, []
    if account.get("canTrade") is not True:
        found.append(Violation("account.canTrade", "the account cannot trade (canTrade false)"))
    held = set(account.get("permissions") or [])
    missing = [s for s in sets if not held.intersection(s)]
    if missing:
        found.append(
            Violation(
                "account.permissions",
                f"the account's permissions {sorted(held)} include none of {missing[0]}",
            )
        )
    return found, []


def check_order(
    symbol: Mapping[str, Any],
    filters: Mapping[str, Mapping[str, Any]],
    order: Order,
    account: Mapping[str, Any] | None = None,
) -> Verdict:
    """Every rule of ``symbol`` (its source object), ``filters`` and the ``account`` (its
    source object, if known) that ``order`` breaks, those that could not be checked, and
    the nearest valid price and quantity."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        found: list[Violation] = []
        status = symbol.get("status")
        if status != "TRADING":
            found.append(Violation("status", f"the symbol's status is {status}, not TRADING"))
        if order.type not in (symbol.get("orderTypes") or []):
            found.append(Violation("orderTypes", f"{order.type} orders are not allowed"))
        if order.quote_quantity is not None and not symbol.get("quoteOrderQtyMarketAllowed"):
            found.append(
                Violation(
                    "quoteOrderQtyMarketAllowed",
                    "MARKET orders sized by quote quantity (quoteOrderQty) are not allowed",
                )
            )
        allowed, permissions_unchecked = _permissions(symbol, account)
        price_broken, price_unchecked, nearest_price = _price(filters, order)
        quantity_broken, quantity_unchecked, nearest_quantity = _quantity(filters, order)
        notional_broken, notional_unchecked = _notional(filters, order)
        return Verdict(
            violations=found
            + allowed
            + price_broken
            + quantity_broken
            + _iceberg(symbol, filters, order)
            + notional_broken,
            not_checked=permissions_unchecked
            + price_unchecked
            + quantity_unchecked
            + notional_unchecked,
            nearest_price=nearest_price,
            nearest_quantity=nearest_quantity,
        )
