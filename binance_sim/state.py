"""The simulated exchange's state, shared by every request thread of the sim.

Tests and rehearsals need to change what "Binance" says between two polls (a symbol goes to
BREAK, a filter changes, the next two responses are 503) and then see exactly what the poller
asked for. All of that lives here, behind one lock, with no HTTP in sight, so the Flask app
stays a thin translation layer and Python callers can drive the same state directly.

The exchangeInfo body is serialized once per change, not per request: a real snapshot is
2.7-3.7 MB and a poller asks for it every second. Only ``serverTime`` differs between two
responses, so the body is kept as the bytes before and after its value and the clock's digits
are spliced in.
"""

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

EXCHANGE_INFO_PATH: Final = "/api/v3/exchangeInfo"
ACCOUNT_PATH: Final = "/api/v3/account"
COMMISSION_PATH: Final = "/api/v3/account/commission"
API_RESTRICTIONS_PATH: Final = "/sapi/v1/account/apiRestrictions"
SYSTEM_STATUS_PATH: Final = "/sapi/v1/system/status"
DELIST_SCHEDULE_PATH: Final = "/sapi/v1/spot/delist-schedule"
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
}

# Binance emits these first, in this order; clients may (wrongly) rely on it.
_LEADING_KEYS: Final = ("timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols")

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


def default_fixture() -> bytes:
    """The packaged exchangeInfo snapshot: 12 real symbols, enough for demos and tests."""
    return (resources.files("binance_sim") / "data" / "exchange_info.json").read_bytes()


class SimState:
    """The current exchangeInfo document, pending faults, used weight and the request log."""

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        clock: Clock = time.time,
        request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._document = _normalized_document(document)
        self._body = _split_body(self._document)
        self._version = 0
        self._faults: list[Fault] = []
        self._chaos: Chaos | None = None
        self._chaos_rng = random.Random()
        self._backoff_until = 0.0  # a 429 asked the client to wait until then
        self._banned_until = 0.0
        self._weight_window = -1
        self._weight_used = 0
        self._weight_total = 0
        self._requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self._clock_offset_ms = 0
        self.account = AccountState()

    @classmethod
    def from_file(
        cls, path: str | PathLike[str] | None = None, *, clock: Clock = time.time
    ) -> "SimState":
        """Load any real exchangeInfo JSON file; None means the packaged fixture.

        Raises OSError if the file cannot be read and ValueError if it is not an
        exchangeInfo document.
        """
        raw = default_fixture() if path is None else Path(path).read_bytes()
        return cls(_loads(raw), clock=clock)

    # -- the clock -------------------------------------------------------------------------

    def now(self) -> float:
        """Wall time in seconds, as the sim's clock tells it."""
        return self._clock()

    def server_time_ms(self) -> int:
        """The sim's clock as Binance reports it: integer milliseconds since the epoch.

        It runs ``clock_offset_ms`` ahead of the host's clock, so that tests can put
        "Binance" out of step with the poller and watch it resynchronise.
        """
        return int(self._clock() * 1000) + self._clock_offset_ms

    @property
    def clock_offset_ms(self) -> int:
        return self._clock_offset_ms

    def set_clock_offset_ms(self, offset_ms: int) -> None:
        self._clock_offset_ms = offset_ms

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

    def exchange_info_body(self) -> bytes:
        """The serialized document with the current serverTime, ready to send."""
        with self._lock:
            body = self._body
        return body.render(self.server_time_ms())

    def replace_document(self, document: Mapping[str, Any]) -> None:
        """Serve ``document`` from now on; its own serverTime is ignored."""
        normalized = _normalized_document(document)
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
        """Add the symbol, or replace it in place if present; True if it was added."""
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
    ) -> JSONObject:
        """Merge top-level ``fields``, drop ``remove_filters`` types, then upsert ``filters``.

        A given filter replaces the symbol's filter of the same type where it stands, or is
        appended if the symbol has none: Binance's filter order carries no meaning, but a
        patch that reshuffles it would show up as noise in any diff. Returns the new object.
        """
        new_fields = _patch_fields(fields)
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
        with self._lock:
            del self._symbols()[self._index_of(symbol)]
            self._commit()

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

    # -- faults ----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault behind those already pending; the first matching one fires first."""
        with self._lock:
            self._faults.append(fault)

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault this response of ``endpoint`` suffers, if any, and its consequences.

        As Binance does, a client that calls while a 429's Retry-After is running, or while
        banned, gets a 418 and a ban of ``BAN_SECONDS`` whatever else is scripted; then the
        first pending fault that applies is consumed; then chaos may pick one.
        """
        if endpoint not in ENDPOINT_WEIGHTS:
            return None
        now = self._clock()
        with self._lock:
            fault = (
                Fault(FaultKind.IP_BAN, endpoint, retry_after=BAN_SECONDS)
                if now < max(self._backoff_until, self._banned_until)
                else self._take_scripted(endpoint) or self._take_chaos(endpoint)
            )
            if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
                self._backoff_until = now + fault.retry_after_seconds
            elif fault is not None and fault.kind is FaultKind.IP_BAN:
                self._banned_until = now + fault.retry_after_seconds
        return fault

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

    # -- used weight -----------------------------------------------------------------------

    def charge_weight(self, weight: int) -> int:
        """Add a request's weight to the current minute; returns the minute's total so far.

        Binance counts per IP in fixed windows aligned on whole minutes (notes §8.1); the sim
        has no notion of IP and counts every client together.
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


def _normalized_document(document: Mapping[str, Any]) -> JSONObject:
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
    ordered_keys = [key for key in _LEADING_KEYS if key in document] + [
        key for key in document if key not in _LEADING_KEYS
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
