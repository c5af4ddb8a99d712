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

from collections.abc import Mapping
from typing import Any, Final

import orjson
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from binance_sim.margin_routes import margin_binance, margin_control
from binance_sim.responses import (
    EXTENSION_KEY,
    binance_error,
    binance_response,
    current_state,
    json_object,
    json_response,
    serve,
)
from binance_sim.signed import signed_binance, signed_control
from binance_sim.state import (
    ANY_ENDPOINT,
    EXCHANGE_INFO_PATH,
    EXCHANGE_INFO_PATHS,
    Chaos,
    ConnectionFault,
    Fault,
    FaultKind,
    Market,
    MarketBook,
    SimInputError,
    SimState,
    UnknownSymbolError,
    market_of,
)

# A whole real snapshot is 2.7-3.7 MB; Flask accepts any size by default, this keeps a bound.
MAX_CONTROL_BODY_BYTES: Final = 64 * 1024 * 1024

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
    app.extensions[EXTENSION_KEY] = state
    app.register_blueprint(binance)
    app.register_blueprint(control)
    app.register_blueprint(signed_binance)
    app.register_blueprint(signed_control)
    app.register_blueprint(margin_binance)
    app.register_blueprint(margin_control)
    app.register_error_handler(SimInputError, _bad_input)
    app.register_error_handler(UnknownSymbolError, _unknown_symbol)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _book(market: str) -> MarketBook:
    return current_state().book(Market(market))


# -- Binance ---------------------------------------------------------------------------------


@binance.get(EXCHANGE_INFO_PATH, defaults=_SPOT)
@binance.get(EXCHANGE_INFO_PATHS[Market.USDM], defaults={"market": Market.USDM.value})
@binance.get(EXCHANGE_INFO_PATHS[Market.COINM], defaults={"market": Market.COINM.value})
def exchange_info(market: str) -> Response:
    """The market's whole current document; query parameters are accepted and ignored."""
    return serve(lambda state: binance_response(200, state.exchange_info_body(Market(market))))


@binance.get("/api/v3/time")
@binance.get("/fapi/v1/time")
@binance.get("/dapi/v1/time")
def server_time() -> Response:
    return serve(
        lambda state: binance_response(200, orjson.dumps({"serverTime": state.server_time_ms()}))
    )


@binance.get("/api/v3/ping")
@binance.get("/fapi/v1/ping")
@binance.get("/dapi/v1/ping")
def ping() -> Response:
    return serve(lambda _: binance_response(200, b"{}"))


_ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@binance.route("/api/<path:_rest>", methods=_ALL_METHODS)
@binance.route("/fapi/<path:_rest>", methods=_ALL_METHODS)
@binance.route("/dapi/<path:_rest>", methods=_ALL_METHODS)
def unknown_endpoint(_rest: str) -> Response:
    """Paths and methods Binance does not serve get a Binance-shaped 404; they cost no weight."""
    return serve(
        lambda _: binance_error(404, -1000, f"Unknown endpoint {request.method} {request.path}")
    )


# -- control API -----------------------------------------------------------------------------


@control.put("/exchange-info", defaults=_SPOT)
@control.put(f"{_MARKET}/exchange-info")
def replace_exchange_info(market: str) -> Response:
    """Serve the body (a whole exchangeInfo document) from now on."""
    book = _book(market)
    book.replace_document(json_object())
    return json_response(_summary(book))


@control.get("/state", defaults=_SPOT)
@control.get(f"{_MARKET}/state")
def summary(market: str) -> Response:
    return json_response(_summary(_book(market)))


@control.get("/symbols/<symbol>", defaults=_SPOT)
@control.get(f"{_MARKET}/symbols/<symbol>")
def get_symbol(market: str, symbol: str) -> Response:
    return json_response(_book(market).get_symbol(symbol))


@control.put("/symbols/<symbol>", defaults=_SPOT)
@control.put(f"{_MARKET}/symbols/<symbol>")
def put_symbol(market: str, symbol: str) -> Response:
    """List the symbol, or replace it where it stands; 201 when it is new."""
    body = json_object()
    if body.get("symbol") != symbol:
        raise SimInputError(f"the body's 'symbol' must be {symbol!r}, as in the path")
    book = _book(market)
    added = book.put_symbol(body)
    return json_response(book.get_symbol(symbol), status=201 if added else 200)


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
    body = json_object()
    _reject_unknown_keys(body, known_keys)
    patched = book.patch_symbol(
        symbol,
        fields=body.get("fields"),
        filters=body.get("filters"),
        remove_filters=body.get("remove_filters"),
        status=body.get("status"),
        delivery_date=body.get("delivery_date"),
    )
    return json_response(patched)


@control.delete("/symbols/<symbol>", defaults=_SPOT)
@control.delete(f"{_MARKET}/symbols/<symbol>")
def remove_symbol(market: str, symbol: str) -> Response:
    """Delist: the symbol leaves the market's document."""
    _book(market).remove_symbol(symbol)
    return json_response({"removed": symbol})


@control.post("/faults")
def add_fault() -> Response:
    fault = _parse_fault(json_object(), EXCHANGE_INFO_PATH)
    current_state().add_fault(fault)
    return json_response(fault, status=201)


