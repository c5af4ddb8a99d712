"""The simulated exchange's state, shared by every request thread of the sim.

Tests and rehearsals need to change what "Binance" says between two polls (a symbol goes to
BREAK, a filter changes, the next two responses are 503) and then see exactly what the poller
asked for. All of that lives here, behind one lock, with no HTTP in sight, so the Flask app
stays a thin translation layer and Python callers can drive the same state directly.

Each market (spot, USD-M futures, COIN-M futures) is a book of its own: its document, its
version, its used-weight window and its 429/418 standing, as Binance keeps them per host
(``api``, ``fapi``, ``dapi``). Pending faults, chaos and the request log are shared: they are
keyed by endpoint path, and every path belongs to exactly one market.

The exchangeInfo body is serialized once per change, not per request: a real snapshot is
2.7-3.7 MB and a poller asks for it every second. Only ``serverTime`` differs between two
responses, so the body is kept as the bytes before and after its value and the clock's digits
are spliced in.
"""

import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any, Final, TypeAlias

import orjson

from binance_sim.account import AccountState
from binance_sim.margin import MarginState

EXCHANGE_INFO_PATH: Final = "/api/v3/exchangeInfo"
USDM_EXCHANGE_INFO_PATH: Final = "/fapi/v1/exchangeInfo"
COINM_EXCHANGE_INFO_PATH: Final = "/dapi/v1/exchangeInfo"
ACCOUNT_PATH: Final = "/api/v3/account"
COMMISSION_PATH: Final = "/api/v3/account/commission"
API_RESTRICTIONS_PATH: Final = "/sapi/v1/account/apiRestrictions"
SYSTEM_STATUS_PATH: Final = "/sapi/v1/system/status"
DELIST_SCHEDULE_PATH: Final = "/sapi/v1/spot/delist-schedule"
CAPITAL_CONFIG_PATH: Final = "/sapi/v1/capital/config/getall"
MARGIN_PAIRS_PATH: Final = "/sapi/v1/margin/allPairs"
MARGIN_ISOLATED_PAIRS_PATH: Final = "/sapi/v1/margin/isolated/allPairs"
MARGIN_DELIST_SCHEDULE_PATH: Final = "/sapi/v1/margin/delist-schedule"
ANY_ENDPOINT: Final = "*"

# Request weights of the endpoints the sim serves (binance-api-notes.md §2).
ENDPOINT_WEIGHTS: Final[Mapping[str, int]] = {
    EXCHANGE_INFO_PATH: 20,
    "/api/v3/time": 1,
    "/api/v3/ping": 1,
    ACCOUNT_PATH: 20,
    COMMISSION_PATH: 20,
    API_RESTRICTIONS_PATH: 1,
    SYSTEM_STATUS_PATH: 1,
    DELIST_SCHEDULE_PATH: 100,
    CAPITAL_CONFIG_PATH: 10,
    # Margin metadata (notes §16).
    MARGIN_PAIRS_PATH: 1,
    MARGIN_ISOLATED_PAIRS_PATH: 10,
    MARGIN_DELIST_SCHEDULE_PATH: 100,
    # Futures: weight 1 each, counted by the futures hosts apart from spot (notes §14).
    USDM_EXCHANGE_INFO_PATH: 1,
    "/fapi/v1/time": 1,
    "/fapi/v1/ping": 1,
    COINM_EXCHANGE_INFO_PATH: 1,
    "/dapi/v1/time": 1,
    "/dapi/v1/ping": 1,
}


class Market(StrEnum):
    """A Binance market: each is served from its own host with its own weight counter."""

    SPOT = "spot"
    USDM = "usdm"
    COINM = "coinm"


