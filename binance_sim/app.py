"""Binance's public metadata endpoints over a SimState, plus a control API to steer it.

The Binance side imitates what a poller sees on the wire: the bodies, the used-weight header,
Binance's exact Content-Type and its ``{"code", "msg"}`` errors. The control API lives under
``/_sim/``, a prefix Binance never uses, so one base URL serves both and a poller pointed at
the sim needs no special mode. Control input is checked strictly and every failure is a JSON
answer: a test that sends a bad fault should learn why, not read a traceback.

Each market has its Binance paths (spot ``/api``, USD-M ``/fapi``, COIN-M ``/dapi``) and its
control routes under ``/_sim/markets/<market>/``; the older ``/_sim/`` routes without a
market are spot's and behave as they always did.
"""

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from binance_sim.state import (
    ANY_ENDPOINT,
    ENDPOINT_WEIGHTS,
    EXCHANGE_INFO_PATH,
    EXCHANGE_INFO_PATHS,
    Chaos,
    Fault,
    FaultKind,
    Market,
    MarketBook,
    RequestRecord,
    SimInputError,
    SimState,
    UnknownSymbolError,
    market_of,
)

# A whole real snapshot is 2.7-3.7 MB; Flask accepts any size by default, this keeps a bound.
MAX_CONTROL_BODY_BYTES: Final = 64 * 1024 * 1024

_EXTENSION_KEY: Final = "binance_sim"
_BINANCE_CONTENT_TYPE: Final = "application/json;charset=UTF-8"
_USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"

# Verbatim from a real response (fixture errors/restricted_location_2022-12-07.json): code 0.
_RESTRICTED_LOCATION_BODY: Final = orjson.dumps(
    {
        "code": 0,
        "msg": "Service unavailable from a restricted location according to 'b. Eligibility' in "
        "https://www.binance.com/en/terms. Please contact customer service if you believe you "
        "received this message in error.",
    }
)

# What a body cut off mid-stream looks like: the start of exchangeInfo and nothing more.
_INVALID_JSON_BODY: Final = b'{"timezone":"UTC","serverTime":'

# Binance's code and message for a failing status (errors.md); others get -1000 UNKNOWN.
_STATUS_ERRORS: Final[Mapping[int, tuple[int, str]]] = {
    429: (-1003, "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE."),
    503: (
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    ),
    504: (
        -1007,
        "Timeout waiting for response from backend server. "
        "Send status unknown; execution status unknown.",
    ),
}
_UNKNOWN_ERROR: Final = (-1000, "An unknown error occurred while processing the request.")

_FAULT_KEYS: Final = frozenset(
    {"kind", "count", "endpoint", "status", "delay_seconds", "retry_after", "chunk_bytes"}
)
_CHAOS_KEYS: Final = frozenset({"rate", "seed", "faults"})
_PATCH_KEYS: Final = frozenset({"fields", "filters", "remove_filters"})
_MARKET_PATCH_KEYS: Final = _PATCH_KEYS | {"status", "delivery_date"}
# A control route's market, as a path segment; an unknown one is a 404 like any bad path.
_MARKET: Final = "/markets/<any(" + ",".join(Market) + "):market>"
_SPOT: Final = {"market": Market.SPOT.value}

binance = Blueprint("binance", __name__)
control = Blueprint("control", __name__, url_prefix="/_sim")


