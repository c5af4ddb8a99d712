"""Query and path parameters: the pydantic models that validate them and document them.

Every model forbids unknown parameters: a typo such as ``asof=`` would otherwise be
ignored and the answer silently given for *now*, the worst outcome in an incident review.
Instants go through ``core.timeparse``, the one parser every side uses; its refusals
become the error type ``invalid_time`` that ``errors`` turns into the error code.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from core.models import OUTCOMES
from core.order_check import FUTURES_ORDER_TYPES, ORDER_TYPES, SPOT_ORDER_TYPES
from core.streams import DEFAULT_MARKET, MARKETS, PUBLIC_STREAMS, STREAMS
from core.streams import stream as stream_declaration
from core.suggestions import did_you_mean
from core.timeparse import INSTANT_PATTERN, TimeParseError, parse_instant

MAX_SYMBOL = 64  # Binance symbols are ~20 characters, and non-ASCII ones exist since 2025-12
# Binance spells its symbols with upper-case ASCII letters (and digits, "_", and since
# 2025-12 letters of other scripts, which have no case to fold or must keep theirs), and
# looks them up whatever the case: so do we, by spelling the input as Binance does. Only
# a-z are folded: str.upper() would also rewrite non-ASCII letters ("ß" -> "SS"), which
# are Binance's spelling as sent.
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_TEXT = 64
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
INSTANT_EXAMPLES = ["2024-05-01T12:00:00.000Z", "2024-05-01T14:00:00+02:00", "1714564800000"]
INSTANT_DESCRIPTION = (
    "RFC 3339 with an explicit offset or Z (in a URL, encode its '+' as %2B), or integer"
    " epoch milliseconds (12 or 13 digits: epoch seconds are refused)"
)
# api.intake refuses a NUL byte in any parameter (PostgreSQL's text cannot hold one);
# the free-text parameters say so in the document, so a client or fuzzer knows it.
NO_NUL = "^[^\\u0000]*$"


def binance_spelling(symbol: str) -> str:
    """The symbol as Binance spells it, from any case of its ASCII letters."""
    return symbol.translate(_ASCII_UPPER)


def parse_time(value: object) -> datetime:
    """An aware UTC datetime from a query string value, or an ``invalid_time`` error."""
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_time", "expected a string")
    try:
        return parse_instant(value)
    except TimeParseError as exc:
        raise PydanticCustomError("invalid_time", "{reason}", {"reason": str(exc)}) from None


Instant = Annotated[
    datetime,
    PlainValidator(parse_time),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INSTANT_PATTERN,
            "description": INSTANT_DESCRIPTION,
            "examples": INSTANT_EXAMPLES,
        }
    ),
]
# A required parameter's schema is lifted into the OpenAPI Parameter object, whose
# ``examples`` must be a mapping: it carries one ``example`` instead.
RequiredInstant = Annotated[
    datetime,
    PlainValidator(parse_time),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INSTANT_PATTERN,
            "description": INSTANT_DESCRIPTION,
            "example": INSTANT_EXAMPLES[0],
        }
    ),
]
Text = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": NO_NUL})
]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema, built once per model and arguments.

        flask-openapi3 asks for a query model's JSON schema on every request, without
        arguments, to learn which parameters are arrays, and only reads it; building it
        took ~0.25 ms of a ~1 ms answer, and even a deep copy ~45 µs of a ~130 µs cached
        one, so that form gets the one built. Any other form (the OpenAPI document's,
        with ``ref_template`` and ``mode``) gets a copy, so none can alter what the next
        caller sees.
        """
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        if not args and not kwargs:
            return _SCHEMAS[key]
        return copy.deepcopy(_SCHEMAS[key])


_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


def one_of(value: str | None, known: Sequence[str]) -> str | None:
    """``value`` if absent or known, else an ``invalid_parameter`` error naming the choices."""
    if value is not None and value not in known:
        raise PydanticCustomError(
            "invalid_parameter",
            "must be one of {known}{hint}",
            {"known": ", ".join(known), "hint": did_you_mean(value, known)},
        )
    return value


def query_model(view: Callable[..., Any]) -> type[BaseModel] | None:
    """The model flask-openapi3 validates ``view``'s query with: its ``query`` annotation."""
    func = inspect.unwrap(view)
    if "query" not in getattr(func, "__annotations__", {}):
        return None  # not a flask-openapi3 route with a query model (e.g. /metrics)
    model = get_type_hints(func)["query"]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