# The path prefix of each market's REST API; everything else the sim serves is spot's.
MARKET_PREFIXES: Final[Mapping[Market, str]] = {
    Market.SPOT: "/api/",
    Market.USDM: "/fapi/",
    Market.COINM: "/dapi/",
}
EXCHANGE_INFO_PATHS: Final[Mapping[Market, str]] = {
    Market.SPOT: EXCHANGE_INFO_PATH,
    Market.USDM: USDM_EXCHANGE_INFO_PATH,
    Market.COINM: COINM_EXCHANGE_INFO_PATH,
}
# COIN-M names a contract's status ``contractStatus`` (notes §14.3).
STATUS_KEYS: Final[Mapping[Market, str]] = {
    Market.SPOT: "status",
    Market.USDM: "status",
    Market.COINM: "contractStatus",
}
# The documented statuses (notes §3.4, §14.1, §14.3). The status control takes only these,
# so that a typo in a test fails loudly; ``fields`` can still set anything at all.
STATUSES: Final[Mapping[Market, frozenset[str]]] = {
    Market.SPOT: frozenset({"TRADING", "BREAK", "HALT", "END_OF_DAY", "CANCEL_ONLY"}),
    Market.USDM: frozenset(
        {
            "PENDING_TRADING",
            "TRADING",
            "PRE_DELIVERING",
            "DELIVERING",
            "DELIVERED",
            "PRE_SETTLE",
            "SETTLING",
            "CLOSE",
        }
    ),
    Market.COINM: frozenset(
        {"PENDING_TRADING", "TRADING", "PRE_DELIVERING", "DELIVERING", "DELIVERED"}
    ),
}
_FIXTURES: Final[Mapping[Market, str]] = {
    Market.SPOT: "exchange_info.json",
    Market.USDM: "usdm_exchange_info_2025-10-30.json",
    Market.COINM: "coinm_exchange_info_from_docs.json",
}


def market_of(path: str) -> Market:
    """The market whose host serves ``path`` (spot for everything outside fapi and dapi)."""
    for market in (Market.USDM, Market.COINM):
        if path.startswith(MARKET_PREFIXES[market]):
            return market
    return Market.SPOT


# Binance emits these first, in this order; clients may (wrongly) rely on it. The futures
# order is the one of the real USD-M bodies in wire format (2021-09-06, 2024-10-19).
_LEADING_KEYS: Final[Mapping[Market, tuple[str, ...]]] = {
    Market.SPOT: ("timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"),
    Market.USDM: (
        "timezone",
        "serverTime",
        "futuresType",
        "rateLimits",
        "exchangeFilters",
        "assets",
        "symbols",
    ),
    Market.COINM: ("timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"),
}

DEFAULT_REQUEST_LOG_SIZE: Final = 10_000

JSONObject: TypeAlias = dict[str, Any]
Clock: TypeAlias = Callable[[], float]


class SimInputError(ValueError):
    """A document, symbol, patch or fault that the sim cannot take; the control API says 400."""


class UnknownSymbolError(LookupError):
    """The symbol is not in the current document; the control API says 404."""

    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown symbol {symbol!r}")
        self.symbol = symbol


class FaultKind(StrEnum):
    """How a faulted response fails; each kind has one responder in the app."""

    STATUS = "status"  # an error status with Binance's error body (5xx bursts: count N)
    INVALID_JSON = "invalid_json"  # a complete 200 body that is not JSON
    GEO_BLOCK = "geo_block"  # the restricted-location notice, code 0 (any status, 200 too)
    ERROR_BODY = "error_body"  # a 200 whose body is a Binance error, not the document
    SLOW = "slow"  # the real response, after delay_seconds (longer than a read timeout)
    TRICKLE = "trickle"  # the real response, chunk_bytes every delay_seconds
    TRUNCATED = "truncated"  # half the body, then a clean close: Content-Length is not met
    RESET = "reset"  # half the body, then a TCP reset
    RATE_LIMIT = "rate_limit"  # 429 + Retry-After; calling again before it passes earns a 418
    IP_BAN = "ip_ban"  # 418 + Retry-After; every call until it passes is another 418


# Statuses a fault may be given, per kind: a `status` fault must fail, while a geo block was
# seen with an unrecorded status, so 200 must stay possible.
_STATUS_RANGES: Final[Mapping[FaultKind, range]] = {
    FaultKind.STATUS: range(400, 600),
    FaultKind.GEO_BLOCK: range(200, 600),
}

# The status of a faulted response when none is given; kinds missing here need one.
_DEFAULT_STATUSES: Final[Mapping[FaultKind, int]] = {
    FaultKind.INVALID_JSON: 200,
    FaultKind.GEO_BLOCK: 451,
    FaultKind.ERROR_BODY: 200,
    FaultKind.SLOW: 200,
    FaultKind.TRICKLE: 200,
    FaultKind.TRUNCATED: 200,
    FaultKind.RESET: 200,
    FaultKind.RATE_LIMIT: 429,
    FaultKind.IP_BAN: 418,
}