def create_app(state: SimState) -> Flask:
    """A Flask app serving ``state`` as Binance would, with the control API beside it."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTROL_BODY_BYTES
    # The spot routes without a market and /_sim/markets/spot/... are one endpoint each;
    # werkzeug would otherwise redirect the second to the first.
    app.url_map.redirect_defaults = False
    app.extensions[_EXTENSION_KEY] = state
    app.register_blueprint(binance)
    app.register_blueprint(control)
    # Imported here: the signed routes reuse this module's helpers (_serve and friends).
    from binance_sim.margin_routes import margin_binance, margin_control
    from binance_sim.signed import signed_binance, signed_control

    app.register_blueprint(signed_binance)
    app.register_blueprint(signed_control)
    app.register_blueprint(margin_binance)
    app.register_blueprint(margin_control)
    app.register_error_handler(SimInputError, _bad_input)
    app.register_error_handler(UnknownSymbolError, _unknown_symbol)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _state() -> SimState:
    state: SimState = current_app.extensions[_EXTENSION_KEY]
    return state


def _book(market: str) -> MarketBook:
    return _state().book(Market(market))


# -- Binance ---------------------------------------------------------------------------------


@binance.get(EXCHANGE_INFO_PATH, defaults=_SPOT)
@binance.get(EXCHANGE_INFO_PATHS[Market.USDM], defaults={"market": Market.USDM.value})
@binance.get(EXCHANGE_INFO_PATHS[Market.COINM], defaults={"market": Market.COINM.value})
def exchange_info(market: str) -> Response:
    """The market's whole current document; query parameters are accepted and ignored."""
    return _serve(lambda state: _binance_response(200, state.exchange_info_body(Market(market))))


@binance.get("/api/v3/time")
@binance.get("/fapi/v1/time")
@binance.get("/dapi/v1/time")
def server_time() -> Response:
    return _serve(
        lambda state: _binance_response(200, orjson.dumps({"serverTime": state.server_time_ms()}))
    )


@binance.get("/api/v3/ping")
@binance.get("/fapi/v1/ping")
@binance.get("/dapi/v1/ping")
def ping() -> Response:
    return _serve(lambda _: _binance_response(200, b"{}"))


_ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@binance.route("/api/<path:_rest>", methods=_ALL_METHODS)
@binance.route("/fapi/<path:_rest>", methods=_ALL_METHODS)
@binance.route("/dapi/<path:_rest>", methods=_ALL_METHODS)
def unknown_endpoint(_rest: str) -> Response:
    """Paths and methods Binance does not serve get a Binance-shaped 404; they cost no weight."""
    return _serve(
        lambda _: _binance_error(404, -1000, f"Unknown endpoint {request.method} {request.path}")
    )


def _serve(render: Callable[[SimState], Response]) -> Response:
    """Apply any pending fault, charge the weight, log the request: all Binance routes do this.

    The weight goes to the path's market: each Binance host reports its own count.
    """
    state = _state()
    received_at = state.now()
    fault = state.take_fault(request.path)
    response = (
        render(state)
        if fault is None
        else _FAULT_RESPONDERS[fault.kind](fault, lambda: render(state))
    )
    used = state.charge_weight(ENDPOINT_WEIGHTS.get(request.path, 0), market_of(request.path))
    response.headers[_USED_WEIGHT_HEADER] = str(used)
    state.log_request(
        RequestRecord(
            received_at=received_at,
            method=request.method,
            path=request.path,
            query=request.query_string.decode("utf-8", "replace"),
            status=response.status_code,
            fault=None if fault is None else fault.kind,
        )
    )
    return response


def _binance_response(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type=_BINANCE_CONTENT_TYPE)


def _binance_error(status: int, code: int, msg: str) -> Response:
    return _binance_response(status, orjson.dumps({"code": code, "msg": msg}))


Render = Callable[[], Response]


def _status_fault(fault: Fault, _: Render) -> Response:
    code, msg = _STATUS_ERRORS.get(fault.http_status, _UNKNOWN_ERROR)
    return _binance_error(fault.http_status, code, msg)


def _invalid_json_fault(fault: Fault, _: Render) -> Response:
    return _binance_response(fault.http_status, _INVALID_JSON_BODY)


def _geo_block_fault(fault: Fault, _: Render) -> Response:
    return _binance_response(fault.http_status, _RESTRICTED_LOCATION_BODY)


def _error_body_fault(fault: Fault, _: Render) -> Response:
    return _binance_error(
        fault.http_status, -1001, "Internal error; unable to process your request."
    )