class AsOfQuery(Params):
    as_of: Instant | None = Field(None, description="the instant asked about; default now")


MARKET_DESCRIPTION = (
    "which Binance market's symbols: spot, usdm (USD-M futures) or coinm (COIN-M futures);"
    " a symbol of one market is not the other's"
)


def known_market(value: str) -> str:
    one_of(value, MARKETS)
    return value


FUTURES: list[JsonValue] = [m for m in MARKETS if m != DEFAULT_MARKET]


class MarketQuery(Params):
    market: str = Field(
        DEFAULT_MARKET, description=MARKET_DESCRIPTION, json_schema_extra={"enum": list(MARKETS)}
    )

    @field_validator("market")
    @classmethod
    def _known_market(cls, value: str) -> str:
        return known_market(value)


class MarketAsOfQuery(MarketQuery, AsOfQuery):
    pass


class SymbolsQuery(MarketAsOfQuery):
    status: Text | None = Field(None, description="only symbols with this status, e.g. TRADING")
    base_asset: Text | None = None
    quote_asset: Text | None = None


class Window(Params):
    """A half-open window ``[from, to)``; ``from`` must come before ``to``."""

    start: Instant | None = Field(None, alias="from")
    end: Instant | None = Field(None, alias="to")

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise PydanticCustomError("invalid_window", "from must be before to")
        return self


MAX_HISTORY = 1000


class PagedWindow(Window):
    """Both ends are optional: without them, the whole history."""

    limit: int = Field(MAX_HISTORY, ge=1, le=MAX_HISTORY)
    next_cursor: str | None = Field(
        None,
        alias="next",
        min_length=1,
        max_length=2000,
        description="the `next` of the previous page: continue after its last version",
    )


class HistoryQuery(MarketQuery, PagedWindow):
    """A symbol's history on one market."""


class ObservationsQuery(Window):
    """Without ``from``/``to``: the last hour up to now."""

    stream: Text | None = Field(
        None,
        description="one stream, e.g. exchange_info; default all",
        json_schema_extra={"enum": list(STREAMS)},
    )
    outcome: str | None = Field(None, json_schema_extra={"enum": list(OUTCOMES)})
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, value: str | None) -> str | None:
        return one_of(value, OUTCOMES)


MAX_CHANGES = 1000
FieldName = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": NO_NUL})
]


class ChangesQuery(Window):
    """Without ``from``/``to``: the last hour up to now."""

    market: str | None = Field(
        None,
        description="only this market's streams: spot (the default, or the named stream's),"
        " usdm or coinm",
        json_schema_extra={"enum": list(MARKETS)},
    )

    stream: str | None = Field(
        None,
        description="only this stream's changes; account and account_commission need the"
        " bearer token",
        json_schema_extra={"enum": list(STREAMS)},
    )
    symbol: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SYMBOL,
        description="only this symbol's changes (its rules, commission and delisting); any"
        " case: ethbtc is ETHBTC",
        json_schema_extra={"pattern": NO_NUL},
    )
    field: list[FieldName] = Field(
        default_factory=list,
        description="only these fields, or the fields under them (repeatable), e.g. status,"
        " filters.PRICE_FILTER",
    )
    exclude_field: list[FieldName] = Field(
        default_factory=list,
        description="leave out these fields, or the fields under them (repeatable), e.g."
        " filters.MARKET_LOT_SIZE.maxQty",
    )
    schema_changes: bool = Field(
        False,
        alias="schema",
        description="also list the changes of the documents' shape (entity `schema`): field"
        " paths and filter types Binance started or stopped sending, or whose JSON types changed",
    )
    limit: int = Field(MAX_CHANGES, ge=1, le=MAX_CHANGES)
    next_cursor: str | None = Field(
        None,
        alias="next",
        min_length=1,
        max_length=2000,
        description="the `next` of the previous page: continue after its last change",
        json_schema_extra={"pattern": NO_NUL},
    )

    @field_validator("stream")
    @classmethod
    def _known_stream(cls, value: str | None) -> str | None:
        return one_of(value, STREAMS)

    @field_validator("symbol")
    @classmethod
    def _spelled_as_binance(cls, value: str | None) -> str | None:
        return None if value is None else binance_spelling(value)

    @field_validator("market")
    @classmethod
    def _known_market(cls, value: str | None) -> str | None:
        return one_of(value, MARKETS)

    @model_validator(mode="after")
    def _stream_of_the_market(self) -> Self:
        if self.stream is not None and self.market is not None:
            polled_on = stream_declaration(self.stream).market
            if polled_on != self.market:
                raise PydanticCustomError(
                    "invalid_parameter",
                    "stream {stream} is of market {polled_on}, not {market}",
                    {"stream": self.stream, "polled_on": polled_on, "market": self.market},
                )
        return self