# Retry-After when a fault does not say: Binance's shortest ban is 2 minutes (notes §8.3).
_DEFAULT_RETRY_AFTER: Final[Mapping[FaultKind, int]] = {
    FaultKind.RATE_LIMIT: 5,
    FaultKind.IP_BAN: 120,
}
_DELAYED: Final = frozenset({FaultKind.SLOW, FaultKind.TRICKLE})
BAN_SECONDS: Final = 120  # what a client that ignores a 429's Retry-After is banned for
# How long after a 429 has left the sim a call may still be one the client sent before it
# could read the 429 (its other jobs' requests, a thread that checked its gate just before):
# such a call is over the limit too (429), not ignoring the 429 (418). Binance bans for
# "repeatedly violating rate limits and/or failing to back off after receiving 429s" and
# publishes no figure; this is the sim's allowance.
IN_FLIGHT_SECONDS: Final = 0.5
MAX_DELAY_SECONDS: Final = 60.0


@dataclass(frozen=True)
class Fault:
    """The next ``remaining`` responses of ``endpoint`` (or of any, for ``*``) fail as ``kind``.

    Kind-specific parameters are optional fields that default to "not used", so a new kind
    (a delay, a Retry-After) is one more field and one more responder, not a new shape.
    """

    kind: FaultKind
    endpoint: str = EXCHANGE_INFO_PATH
    remaining: int = 1
    status: int | None = None
    delay_seconds: float | None = None  # slow: before the answer; trickle: between chunks
    chunk_bytes: int | None = None  # trickle only
    retry_after: int | None = None  # rate_limit and ip_ban only

    def __post_init__(self) -> None:
        if self.endpoint != ANY_ENDPOINT and self.endpoint not in ENDPOINT_WEIGHTS:
            known = ", ".join([ANY_ENDPOINT, *ENDPOINT_WEIGHTS])
            raise SimInputError(f"endpoint must be one of {known}; got {self.endpoint!r}")
        if self.remaining < 1:
            raise SimInputError(f"count must be at least 1; got {self.remaining}")
        self._check_pacing()
        if self.retry_after is not None:
            if self.kind not in _DEFAULT_RETRY_AFTER:
                raise SimInputError(f"kind {self.kind} takes no retry_after")
            if self.retry_after < 0:
                raise SimInputError("retry_after must be at least 0")
        if self.status is None:
            if self.kind not in _DEFAULT_STATUSES:
                raise SimInputError(f"kind {self.kind} needs a status")
            return
        allowed = _STATUS_RANGES.get(self.kind)
        if allowed is None:
            raise SimInputError(f"kind {self.kind} takes no status")
        if self.status not in allowed:
            raise SimInputError(
                f"status for kind {self.kind} must be in {allowed.start}..{allowed.stop - 1}"
            )

    def _check_pacing(self) -> None:
        """The parameters of the kinds that pace their answer: slow and trickle."""
        if (self.delay_seconds is not None) != (self.kind in _DELAYED):
            raise SimInputError(
                "delay_seconds is required by kinds slow and trickle and taken by no other"
            )
        if (self.chunk_bytes is not None) != (self.kind is FaultKind.TRICKLE):
            raise SimInputError("chunk_bytes is required by kind trickle and taken by no other")
        if self.chunk_bytes is not None and self.chunk_bytes < 1:
            raise SimInputError("chunk_bytes must be at least 1")
        if self.delay_seconds is not None and not 0 < self.delay_seconds <= MAX_DELAY_SECONDS:
            raise SimInputError(f"delay_seconds must be in (0, {MAX_DELAY_SECONDS:g}]")

    @property
    def http_status(self) -> int:
        """The faulted response's status: the one asked for, else the kind's usual one."""
        return _DEFAULT_STATUSES[self.kind] if self.status is None else self.status

    @property
    def retry_after_seconds(self) -> int:
        """The Retry-After a 429 or 418 carries (0 for kinds that send none)."""
        if self.retry_after is not None:
            return self.retry_after
        return _DEFAULT_RETRY_AFTER.get(self.kind, 0)