def _slow_fault(fault: Fault, render: Render) -> Response:
    """The real answer, late: the request thread sleeps, as a stalled backend would."""
    assert fault.delay_seconds is not None  # Fault checks that slow has one
    time.sleep(fault.delay_seconds)
    return render()


def _trickle_fault(fault: Fault, render: Render) -> Response:
    """The real answer, ``chunk_bytes`` every ``delay_seconds``: a congested link or a proxy
    that dribbles, which a per-read timeout never trips. A client that gives up closes the
    connection, and the next write ends this thread's trickle."""
    assert fault.delay_seconds is not None  # Fault checks that trickle has both
    assert fault.chunk_bytes is not None
    delay, size = fault.delay_seconds, fault.chunk_bytes
    body = render().get_data()

    def dribble() -> Iterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]
            time.sleep(delay)

    return Response(
        dribble(),
        status=fault.http_status,
        content_type=_BINANCE_CONTENT_TYPE,
        headers={"Content-Length": str(len(body))},
    )


def _rate_limit_fault(fault: Fault, _: Render) -> Response:
    response = _status_fault(fault, _)
    response.headers["Retry-After"] = str(fault.retry_after_seconds)
    return response


def _ip_ban_fault(fault: Fault, _: Render) -> Response:
    until_ms = int((time.time() + fault.retry_after_seconds) * 1000)
    response = _binance_error(
        fault.http_status, -1003, f"Way too many requests; IP banned until {until_ms}."
    )
    response.headers["Retry-After"] = str(fault.retry_after_seconds)
    return response


def _cut_short(fault: Fault, render: Render, *, reset: bool) -> Response:
    """Headers promising the whole body, half of it, then the connection ends.

    Raising a ``ConnectionError`` from the body iterator makes werkzeug drop the connection
    quietly (a clean close: the client sees fewer bytes than Content-Length). For a reset,
    the TCP socket is first set to linger 0 and its descriptor swapped for one end of a
    closed socket pair: closing the last descriptor of a lingerless socket sends an RST at
    once, while werkzeug goes on shutting down a harmless stand-in instead of a closed fd.
    """
    body = render().get_data()
    connection = request.environ["werkzeug.socket"]

    def half_then_drop() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        if reset:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stand_in, peer = socket.socketpair()
            peer.close()
            os.dup2(stand_in.fileno(), connection.fileno())
            stand_in.close()
            raise ConnectionResetError("binance_sim: reset mid-body")
        raise ConnectionAbortedError("binance_sim: body truncated")

    return Response(
        half_then_drop(),
        status=fault.http_status,
        content_type=_BINANCE_CONTENT_TYPE,
        headers={"Content-Length": str(len(body))},
    )


def _truncated_fault(fault: Fault, render: Render) -> Response:
    return _cut_short(fault, render, reset=False)


def _reset_fault(fault: Fault, render: Render) -> Response:
    return _cut_short(fault, render, reset=True)


_FAULT_RESPONDERS: Final[Mapping[FaultKind, Callable[[Fault, Render], Response]]] = {
    FaultKind.STATUS: _status_fault,
    FaultKind.INVALID_JSON: _invalid_json_fault,
    FaultKind.GEO_BLOCK: _geo_block_fault,
    FaultKind.ERROR_BODY: _error_body_fault,
    FaultKind.SLOW: _slow_fault,
    FaultKind.TRICKLE: _trickle_fault,
    FaultKind.TRUNCATED: _truncated_fault,
    FaultKind.RESET: _reset_fault,
    FaultKind.RATE_LIMIT: _rate_limit_fault,
    FaultKind.IP_BAN: _ip_ban_fault,
}


# -- control API -----------------------------------------------------------------------------


@control.put("/exchange-info", defaults=_SPOT)
@control.put(f"{_MARKET}/exchange-info")
def replace_exchange_info(market: str) -> Response:
    """Serve the body (a whole exchangeInfo document) from now on."""
    book = _book(market)
    book.replace_document(_json_object())
    return _json(_summary(book))


@control.get("/state", defaults=_SPOT)
@control.get(f"{_MARKET}/state")
def summary(market: str) -> Response:
    return _json(_summary(_book(market)))


