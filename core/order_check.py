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

A futures contract (USD-M, COIN-M: ``check_futures_order``) is held to the futures filter
docs (binance-api-notes §14.2), which differ from spot's where it matters here:

* its status must be TRADING (COIN-M names it ``contractStatus``); the other states of a
  contract's life (PENDING_TRADING, SETTLING, DELIVERING, CLOSE...) refuse orders;
* LIMIT, STOP and TAKE_PROFIT carry a price; STOP_MARKET, TAKE_PROFIT_MARKET and
  TRAILING_STOP_MARKET have only a trigger (stopPrice, or activationPrice and
  callbackRate), which ``Order`` does not carry, so the rules on it are listed as not
  checked;
* a MARKET order is held to MARKET_LOT_SIZE alone and every other order to LOT_SIZE
  alone: the docs give each filter to its orders, and Binance publishes contracts whose
  MARKET_LOT_SIZE.maxQty is above LOT_SIZE.maxQty (GTCUSDT 150000 > 100000, ZKUSDT on
  2024-10-19), which would mean nothing if LOT_SIZE bound MARKET orders too. No captured
  rejection confirms it. Whether a triggered STOP_MARKET is held to MARKET_LOT_SIZE is
  not documented: listed as not checked;
* PERCENT_PRICE is one-sided against the mark price: a BUY's price at most mark *
  multiplierUp, a SELL's at least mark * multiplierDown. A MARKET order is held to it
  through the book's best opposite price (-4131), which is not recorded: not checked;
* MIN_NOTIONAL (USD-M) has ``notional``: price * quantity at least that, a MARKET order
  valued at the mark price. A reduce-only order is exempt on Binance; ``Order`` has no
  such flag, so the check is that of an order opening or adding to a position. COIN-M
  documents no MIN_NOTIONAL (its quantity counts contracts of ``contractSize`` USD each):
  one sent there is listed as not checked, since what its notional would count is not
  known;
* the futures docs write the tick and step rules from the minimum
  (``(price - minPrice) % tickSize``); on every contract of the USD-M snapshots and of
  the COIN-M docs example the minimum is a multiple of the tick and step, where that
  reads the same as spot's ``price % tickSize``, used here;
* there is no quoteOrderQty and no iceberg order on futures: such an order is refused
  (``UnsupportedOrderError``) rather than judged;
* the recorded account is spot's, not the futures account, so no account rule applies;
  MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS (open orders), POSITION_RISK_CONTROL (undocumented,
  tied to the position) and any filter type not known here are listed as not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from core.streams import market as market_declaration