@control.post(f"{_MARKET}/faults")
def add_market_fault(market: str) -> Response:
    """A fault on one of the market's endpoints, its exchangeInfo unless ``endpoint`` says."""
    fault = _parse_fault(json_object(), EXCHANGE_INFO_PATHS[Market(market)])
    if fault.endpoint == ANY_ENDPOINT or market_of(fault.endpoint) != market:
        raise SimInputError(
            f"endpoint {fault.endpoint!r} is not one of {market}'s; "
            "POST /_sim/faults takes any endpoint and '*'"
        )
    current_state().add_fault(fault)
    return json_response(fault, status=201)


@control.get("/faults")
def list_faults() -> Response:
    return json_response({"faults": current_state().pending_faults()})


@control.get(f"{_MARKET}/faults")
def list_market_faults(market: str) -> Response:
    """The pending faults that will hit this market's endpoints (wildcards included)."""
    faults = [
        fault
        for fault in current_state().pending_faults()
        if fault.endpoint == ANY_ENDPOINT or market_of(fault.endpoint) == market
    ]
    return json_response({"faults": faults})


@control.delete("/faults")
def clear_faults() -> Response:
    return json_response({"cleared": current_state().clear_faults()})


@control.put("/chaos")
def set_chaos() -> Response:
    """Fail ``rate`` of all responses from now on, each as one of ``faults`` (seeded)."""
    body = json_object()
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
    current_state().set_chaos(chaos)
    return json_response(chaos)


@control.get("/chaos")
def get_chaos() -> Response:
    return json_response({"chaos": current_state().chaos()})


@control.delete("/chaos")
def stop_chaos() -> Response:
    current_state().set_chaos(None)
    return json_response({"chaos": None})


@control.get("/requests")
def list_requests() -> Response:
    """The request log, oldest first; ``?since=<epoch seconds>`` keeps later ones only."""
    raw_since = request.args.get("since")
    try:
        since = None if raw_since is None else float(raw_since)
    except ValueError as exc:
        raise SimInputError(f"since must be epoch seconds; got {raw_since!r}") from exc
    return json_response({"requests": current_state().requests(since)})


@control.delete("/requests")
def clear_requests() -> Response:
    return json_response({"cleared": current_state().clear_requests()})


@control.get("/weight", defaults=_SPOT)
@control.get(f"{_MARKET}/weight")
def weight(market: str) -> Response:
    """The market's weight charged in all, and in the current minute as its header says."""
    book = _book(market)
    return json_response({"total": book.weight_total(), "this_minute": book.charge_weight(0)})


@control.delete("/weight", defaults=_SPOT)
@control.delete(f"{_MARKET}/weight")
def clear_weight(market: str) -> Response:
    return json_response({"cleared": _book(market).clear_weight_total()})


# -- WebSocket streams (binance_sim.streams) --------------------------------------------------

_STREAM_FAULT_KEYS: Final = frozenset({"kind", "market", "seconds"})


@control.get("/streams")
def stream_settings() -> Response:
    """Where each market's streams are served, the cadences set and the connection lifetime."""
    streams = current_state().streams
    return json_response(
        {"urls": streams.urls, "cadences": streams.cadences(), "lifetime": streams.lifetime}
    )


@control.put("/streams/cadences/<symbol>")
def set_cadence(symbol: str) -> Response:
    """``{"seconds": s}``: the spot symbol trades every ``s`` seconds while not in BREAK."""
    body = json_object()
    _reject_unknown_keys(body, frozenset({"seconds"}))
    current_state().streams.set_cadence(symbol, body.get("seconds"))
    return json_response({"symbol": symbol, "seconds": current_state().streams.cadence(symbol)})


@control.put("/streams/lifetime")
def set_lifetime() -> Response:
    """``{"seconds": s}``: connections close after ``s`` seconds, as Binance's do after 24 h
    (null: never)."""
    body = json_object()
    _reject_unknown_keys(body, frozenset({"seconds"}))
    current_state().streams.set_lifetime(body.get("seconds"))
    return json_response({"lifetime": current_state().streams.lifetime})


@control.post("/streams/faults")
def add_stream_fault() -> Response:
    """``{"kind": "drop"|"shutdown"|"stall", "market"?, "seconds"?}``: done to every
    connection (of the market) open now; a stall lasts ``seconds`` (default 30)."""
    body = json_object()
    _reject_unknown_keys(body, _STREAM_FAULT_KEYS)
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in set(ConnectionFault):
        raise SimInputError(f"kind must be one of {', '.join(ConnectionFault)}; got {kind!r}")
    market = body.get("market")
    if market is not None and (not isinstance(market, str) or market not in set(Market)):
        raise SimInputError(f"market must be one of {', '.join(Market)}; got {market!r}")
    seconds = body.get("seconds", 30)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise SimInputError(f"seconds must be a positive number; got {seconds!r}")
    order = current_state().streams.order(
        ConnectionFault(kind), None if market is None else Market(market), float(seconds)
    )
    return json_response(order, status=201)


def _summary(book: MarketBook) -> dict[str, int]:
    return {
        "symbols": book.symbol_count,
        "version": book.version,
        "server_time": current_state().server_time_ms(),
    }


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


# -- errors ----------------------------------------------------------------------------------


def _bad_input(error: SimInputError) -> Response:
    return json_response({"error": str(error)}, status=400)


def _unknown_symbol(error: UnknownSymbolError) -> Response:
    return json_response({"error": str(error)}, status=404)


def _http_error(error: HTTPException) -> Response:
    return json_response({"error": error.description}, status=error.code or 500)