@control.get("/symbols/<symbol>", defaults=_SPOT)
@control.get(f"{_MARKET}/symbols/<symbol>")
def get_symbol(market: str, symbol: str) -> Response:
    return _json(_book(market).get_symbol(symbol))


@control.put("/symbols/<symbol>", defaults=_SPOT)
@control.put(f"{_MARKET}/symbols/<symbol>")
def put_symbol(market: str, symbol: str) -> Response:
    """List the symbol, or replace it where it stands; 201 when it is new."""
    body = _json_object()
    if body.get("symbol") != symbol:
        raise SimInputError(f"the body's 'symbol' must be {symbol!r}, as in the path")
    book = _book(market)
    added = book.put_symbol(body)
    return _json(book.get_symbol(symbol), status=201 if added else 200)


@control.patch("/symbols/<symbol>")
def patch_symbol(symbol: str) -> Response:
    """Merge ``fields``, drop ``remove_filters`` types, upsert ``filters`` by filterType."""
    return _patch(_book(Market.SPOT), symbol, _PATCH_KEYS)


@control.patch(f"{_MARKET}/symbols/<symbol>")
def patch_market_symbol(market: str, symbol: str) -> Response:
    """As the spot route, plus the contract lifecycle's two moves: ``status`` (written to the
    market's status key) and ``delivery_date`` (futures only, epoch ms)."""
    return _patch(_book(market), symbol, _MARKET_PATCH_KEYS)


def _patch(book: MarketBook, symbol: str, known_keys: frozenset[str]) -> Response:
    body = _json_object()
    _reject_unknown_keys(body, known_keys)
    patched = book.patch_symbol(
        symbol,
        fields=body.get("fields"),
        filters=body.get("filters"),
        remove_filters=body.get("remove_filters"),
        status=body.get("status"),
        delivery_date=body.get("delivery_date"),
    )
    return _json(patched)


@control.delete("/symbols/<symbol>", defaults=_SPOT)
@control.delete(f"{_MARKET}/symbols/<symbol>")
def remove_symbol(market: str, symbol: str) -> Response:
    """Delist: the symbol leaves the market's document."""
    _book(market).remove_symbol(symbol)
    return _json({"removed": symbol})


@control.post("/faults")
def add_fault() -> Response:
    fault = _parse_fault(_json_object(), EXCHANGE_INFO_PATH)
    _state().add_fault(fault)
    return _json(fault, status=201)


@control.post(f"{_MARKET}/faults")
def add_market_fault(market: str) -> Response:
    """A fault on one of the market's endpoints, its exchangeInfo unless ``endpoint`` says."""
    fault = _parse_fault(_json_object(), EXCHANGE_INFO_PATHS[Market(market)])
    if fault.endpoint == ANY_ENDPOINT or market_of(fault.endpoint) != market:
        raise SimInputError(
            f"endpoint {fault.endpoint!r} is not one of {market}'s; "
            "POST /_sim/faults takes any endpoint and '*'"
        )
    _state().add_fault(fault)
    return _json(fault, status=201)


@control.get("/faults")
def list_faults() -> Response:
    return _json({"faults": _state().pending_faults()})


@control.get(f"{_MARKET}/faults")
def list_market_faults(market: str) -> Response:
    """The pending faults that will hit this market's endpoints (wildcards included)."""
    faults = [
        fault
        for fault in _state().pending_faults()
        if fault.endpoint == ANY_ENDPOINT or market_of(fault.endpoint) == market
    ]
    return _json({"faults": faults})


@control.delete("/faults")
def clear_faults() -> Response:
    return _json({"cleared": _state().clear_faults()})