@dataclass(frozen=True)
class Chaos:
    """Fail each response with probability ``rate``, as one of ``faults`` picked at random.

    Seeded, so that a run that found a bug can be replayed response for response.
    """

    rate: float
    seed: int
    faults: tuple[Fault, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise SimInputError(f"rate must be in [0, 1]; got {self.rate}")
        if not self.faults:
            raise SimInputError("chaos needs at least one fault to pick from")


@dataclass(frozen=True)
class RequestRecord:
    """One request to a Binance endpoint, as the sim answered it."""

    received_at: float
    method: str
    path: str
    query: str
    status: int
    fault: FaultKind | None


@dataclass(frozen=True)
class _Body:
    """The exchangeInfo body cut around the value of ``serverTime``."""

    before_time: bytes
    after_time: bytes

    def render(self, server_time_ms: int) -> bytes:
        return b"".join((self.before_time, str(server_time_ms).encode(), self.after_time))


def default_fixture(market: Market = Market.SPOT) -> bytes:
    """The packaged exchangeInfo snapshot of ``market``, enough for demos and tests.

    Spot: 12 real symbols. USD-M: 13 real contracts of 2025-10-30 (perpetuals, quarterlies,
    SETTLING and PENDING_TRADING ones). COIN-M: no real capture exists, so 7 contracts
    written after the documented shape; the file name says so.
    """
    return (resources.files("binance_sim") / "data" / _FIXTURES[market]).read_bytes()


class MarketBook:
    """One market's document, the weight its host counted and its standing after a 429/418.

    Books share their SimState's lock and clock, so a change to any market and the fault
    that fires next are decided under one lock, as before there were several markets.
    """

    def __init__(
        self,
        market: Market,
        document: Mapping[str, Any],
        *,
        lock: threading.Lock,
        clock: Clock,
    ) -> None:
        self.market = market
        self._lock = lock
        self._clock = clock
        self._document = _normalized_document(document, market)
        self._body = _split_body(self._document)
        self._version = 0
        self.backoff_until = 0.0  # a 429 asked the client to wait until then
        # When the first 429 of the back-off left the sim (None: not yet sent).
        self.backoff_told_at: float | None = None
        self.banned_until = 0.0
        self._weight_window = -1
        self._weight_used = 0
        self._weight_total = 0

    # -- the document ----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """How many times the document has changed since the sim started."""
        with self._lock:
            return self._version

    @property
    def symbol_count(self) -> int:
        with self._lock:
            return len(self._document["symbols"])

    def exchange_info_body(self, server_time_ms: int) -> bytes:
        """The serialized document with ``server_time_ms`` as its serverTime, ready to send."""
        with self._lock:
            body = self._body
        return body.render(server_time_ms)

    def replace_document(self, document: Mapping[str, Any]) -> None:
        """Serve ``document`` from now on; its own serverTime is ignored."""
        normalized = _normalized_document(document, self.market)
        body = _split_body(normalized)
        with self._lock:
            self._document = normalized
            self._body = body
            self._version += 1

    def get_symbol(self, symbol: str) -> JSONObject:
        """A copy of the symbol's current object."""
        with self._lock:
            copy: JSONObject = _detached(self._symbols()[self._index_of(symbol)])
        return copy

    def put_symbol(self, symbol_object: Mapping[str, Any]) -> bool:
        """Add the symbol (a listing), or replace it in place if present; True if added."""
        new = _symbol_object(symbol_object)
        with self._lock:
            symbols = self._symbols()
            try:
                symbols[self._index_of(new["symbol"])] = new
            except UnknownSymbolError:
                symbols.append(new)
                added = True
            else:
                added = False
            self._commit()
        return added

    def patch_symbol(
        self,
        symbol: str,
        *,
        fields: Mapping[str, Any] | None = None,
        filters: Iterable[Mapping[str, Any]] | None = None,
        remove_filters: Iterable[str] | None = None,
        status: str | None = None,
        delivery_date: int | None = None,
    ) -> JSONObject:
        """Merge top-level ``fields``, drop ``remove_filters`` types, then upsert ``filters``.

        ``status`` goes to the market's own status key (COIN-M: ``contractStatus``) and must
        be a documented status; ``delivery_date`` (epoch ms) is futures only. A given filter
        replaces the symbol's filter of the same type where it stands, or is appended if the
        symbol has none: Binance's filter order carries no meaning, but a patch that
        reshuffles it would show up as noise in any diff. Returns the new object.
        """
        new_fields = _patch_fields(fields)
        new_fields.update(_lifecycle_fields(self.market, status, delivery_date))
        new_filters = _filter_objects(filters)
        removed_types = _filter_types(remove_filters)
        with self._lock:
            symbols = self._symbols()
            index = self._index_of(symbol)
            patched: JSONObject = _detached(symbols[index])
            patched.update(new_fields)
            if new_filters or removed_types:
                patched_filters = [
                    f for f in patched.get("filters", []) if f["filterType"] not in removed_types
                ]
                for new_filter in new_filters:
                    _upsert_filter(patched_filters, new_filter)
                patched["filters"] = patched_filters
            symbols[index] = patched
            self._commit()
        result: JSONObject = _detached(patched)
        return result

    def remove_symbol(self, symbol: str) -> None:
        """Delist: the symbol is no longer in the document at all."""
        with self._lock:
            del self._symbols()[self._index_of(symbol)]
            self._commit()

    def symbol_fields(self, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """Each listed symbol's values of ``keys`` (None where absent), read under one lock:
        what the stream feeds compare from one tick to the next, without a copy of the
        whole document."""
        wanted = tuple(keys)
        with self._lock:
            return {s["symbol"]: tuple(s.get(k) for k in wanted) for s in self._symbols()}

    def _symbols(self) -> list[JSONObject]:
        symbols: list[JSONObject] = self._document["symbols"]
        return symbols

    def _index_of(self, symbol: str) -> int:
        for index, candidate in enumerate(self._symbols()):
            if candidate["symbol"] == symbol:
                return index
        raise UnknownSymbolError(symbol)

    def _commit(self) -> None:
        """Re-serialize after an in-place change; the caller holds the lock."""
        self._body = _split_body(self._document)
        self._version += 1

    # -- used weight -----------------------------------------------------------------------

    def charge_weight(self, weight: int) -> int:
        """Add a request's weight to the current minute; returns the minute's total so far.

        Binance counts per IP in fixed windows aligned on whole minutes (notes §8.1), and
        each market's host counts apart; the sim has no notion of IP and counts every client
        of a market together.
        """
        window = int(self._clock() // 60)
        with self._lock:
            if window != self._weight_window:
                self._weight_window = window
                self._weight_used = 0
            self._weight_used += weight
            self._weight_total += weight
            return self._weight_used

    def weight_total(self) -> int:
        """All the weight charged since the sim started or the total was last cleared."""
        with self._lock:
            return self._weight_total

    def clear_weight_total(self) -> int:
        """Start counting the total afresh (the per-minute count goes on); returns the old one."""
        with self._lock:
            total, self._weight_total = self._weight_total, 0
            return total


class ConnectionFault(StrEnum):
    """What the sim can do to the WebSocket connections open at the moment it is asked."""

    DROP = "drop"  # the TCP connection ends, no close frame: a network failure
    SHUTDOWN = "shutdown"  # a ``serverShutdown`` event, then a clean close (notes §17)
    STALL = "stall"  # nothing more is sent and pings go unanswered, for ``seconds``


@dataclass(frozen=True)
class ConnectionOrder:
    """A connection fault for every connection of ``market`` (None: all) open when ordered;
    ``seq`` tells each connection which orders it has already obeyed."""

    seq: int
    fault: ConnectionFault
    market: Market | None
    seconds: float


# Binance's miniTicker period (notes §17); the trade cadence of a symbol nobody set.
DEFAULT_CADENCE_SECONDS: Final = 1.0


class StreamControls:
    """How the sim's WebSocket feeds behave: each spot symbol's trade cadence, how long a
    connection may live (Binance: 24 h), and the connection faults ordered so far.

    It lives in the state, not the WebSocket server, so that the control API (Flask) and
    Python callers steer the feeds the same way the documents are steered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cadences: dict[str, float] = {}
        self._lifetime: float | None = None
        self._orders: list[ConnectionOrder] = []
        # Each market's stream URL, once the server serving them has started.
        self.urls: dict[str, str] = {}

    def cadence(self, symbol: str) -> float:
        """Seconds between two trades of ``symbol`` while it trades."""
        with self._lock:
            return self._cadences.get(symbol, DEFAULT_CADENCE_SECONDS)

    def set_cadence(self, symbol: str, seconds: object) -> None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            raise SimInputError(f"seconds must be a positive number; got {seconds!r}")
        with self._lock:
            self._cadences[symbol] = float(seconds)

    def cadences(self) -> dict[str, float]:
        with self._lock:
            return dict(self._cadences)

    @property
    def lifetime(self) -> float | None:
        """Seconds after which the sim closes a connection, as Binance does after 24 h."""
        with self._lock:
            return self._lifetime

    def set_lifetime(self, seconds: object) -> None:
        if seconds is not None and (
            not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0
        ):
            raise SimInputError(f"seconds must be a positive number or null; got {seconds!r}")
        with self._lock:
            self._lifetime = None if seconds is None else float(seconds)

    def order(
        self, fault: ConnectionFault, market: Market | None, seconds: float
    ) -> ConnectionOrder:
        """Apply ``fault`` to every connection (of ``market``) open now."""
        with self._lock:
            order = ConnectionOrder(len(self._orders) + 1, fault, market, seconds)
            self._orders.append(order)
            return order

    def last_seq(self) -> int:
        with self._lock:
            return len(self._orders)

    def orders_after(self, seq: int, market: Market) -> list[ConnectionOrder]:
        """The orders after ``seq`` that concern a connection of ``market``."""
        with self._lock:
            return [o for o in self._orders[seq:] if o.market in (None, market)]


class SimState:
    """Each market's book, pending faults, chaos and the request log.

    The methods without a market argument are spot's, as they were before futures existed;
    ``book(market)`` reaches any market's document and weight.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        clock: Clock = time.time,
        request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
        usdm_document: Mapping[str, Any] | None = None,
        coinm_document: Mapping[str, Any] | None = None,
    ) -> None:
        """``document`` is spot's; a futures document left None is the packaged one."""
        self._clock = clock
        self._lock = threading.Lock()
        documents = {
            Market.SPOT: document,
            Market.USDM: usdm_document,
            Market.COINM: coinm_document,
        }
        self._books = {
            market: MarketBook(
                market,
                _loads(default_fixture(market)) if given is None else given,
                lock=self._lock,
                clock=clock,
            )
            for market, given in documents.items()
        }
        self._faults: list[Fault] = []
        self._chaos: Chaos | None = None
        self._chaos_rng = random.Random()
        self._requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self._clock_offset_ms = 0
        self.account = AccountState()
        self.margin = MarginState()
        self.streams = StreamControls()

    @classmethod
    def from_file(
        cls,
        path: str | PathLike[str] | None = None,
        *,
        clock: Clock = time.time,
        usdm_path: str | PathLike[str] | None = None,
        coinm_path: str | PathLike[str] | None = None,
    ) -> "SimState":
        """Load any exchangeInfo JSON file per market; None means that market's packaged one.

        Raises OSError if a file cannot be read and ValueError if it is not an
        exchangeInfo document.
        """

        def load(given: str | PathLike[str] | None) -> Any:
            return None if given is None else _loads(Path(given).read_bytes())

        spot = _loads(default_fixture()) if path is None else load(path)
        return cls(
            spot, clock=clock, usdm_document=load(usdm_path), coinm_document=load(coinm_path)
        )

    def book(self, market: Market) -> MarketBook:
        """The market's document and weight counter."""
        return self._books[market]

    # -- the clock -------------------------------------------------------------------------

    def now(self) -> float:
        """Wall time in seconds, as the sim's clock tells it."""
        return self._clock()

    def server_time_ms(self) -> int:
        """The sim's clock as Binance reports it: integer milliseconds since the epoch.

        It runs ``clock_offset_ms`` ahead of the host's clock, so that tests can put
        "Binance" out of step with the poller and watch it resynchronise. Every market
        shares it: the futures hosts keep Binance's one clock too.
        """
        return int(self._clock() * 1000) + self._clock_offset_ms

    @property
    def clock_offset_ms(self) -> int:
        return self._clock_offset_ms

    def set_clock_offset_ms(self, offset_ms: int) -> None:
        self._clock_offset_ms = offset_ms

    # -- spot's document, as before markets ------------------------------------------------

    @property
    def version(self) -> int:
        """How many times spot's document has changed since the sim started."""
        return self._books[Market.SPOT].version

    @property
    def symbol_count(self) -> int:
        return self._books[Market.SPOT].symbol_count

    def exchange_info_body(self, market: Market = Market.SPOT) -> bytes:
        """The market's serialized document with the current serverTime, ready to send."""
        return self._books[market].exchange_info_body(self.server_time_ms())

    def replace_document(self, document: Mapping[str, Any]) -> None:
        self._books[Market.SPOT].replace_document(document)

    def get_symbol(self, symbol: str) -> JSONObject:
        return self._books[Market.SPOT].get_symbol(symbol)

    def put_symbol(self, symbol_object: Mapping[str, Any]) -> bool:
        return self._books[Market.SPOT].put_symbol(symbol_object)

    def patch_symbol(
        self,
        symbol: str,
        *,
        fields: Mapping[str, Any] | None = None,
        filters: Iterable[Mapping[str, Any]] | None = None,
        remove_filters: Iterable[str] | None = None,
    ) -> JSONObject:
        return self._books[Market.SPOT].patch_symbol(
            symbol, fields=fields, filters=filters, remove_filters=remove_filters
        )

    def remove_symbol(self, symbol: str) -> None:
        self._books[Market.SPOT].remove_symbol(symbol)

    # -- faults ----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault behind those already pending; the first matching one fires first."""
        with self._lock:
            self._faults.append(fault)

    def take_fault(self, endpoint: str, received_at: float | None = None) -> Fault | None:
        """The fault this response of ``endpoint`` (a call that reached the sim at
        ``received_at``, default now) suffers, if any, and its consequences.

        As Binance does, a client that calls while banned, or while a 429's Retry-After
        runs and more than ``IN_FLIGHT_SECONDS`` after that 429 left the sim, gets a 418 and
        a ban of ``BAN_SECONDS`` whatever else is scripted. A call during the back-off that
        reached the sim before that may have been sent before the client could read the
        429: it is over the limit too and gets a 429 with the time left. Otherwise the first
        pending fault that applies is consumed; then chaos may pick one. A back-off or ban
        holds on the endpoint's market only: each host counts and bans on its own.
        """
        if endpoint not in ENDPOINT_WEIGHTS:
            return None
        book = self._books[market_of(endpoint)]
        now = self._clock()
        received = now if received_at is None else received_at
        fault: Fault | None
        with self._lock:
            if now < book.banned_until or (
                now < book.backoff_until
                and book.backoff_told_at is not None
                and received > book.backoff_told_at + IN_FLIGHT_SECONDS
            ):
                fault = Fault(FaultKind.IP_BAN, endpoint, retry_after=BAN_SECONDS)
                book.banned_until = now + BAN_SECONDS
            elif now < book.backoff_until:
                left = math.ceil(book.backoff_until - now)
                fault = Fault(FaultKind.RATE_LIMIT, endpoint, retry_after=left)
            else:
                fault = self._take_scripted(endpoint) or self._take_chaos(endpoint)
                if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
                    book.backoff_until = now + fault.retry_after_seconds
                    book.backoff_told_at = None
                elif fault is not None and fault.kind is FaultKind.IP_BAN:
                    book.banned_until = now + fault.retry_after_seconds
        return fault

    def told_of_rate_limit(self, endpoint: str) -> None:
        """A 429 of ``endpoint``'s market has been sent: the client's allowance for calls in
        flight runs from now (from the first 429 of the back-off sent, if several were)."""
        book = self._books[market_of(endpoint)]
        now = self._clock()
        with self._lock:
            if book.backoff_told_at is None:
                book.backoff_told_at = now

    def _take_scripted(self, endpoint: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.endpoint in (endpoint, ANY_ENDPOINT):
                if fault.remaining == 1:
                    del self._faults[index]
                else:
                    self._faults[index] = replace(fault, remaining=fault.remaining - 1)
                return fault
        return None

    def _take_chaos(self, endpoint: str) -> Fault | None:
        chaos = self._chaos
        if chaos is None or self._chaos_rng.random() >= chaos.rate:
            return None
        fault = self._chaos_rng.choice(chaos.faults)
        return fault if fault.endpoint in (endpoint, ANY_ENDPOINT) else None

    def set_chaos(self, chaos: Chaos | None) -> None:
        """Start (or, with None, stop) failing responses at random."""
        with self._lock:
            self._chaos = chaos
            if chaos is not None:
                self._chaos_rng = random.Random(chaos.seed)

    def chaos(self) -> Chaos | None:
        with self._lock:
            return self._chaos

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> int:
        """Drop every pending fault; returns how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    # -- used weight, per market (spot's unless told) ---------------------------------------

    def charge_weight(self, weight: int, market: Market = Market.SPOT) -> int:
        """Add a request's weight to its market's minute; returns that minute's total."""
        return self._books[market].charge_weight(weight)

    def weight_total(self, market: Market = Market.SPOT) -> int:
        return self._books[market].weight_total()

    def clear_weight_total(self, market: Market = Market.SPOT) -> int:
        return self._books[market].clear_weight_total()

    # -- the request log -------------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self, since: float | None = None) -> list[RequestRecord]:
        """Logged requests, oldest first; with ``since``, only those received after it."""
        with self._lock:
            records = list(self._requests)
        if since is None:
            return records
        return [record for record in records if record.received_at > since]

    def clear_requests(self) -> int:
        """Forget the logged requests; returns how many there were."""
        with self._lock:
            count = len(self._requests)
            self._requests.clear()
            return count


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SimInputError(f"not valid JSON: {exc}") from exc


def _detached(value: Any) -> Any:
    """A deep copy that is also proof the value is plain JSON (so the cache can be built)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise SimInputError(f"not representable as JSON: {exc}") from exc


def _normalized_document(document: Mapping[str, Any], market: Market) -> JSONObject:
    """A private copy in Binance's key order, without serverTime (it is added per response)."""
    if not isinstance(document, Mapping):
        raise SimInputError("an exchangeInfo document must be a JSON object")
    symbols = document.get("symbols")
    if not isinstance(symbols, list):
        raise SimInputError("an exchangeInfo document needs a 'symbols' list")
    counts = Counter(_checked_symbol_name(symbol) for symbol in symbols)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise SimInputError(f"duplicate symbols: {', '.join(duplicates)}")
    leading = _LEADING_KEYS[market]
    ordered_keys = [key for key in leading if key in document] + [
        key for key in document if key not in leading
    ]
    normalized: JSONObject = _detached(
        {key: document[key] for key in ordered_keys if key != "serverTime"}
    )
    return normalized


def _checked_symbol_name(symbol_object: Any) -> str:
    """The symbol's name, after checking the parts the sim relies on to patch it."""
    if not isinstance(symbol_object, Mapping):
        raise SimInputError("a symbol must be a JSON object")
    name = symbol_object.get("symbol")
    if not isinstance(name, str) or not name:
        raise SimInputError("a symbol object needs a non-empty string 'symbol'")
    if "filters" in symbol_object:
        _check_filters(symbol_object["filters"])
    return name


def _symbol_object(symbol_object: Any) -> JSONObject:
    _checked_symbol_name(symbol_object)
    detached: JSONObject = _detached(symbol_object)
    return detached


def _split_body(document: JSONObject) -> _Body:
    """Serialize around serverTime: it goes right after timezone, as Binance places it.

    The tail is never empty (a document always has ``symbols``), so it brings the comma.
    """
    head = {key: value for key, value in document.items() if key == "timezone"}
    tail = {key: value for key, value in document.items() if key != "timezone"}
    head_bytes = orjson.dumps(head)[:-1] + (b"," if head else b"")
    return _Body(
        before_time=head_bytes + b'"serverTime":', after_time=b"," + orjson.dumps(tail)[1:]
    )


def _patch_fields(fields: Mapping[str, Any] | None) -> JSONObject:
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise SimInputError("'fields' must be a JSON object")
    if "symbol" in fields:
        raise SimInputError("'fields' cannot rename a symbol; remove it and add the new one")
    if "filters" in fields:
        raise SimInputError("'fields' cannot set filters; use 'filters' and 'remove_filters'")
    patch: JSONObject = _detached(fields)
    return patch


def _lifecycle_fields(market: Market, status: Any, delivery_date: Any) -> JSONObject:
    """The contract lifecycle controls as the fields the market's documents carry."""
    fields: JSONObject = {}
    if status is not None:
        if not isinstance(status, str) or status not in STATUSES[market]:
            allowed = ", ".join(sorted(STATUSES[market]))
            raise SimInputError(
                f"status must be one of {allowed} on {market}; got {status!r} "
                "(set any other value through 'fields')"
            )
        fields[STATUS_KEYS[market]] = status
    if delivery_date is not None:
        if market is Market.SPOT:
            raise SimInputError("spot symbols have no deliveryDate")
        if not isinstance(delivery_date, int) or isinstance(delivery_date, bool):
            raise SimInputError(f"delivery_date must be epoch milliseconds; got {delivery_date!r}")
        if delivery_date < 0:
            raise SimInputError("delivery_date must be at least 0")
        fields["deliveryDate"] = delivery_date
    return fields


def _filter_objects(filters: Any) -> list[JSONObject]:
    if filters is None:
        return []
    _check_filters(filters)
    objects: list[JSONObject] = _detached(list(filters))
    return objects


def _check_filters(filters: Any) -> None:
    """Filters are matched by filterType when patched, so each must have one."""
    if not isinstance(filters, list | tuple):
        raise SimInputError("'filters' must be a list of filter objects")
    for candidate in filters:
        if not isinstance(candidate, Mapping) or not isinstance(candidate.get("filterType"), str):
            raise SimInputError("each filter must be an object with a string 'filterType'")


def _filter_types(filter_types: Any) -> set[str]:
    if filter_types is None:
        return set()
    if not isinstance(filter_types, list | tuple | set | frozenset) or not all(
        isinstance(filter_type, str) for filter_type in filter_types
    ):
        raise SimInputError("'remove_filters' must be a list of filter types")
    return set(filter_types)


def _upsert_filter(filters: list[JSONObject], new_filter: JSONObject) -> None:
    for index, existing in enumerate(filters):
        if existing["filterType"] == new_filter["filterType"]:
            filters[index] = new_filter
            return
    filters.append(new_filter)
