"""How the sim answers: Binance's side (every route through ``serve``: a pending fault,
the weight charged, the request logged; Binance's Content-Type and ``{"code", "msg"}``
errors) and the control side's JSON in and out.

Both app.py (the public and control routes) and signed.py (the signed and account
routes) answer through these, so they live apart from either.
"""

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Final

import orjson
from flask import Response, current_app, request

from binance_sim.state import (
    ENDPOINT_WEIGHTS,
    Fault,
    FaultKind,
    RequestRecord,
    SimInputError,
    SimState,
    market_of,
)

EXTENSION_KEY: Final = "binance_sim"
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


def current_state() -> SimState:
    """The SimState the app serving this request was built over."""
    state: SimState = current_app.extensions[EXTENSION_KEY]
    return state


def serve(render: Callable[[SimState], Response]) -> Response:
    """Apply any pending fault, charge the weight, log the request: all Binance routes do this.

    The weight goes to the path's market: each Binance host reports its own count.
    """
    state = current_state()
    received_at = state.now()
    fault = state.take_fault(request.path, received_at)
    response = (
        render(state)
        if fault is None
        else _FAULT_RESPONDERS[fault.kind](fault, lambda: render(state))
    )
    if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
        # Closing comes after the server has written the whole response: from then on the
        # client can know of the 429.
        response.call_on_close(partial(state.told_of_rate_limit, request.path))
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


def binance_response(status: int, body: bytes) -> Response:
    """A body as Binance sends it, with its exact Content-Type."""
    return Response(body, status=status, content_type=_BINANCE_CONTENT_TYPE)


def binance_error(status: int, code: int, msg: str) -> Response:
    """Binance's error shape, ``{"code", "msg"}``, with its HTTP status."""
    return binance_response(status, orjson.dumps({"code": code, "msg": msg}))


Render = Callable[[], Response]


def _status_fault(fault: Fault, _: Render) -> Response:
    code, msg = _STATUS_ERRORS.get(fault.http_status, _UNKNOWN_ERROR)
    return binance_error(fault.http_status, code, msg)


def _invalid_json_fault(fault: Fault, _: Render) -> Response:
    return binance_response(fault.http_status, _INVALID_JSON_BODY)


def _geo_block_fault(fault: Fault, _: Render) -> Response:
    return binance_response(fault.http_status, _RESTRICTED_LOCATION_BODY)


def _error_body_fault(fault: Fault, _: Render) -> Response:
    return binance_error(
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
    response = binance_error(
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


def json_object() -> dict[str, Any]:
    """The control request's body: a JSON object, else a 400 (SimInputError)."""
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise SimInputError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SimInputError("the request body must be a JSON object")
    return body


def json_response(value: Any, status: int = 200) -> Response:
    """A control answer: JSON, not Binance's Content-Type."""
    return Response(orjson.dumps(value), status=status, mimetype="application/json")