@control.put("/chaos")
def set_chaos() -> Response:
    """Fail ``rate`` of all responses from now on, each as one of ``faults`` (seeded)."""
    body = _json_object()
    _reject_unknown_keys(body, _CHAOS_KEYS)
    rate = body.get("rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool):
        raise SimInputError(f"rate must be a number; got {rate!r}")
    raw_faults = body.get("faults")
    if not isinstance(raw_faults, list) or not all(isinstance(f, dict) for f in raw_faults):
        raise SimInputError("faults must be a list of fault objects")
    seed = _optional_integer(body, "seed")
    chaos = Chaos(
        rate=float(rate),
        seed=0 if seed is None else seed,
        faults=tuple(_parse_fault(f, EXCHANGE_INFO_PATH) for f in raw_faults),
    )
    _state().set_chaos(chaos)
    return _json(chaos)


@control.get("/chaos")
def get_chaos() -> Response:
    return _json({"chaos": _state().chaos()})


@control.delete("/chaos")
def stop_chaos() -> Response:
    _state().set_chaos(None)
    return _json({"chaos": None})


@control.get("/requests")
def list_requests() -> Response:
    """The request log, oldest first; ``?since=<epoch seconds>`` keeps later ones only."""
    raw_since = request.args.get("since")
    try:
        since = None if raw_since is None else float(raw_since)
    except ValueError as exc:
        raise SimInputError(f"since must be epoch seconds; got {raw_since!r}") from exc
    return _json({"requests": _state().requests(since)})


@control.delete("/requests")
def clear_requests() -> Response:
    return _json({"cleared": _state().clear_requests()})


@control.get("/weight", defaults=_SPOT)
@control.get(f"{_MARKET}/weight")
def weight(market: str) -> Response:
    """The market's weight charged in all, and in the current minute as its header says."""
    book = _book(market)
    return _json({"total": book.weight_total(), "this_minute": book.charge_weight(0)})


@control.delete("/weight", defaults=_SPOT)
@control.delete(f"{_MARKET}/weight")
def clear_weight(market: str) -> Response:
    return _json({"cleared": _book(market).clear_weight_total()})


def _summary(book: MarketBook) -> dict[str, int]:
    return {
        "symbols": book.symbol_count,
        "version": book.version,
        "server_time": _state().server_time_ms(),
    }


def _json_object() -> dict[str, Any]:
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise SimInputError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SimInputError("the request body must be a JSON object")
    return body


def _reject_unknown_keys(body: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise SimInputError(f"unknown keys {unknown}; expected some of {sorted(known)}")


def _parse_fault(body: Mapping[str, Any], default_endpoint: str) -> Fault:
    _reject_unknown_keys(body, _FAULT_KEYS)
    raw_kind = body.get("kind")
    if not isinstance(raw_kind, str) or raw_kind not in set(FaultKind):
        kinds = ", ".join(FaultKind)
        raise SimInputError(f"kind must be one of {kinds}; got {raw_kind!r}")
    kind = FaultKind(raw_kind)
    endpoint = body.get("endpoint", default_endpoint)
    if not isinstance(endpoint, str):
        raise SimInputError("endpoint must be a string")
    count = _optional_integer(body, "count")
    delay = body.get("delay_seconds")
    if delay is not None and (not isinstance(delay, int | float) or isinstance(delay, bool)):
        raise SimInputError(f"delay_seconds must be a number; got {delay!r}")
    return Fault(
        kind=kind,
        endpoint=endpoint,
        remaining=1 if count is None else count,
        status=_optional_integer(body, "status"),
        delay_seconds=None if delay is None else float(delay),
        retry_after=_optional_integer(body, "retry_after"),
        chunk_bytes=_optional_integer(body, "chunk_bytes"),
    )


def _optional_integer(body: Mapping[str, Any], key: str) -> int | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise SimInputError(f"{key} must be an integer; got {value!r}")
    return value


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


# -- errors ----------------------------------------------------------------------------------


def _bad_input(error: SimInputError) -> Response:
    return _json({"error": str(error)}, status=400)


def _unknown_symbol(error: UnknownSymbolError) -> Response:
    return _json({"error": str(error)}, status=404)


def _http_error(error: HTTPException) -> Response:
    return _json({"error": error.description}, status=error.code or 500)