class DiffQuery(MarketQuery):
    """Two instants to compare; ``to`` defaults to now."""

    start: RequiredInstant = Field(alias="from", description="the earlier state")
    end: Instant | None = Field(None, alias="to", description="the later state; default now")

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.end is not None and self.start >= self.end:
            raise PydanticCustomError("invalid_window", "from must be before to")
        return self


# A positive decimal in plain notation, at most 12 digits before the point and 18 after:
# bounded so that a rule's arithmetic (price % tickSize) stays exact in a Decimal
# context. As with instants, what is accepted is exactly what the published pattern
# matches: a zero is spelled out digit by digit so that no lookahead is needed.
_POSITIVE_FRACTION = "|".join(f"0{{{zeros}}}[1-9][0-9]{{0,{17 - zeros}}}" for zeros in range(18))
ORDER_NUMBER_PATTERN = f"^(?:[1-9][0-9]{{0,11}}(?:\\.[0-9]{{1,18}})?|0\\.(?:{_POSITIVE_FRACTION}))$"
_ORDER_NUMBER = re.compile(ORDER_NUMBER_PATTERN)


def parse_order_number(value: object) -> Decimal:
    """A positive Decimal from a query string value, or an ``invalid_parameter`` error."""
    if not isinstance(value, str) or _ORDER_NUMBER.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_parameter",
            "expected a positive decimal number such as 0.001 or 26000.5 (at most 12 digits"
            " before the point and 18 after)",
        )
    return Decimal(value)


OrderNumber = Annotated[
    Decimal,
    PlainValidator(parse_order_number),
    WithJsonSchema({"type": "string", "pattern": ORDER_NUMBER_PATTERN, "example": "0.001"}),
]


_MARKET: JsonDict = {"const": "MARKET"}
ANY_ORDER_TYPE: list[JsonValue] = [*sorted({*SPOT_ORDER_TYPES, *FUTURES_ORDER_TYPES})]


class CheckQuery(MarketAsOfQuery):
    """An order to check against the symbol's rules at as_of (default now)."""

    # The sizing rule of ``_one_size_and_no_market_price`` below, for the document: a rule
    # across parameters, which api.docs publishes by describing this query as one object
    # (OpenAPI's exploded form style: the same query string).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "description": "sized by quantity, any type but MARKET",
                    "required": ["quantity"],
                    "properties": {"quote_quantity": False, "type": {"not": _MARKET}},
                },
                {
                    "description": "a MARKET order sized by quantity, without a price",
                    "required": ["quantity"],
                    "properties": {"quote_quantity": False, "price": False, "type": _MARKET},
                },
                {
                    "description": "a MARKET order sized by quote_quantity, without a price",
                    "required": ["quote_quantity"],
                    "properties": {"quantity": False, "price": False, "type": _MARKET},
                },
            ],
            # Futures orders have no quoteOrderQty nor icebergQty, and each market its
            # own order types (core.order_check).
            "if": {"required": ["market"], "properties": {"market": {"enum": FUTURES}}},
            "then": {
                "properties": {
                    "quote_quantity": False,
                    "iceberg_quantity": False,
                    "type": {"enum": list(FUTURES_ORDER_TYPES)},
                }
            },
            "else": {"properties": {"type": {"enum": list(SPOT_ORDER_TYPES)}}},
        }
    )

    side: Literal["BUY", "SELL"]
    type: Text = Field(
        description="order type as Binance names it: spot "
        + ", ".join(SPOT_ORDER_TYPES)
        + "; futures "
        + ", ".join(FUTURES_ORDER_TYPES),
        json_schema_extra={"enum": ANY_ORDER_TYPE},
    )
    quantity: OrderNumber | None = Field(
        None, description="the base quantity; or, for a MARKET order, quote_quantity instead"
    )
    quote_quantity: OrderNumber | None = Field(
        None,
        description="a MARKET order sized by what it spends or receives in the quote asset"
        " (Binance's quoteOrderQty), instead of quantity",
    )
    price: OrderNumber | None = Field(None, description="the limit price; MARKET orders have none")
    reference_price: OrderNumber | None = Field(
        None,
        description="Binance's average or reference price then: checks PERCENT_PRICE,"
        " PERCENT_PRICE_BY_SIDE and a MARKET order's notional; without it they are not checked",
    )
    iceberg_quantity: OrderNumber | None = Field(
        None, description="the visible part of an iceberg order (Binance's icebergQty)"
    )

    @model_validator(mode="after")
    def _known_order_type(self) -> Self:
        """A type the market does not have is a typo, not an order the symbol refuses."""
        known = ORDER_TYPES[self.market]
        if self.type not in known:
            elsewhere = [m for m, types in ORDER_TYPES.items() if self.type in types]
            raise PydanticCustomError(
                "invalid_parameter",
                "type: {type} is not a {market} order type{elsewhere}; one of {known}{hint}",
                {
                    "type": self.type,
                    "market": self.market,
                    "elsewhere": f" (it is one of {', '.join(elsewhere)})" if elsewhere else "",
                    "known": ", ".join(known),
                    "hint": did_you_mean(self.type, known),
                },
            )
        return self

    @model_validator(mode="after")
    def _one_size_and_no_market_price(self) -> Self:
        # Binance refuses a MARKET order that carries one (-1106, "sent when not required").
        if self.type == "MARKET" and self.price is not None:
            raise PydanticCustomError(
                "invalid_parameter",
                "a MARKET order has no price: give Binance's average price as reference_price",
            )
        if (self.quantity is None) == (self.quote_quantity is None):
            raise PydanticCustomError(
                "invalid_parameter", "give either quantity or quote_quantity, not both or neither"
            )
        if self.quote_quantity is not None and self.type != "MARKET":
            raise PydanticCustomError(
                "invalid_parameter", "quote_quantity sizes MARKET orders only"
            )
        return self