MARKET = "MARKET"
# Every order type each market knows (binance-api-notes §3 and §14): a type outside its
# market's is a mistyped input, not a rule the order breaks; a known type the symbol does
# not take (its orderTypes) is one.
SPOT_ORDER_TYPES = (
    "LIMIT",
    "LIMIT_MAKER",
    MARKET,
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
FUTURES_ORDER_TYPES = (
    "LIMIT",
    MARKET,
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
ORDER_TYPES = {"spot": SPOT_ORDER_TYPES, "usdm": FUTURES_ORDER_TYPES, "coinm": FUTURES_ORDER_TYPES}
PRICED_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
FUTURES_PRICED_TYPES = frozenset({"LIMIT", "STOP", "TAKE_PROFIT"})
# A conditional futures order's trigger, which Order does not carry (a trailing stop's
# activationPrice is optional, its callbackRate is not).
FUTURES_TRIGGERS = {
    "STOP": "stopPrice",
    "STOP_MARKET": "stopPrice",
    "TAKE_PROFIT": "stopPrice",
    "TAKE_PROFIT_MARKET": "stopPrice",
    "TRAILING_STOP_MARKET": "callbackRate",
}
# The futures orders that execute at market, at once or once triggered.
FUTURES_AT_MARKET = frozenset({MARKET, "STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
SPOT = "SPOT"
# Order numbers have at most 30 digits (api.params); a quotient such as price / tickSize
# may need 48, beyond the default context's 28, where Decimal would round or refuse.
PRECISION = 80
NEEDS_REFERENCE = "needs reference_price (Binance's average or reference price then)"
NEEDS_MARK = "needs reference_price (Binance's mark price then)"
# Whether the futures market documents MIN_NOTIONAL (COIN-M does not: notes §14.3).
FUTURES_MIN_NOTIONAL = {"usdm": True, "coinm": False}
FUTURES_CHECKED = frozenset(
    {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "PERCENT_PRICE", "MIN_NOTIONAL"}
)
# The futures filters that depend on more than the order, and why.
FUTURES_UNCHECKED = {
    "MAX_NUM_ORDERS": "counts the account's open orders, not known here",
    "MAX_NUM_ALGO_ORDERS": "counts the account's open conditional orders, not known here",
    "POSITION_RISK_CONTROL": "undocumented; it restricts orders by the position, not known here",
}


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


class UnsupportedOrderError(Exception):
    """An order the market has no such thing as: nothing to judge (a 400, not a verdict)."""


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


# A PERCENT_PRICE band: its filter type, and the fields of its upper and lower multipliers
# (None: that side is not bounded).
Band = tuple[str, str | None, str | None]
# A notional bound: its rule, its value, whether it applies to MARKET orders, a minimum?
NotionalBound = tuple[str, Decimal | None, bool, bool]


@dataclass(frozen=True, slots=True)
class _Rules:
    """What spot's order rules and the futures' do differently, for the helpers both use."""

    priced: frozenset[str]  # the order types that carry a price
    needs_reference: str  # why a rule that needs the reference price went unchecked
    bands: Callable[[str], list[Band]]  # the PERCENT_PRICE bands of an order's side
    lots: Callable[[str], tuple[str, ...]]  # the lot filters of an order type


def _spot_bands(side: str) -> list[Band]:
    """PERCENT_PRICE both ways, and PERCENT_PRICE_BY_SIDE's band for the order's side."""
    prefix = "bid" if side == "BUY" else "ask"
    return [
        ("PERCENT_PRICE", "multiplierUp", "multiplierDown"),
        ("PERCENT_PRICE_BY_SIDE", f"{prefix}MultiplierUp", f"{prefix}MultiplierDown"),
    ]


def _futures_bands(side: str) -> list[Band]:
    """One side against the mark price: a BUY may not pay above it, a SELL not sell below."""
    if side == "BUY":
        return [("PERCENT_PRICE", "multiplierUp", None)]
    return [("PERCENT_PRICE", None, "multiplierDown")]


def _spot_lots(order_type: str) -> tuple[str, ...]:
    return ("LOT_SIZE", "MARKET_LOT_SIZE") if order_type == MARKET else ("LOT_SIZE",)


def _futures_lots(order_type: str) -> tuple[str, ...]:
    return ("MARKET_LOT_SIZE",) if order_type == MARKET else ("LOT_SIZE",)


SPOT_RULES = _Rules(PRICED_TYPES, NEEDS_REFERENCE, _spot_bands, _spot_lots)
FUTURES_RULES = _Rules(FUTURES_PRICED_TYPES, NEEDS_MARK, _futures_bands, _futures_lots)


def _percent_price(
    filters: Mapping[str, Mapping[str, Any]], order: Order, rules: _Rules
) -> tuple[list[Violation], list[Unchecked], _Range]:
    """The price within multiples of the reference price, in each band that applies."""
    found: list[Violation] = []
    unchecked: list[Unchecked] = []
    low: Decimal | None = None
    high: Decimal | None = None
    for ftype, up, down in rules.bands(order.side):
        flt = filters.get(ftype)
        if flt is None or order.price is None:
            continue
        if order.reference_price is None:
            unchecked.append(Unchecked(ftype, rules.needs_reference))
            continue
        ref = order.reference_price
        up_by = None if up is None else _dec(flt, up)
        down_by = None if down is None else _dec(flt, down)
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
    filters: Mapping[str, Mapping[str, Any]], order: Order, rules: _Rules
) -> tuple[list[Violation], list[Unchecked], Decimal | None]:
    """The price rules of a priced order, and the nearest price they all allow."""
    if order.type not in rules.priced:
        return [], [], None
    if order.price is None:
        return [Violation("price", f"a {order.type} order needs a price")], [], None
    found: list[Violation] = []
    flt = filters.get("PRICE_FILTER", {})
    if flt:
        found += _bounds(
            flt, "PRICE_FILTER", order.price, "price", "minPrice", "maxPrice", "tickSize"
        )
    percent, unchecked, band = _percent_price(filters, order, rules)
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
    filters: Mapping[str, Mapping[str, Any]], order: Order, rules: _Rules
) -> tuple[list[Violation], list[Unchecked], Decimal | None]:
    """The lot filters of the order's type, and the nearest quantity they all allow.

    Where two filters have a step, the coarser one: Binance's steps are powers of ten,
    so a multiple of the coarser is a multiple of both. An order sized by quote_quantity
    gets the quantity Binance would pick (quote / reference, down to the step), if the
    reference price is known; it has no nearest quantity to suggest.
    """
    lot_types = [t for t in rules.lots(order.type) if t in filters]
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
            return [], [Unchecked(t, rules.needs_reference) for t in lot_types], None
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


def _spot_notional_bounds(filters: Mapping[str, Mapping[str, Any]]) -> list[NotionalBound]:
    """NOTIONAL's bounds and the legacy MIN_NOTIONAL's, each with its MARKET flag."""
    bounds: list[NotionalBound] = []
    if (flt := filters.get("NOTIONAL")) is not None:
        bounds += [
            (
                "NOTIONAL.minNotional",
                _dec(flt, "minNotional"),
                bool(flt.get("applyMinToMarket")),
                True,
            ),
            (
                "NOTIONAL.maxNotional",
                _dec(flt, "maxNotional"),
                bool(flt.get("applyMaxToMarket")),
                False,
            ),
        ]
    if (legacy := filters.get("MIN_NOTIONAL")) is not None:
        bounds.append(
            (
                "MIN_NOTIONAL.minNotional",
                _dec(legacy, "minNotional"),
                bool(legacy.get("applyToMarket")),
                True,
            )
        )
    return bounds


def _notional(
    bounds: Sequence[NotionalBound], order: Order, rules: _Rules
) -> tuple[list[Violation], list[Unchecked]]:
    market = order.type == MARKET
    price = order.reference_price if market else order.price
    notional: Decimal | None = order.quote_quantity
    if notional is None and price is not None and order.quantity is not None:
        notional = price * order.quantity
    found: list[Violation] = []
    unchecked: list[Unchecked] = []
    for rule, bound, to_market, is_min in bounds:
        if bound is None or (market and not to_market):
            continue
        if notional is None:
            if market:
                unchecked.append(Unchecked(rule, rules.needs_reference))
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


def _listed(symbol: Mapping[str, Any], order: Order, status_key: str) -> list[Violation]:
    """The symbol open to trading, and the order's type one it takes."""
    found = []
    status = symbol.get(status_key)
    if status != "TRADING":
        found.append(Violation("status", f"the symbol's status is {status}, not TRADING"))
    if order.type not in (symbol.get("orderTypes") or []):
        found.append(Violation("orderTypes", f"{order.type} orders are not allowed"))
    return found


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
        found = _listed(symbol, order, "status")
        if order.quote_quantity is not None and not symbol.get("quoteOrderQtyMarketAllowed"):
            found.append(
                Violation(
                    "quoteOrderQtyMarketAllowed",
                    "MARKET orders sized by quote quantity (quoteOrderQty) are not allowed",
                )
            )
        allowed, permissions_unchecked = _permissions(symbol, account)
        price_broken, price_unchecked, nearest_price = _price(filters, order, SPOT_RULES)
        quantity_broken, quantity_unchecked, nearest_quantity = _quantity(
            filters, order, SPOT_RULES
        )
        notional_broken, notional_unchecked = _notional(
            _spot_notional_bounds(filters), order, SPOT_RULES
        )
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


def _refuse_unsupported(order: Order, market: str) -> None:
    for given, name in (
        (order.quote_quantity, "quote_quantity (quoteOrderQty)"),
        (order.iceberg_quantity, "iceberg_quantity (icebergQty)"),
    ):
        if given is not None:
            raise UnsupportedOrderError(f"{market} futures orders have no {name}")
    if order.quantity is None:
        raise UnsupportedOrderError(f"a {market} futures order needs a quantity")


def _futures_unchecked(
    symbol: Mapping[str, Any],
    filters: Mapping[str, Mapping[str, Any]],
    order: Order,
    has_notional: bool,
) -> list[Unchecked]:
    """The rules on a futures order that depend on what is not known here."""
    unchecked = [Unchecked("account", "the account recorded is spot's, not the futures one")]
    if symbol.get("permissionSets"):
        unchecked.append(
            Unchecked("permissionSets", "undocumented on futures (trading modes: GRID, COPY...)")
        )
    if (trigger := FUTURES_TRIGGERS.get(order.type)) is not None:
        unchecked.append(
            Unchecked(trigger, f"a {order.type} order's {trigger} is not part of the check")
        )
    if order.type in FUTURES_AT_MARKET:
        if "PERCENT_PRICE" in filters:
            unchecked.append(
                Unchecked(
                    "PERCENT_PRICE",
                    "an order without a price is held to it through the book's best"
                    " opposite price (-4131), which is not recorded",
                )
            )
        if order.type != MARKET and "MARKET_LOT_SIZE" in filters:
            unchecked.append(
                Unchecked(
                    "MARKET_LOT_SIZE",
                    f"not documented whether a triggered {order.type} order is held to it"
                    " (LOT_SIZE is checked)",
                )
            )
        if order.type != MARKET and has_notional and "MIN_NOTIONAL" in filters:
            unchecked.append(
                Unchecked(
                    "MIN_NOTIONAL.notional",
                    f"a {order.type} order's notional is valued at its trigger or the mark"
                    " price (not documented), neither given",
                )
            )
    for ftype in filters:
        if ftype in FUTURES_UNCHECKED:
            unchecked.append(Unchecked(ftype, FUTURES_UNCHECKED[ftype]))
        elif ftype == "MIN_NOTIONAL" and not has_notional:
            unchecked.append(
                Unchecked(
                    ftype,
                    "COIN-M documents no MIN_NOTIONAL: whether its notional counts contracts"
                    " x contractSize USD or the coin is not known",
                )
            )
        elif ftype not in FUTURES_CHECKED:
            unchecked.append(Unchecked(ftype, "a filter type this check does not know"))
    return unchecked


def _without_unscaled_band(
    filters: Mapping[str, Mapping[str, Any]],
) -> tuple[Mapping[str, Mapping[str, Any]], list[Unchecked]]:
    """The filters, less a PERCENT_PRICE whose multipliers cannot be multipliers.

    USD-M sent BTCSTUSDT's (PENDING_TRADING) as multiplierUp "11500", multiplierDown
    "8500" on 2024-10-19/20, and "1.1500", "0.8500" a year later: seemingly scaled by
    10^multiplierDecimal, but that reading is a guess, so the band is not applied.
    """
    flt = filters.get("PERCENT_PRICE")
    if flt is None:
        return filters, []
    up, down = _dec(flt, "multiplierUp"), _dec(flt, "multiplierDown")
    if (up is None or up >= 1) and (down is None or down <= 1):
        return filters, []
    kept = {ftype: f for ftype, f in filters.items() if ftype != "PERCENT_PRICE"}
    reason = f"multiplierUp {up} and multiplierDown {down} do not bracket 1"
    return kept, [Unchecked("PERCENT_PRICE", reason)]


def check_futures_order(
    symbol: Mapping[str, Any],
    filters: Mapping[str, Mapping[str, Any]],
    order: Order,
    *,
    market: str,
) -> Verdict:
    """``check_order`` for a contract of the futures ``market`` (usdm, coinm): every rule
    of ``symbol`` (its source object) and ``filters`` that ``order`` breaks, those that
    could not be checked, and the nearest valid price and quantity. An order the market
    cannot have (sized by quote_quantity, an iceberg, no quantity) raises
    ``UnsupportedOrderError``; a market that is not a futures one, KeyError."""
    has_notional = FUTURES_MIN_NOTIONAL[market]
    _refuse_unsupported(order, market)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        filters, band_unchecked = _without_unscaled_band(filters)
        price_broken, price_unchecked, nearest_price = _price(filters, order, FUTURES_RULES)
        quantity_broken, _, nearest_quantity = _quantity(filters, order, FUTURES_RULES)
        bounds: list[NotionalBound] = []
        flt = filters.get("MIN_NOTIONAL")
        at_price = order.type in FUTURES_PRICED_TYPES or order.type == MARKET
        if has_notional and flt is not None and at_price:
            bounds.append(("MIN_NOTIONAL.notional", _dec(flt, "notional"), True, True))
        notional_broken, notional_unchecked = _notional(bounds, order, FUTURES_RULES)
        return Verdict(
            violations=_listed(symbol, order, market_declaration(market).status_key)
            + price_broken
            + quantity_broken
            + notional_broken,
            not_checked=band_unchecked
            + price_unchecked
            + notional_unchecked
            + _futures_unchecked(symbol, filters, order, has_notional),
            nearest_price=nearest_price,
            nearest_quantity=nearest_quantity,
        )