class NoQuery(Params):
    """Routes without parameters still refuse unknown ones."""


class SymbolPath(Params):
    symbol: str = Field(
        min_length=1,
        max_length=MAX_SYMBOL,
        description="as Binance spells it, in any case: ethbtc is ETHBTC",
        json_schema_extra={"example": "BTCUSDT", "pattern": NO_NUL},
    )

    @field_validator("symbol")
    @classmethod
    def _spelled_as_binance(cls, value: str) -> str:
        return binance_spelling(value)


class BalancesQuery(AsOfQuery):
    asset: Text | None = Field(None, description="only this asset, e.g. BTC")


class CoinPath(Params):
    coin: str = Field(
        min_length=1,
        max_length=MAX_SYMBOL,
        description="as Binance spells it, in any case: usdt is USDT",
        json_schema_extra={"example": "USDT", "pattern": NO_NUL},
    )

    @field_validator("coin")
    @classmethod
    def _spelled_as_binance(cls, value: str) -> str:
        return binance_spelling(value)


class NetworkPath(CoinPath):
    network: str = Field(
        min_length=1,
        max_length=MAX_SYMBOL,
        description="as Binance spells it, in any case: trx is TRX",
        json_schema_extra={"example": "TRX", "pattern": NO_NUL},
    )

    @field_validator("network")
    @classmethod
    def _network_as_binance(cls, value: str) -> str:
        return binance_spelling(value)


class WalletNetworksQuery(AsOfQuery):
    coin: Text | None = Field(None, description="only this coin's networks, e.g. USDT")
    network: Text | None = Field(None, description="only networks of this name, e.g. TRX")

    @field_validator("coin", "network")
    @classmethod
    def _spelled_as_binance(cls, value: str | None) -> str | None:
        return None if value is None else binance_spelling(value)


MARGIN_PAIR_TYPES = ("cross", "isolated")


class MarginTypeQuery(Params):
    type: str = Field(
        "cross",
        description="cross (GET /sapi/v1/margin/allPairs) or isolated"
        " (GET /sapi/v1/margin/isolated/allPairs) margin pairs",
        json_schema_extra={"enum": list(MARGIN_PAIR_TYPES)},
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        one_of(value, MARGIN_PAIR_TYPES)
        return value


class MarginPairsQuery(MarginTypeQuery, AsOfQuery):
    pass


class MarginHistoryQuery(MarginTypeQuery, PagedWindow):
    pass


class SchemaQuery(AsOfQuery):
    stream: str = Field(
        "exchange_info",
        description="the stream whose documents' shape is asked (the account's are not recorded)",
        json_schema_extra={"enum": list(PUBLIC_STREAMS)},
    )

    @field_validator("stream")
    @classmethod
    def _public_stream(cls, value: str) -> str:
        one_of(value, PUBLIC_STREAMS)
        return value
