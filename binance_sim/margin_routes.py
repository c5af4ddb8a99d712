"""The margin endpoints (MARKET_DATA: a known key in ``X-MBX-APIKEY``, no signature, as
Binance serves them today, notes §16) and their controls under ``/_sim/margin``."""

from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Response, request

from binance_sim import responses
from binance_sim.account import SignedRequestError
from binance_sim.margin import MarginInputError, MarginState
from binance_sim.state import (
    MARGIN_DELIST_SCHEDULE_PATH,
    MARGIN_ISOLATED_PAIRS_PATH,
    MARGIN_PAIRS_PATH,
    SimInputError,
    SimState,
)

margin_binance = Blueprint("margin_binance", __name__)
margin_control = Blueprint("margin_control", __name__, url_prefix="/_sim/margin")


def _margin_input(call: Callable[[MarginState], Any]) -> Any:
    try:
        return call(responses.current_state().margin)
    except MarginInputError as exc:
        raise SimInputError(str(exc)) from exc


def _keyed(render: Callable[[MarginState], Any]) -> Response:
    """A MARKET_DATA answer: a known key in the header, no signature asked for."""

    def respond(state: SimState) -> Response:
        try:
            state.account.known_key(request.headers.get("X-MBX-APIKEY"))
        except SignedRequestError as exc:
            return responses.binance_error(exc.status, exc.code, exc.msg)
        return responses.binance_response(200, orjson.dumps(render(state.margin)))

    return responses.serve(respond)


@margin_binance.get(MARGIN_PAIRS_PATH)
def all_pairs() -> Response:
    return _keyed(lambda margin: margin.pairs("cross"))


@margin_binance.get(MARGIN_ISOLATED_PAIRS_PATH)
def isolated_pairs() -> Response:
    return _keyed(lambda margin: margin.pairs("isolated"))


@margin_binance.get(MARGIN_DELIST_SCHEDULE_PATH)
def delist_schedule() -> Response:
    return _keyed(lambda margin: margin.schedule())


@margin_control.get("/pairs/<kind>")
def get_pairs(kind: str) -> Response:
    return responses.json_response(_margin_input(lambda margin: margin.pairs(kind)))


@margin_control.patch("/pairs/<kind>/<symbol>")
def patch_pair(kind: str, symbol: str) -> Response:
    """``{"buy": false, "sell": true, "margin_trade": true, "delist_time": 1704973040 | null,
    "fields": {...}}``; answers the pair as served from now on."""
    body = responses.json_object()
    return responses.json_response(
        _margin_input(lambda margin: margin.patch_pair(kind, symbol, body))
    )


@margin_control.put("/pairs/<kind>/<symbol>")
def put_pair(kind: str, symbol: str) -> Response:
    """A whole pair object: listed (or replaced) from now on."""
    pair = responses.json_object()
    _margin_input(lambda margin: margin.put_pair(kind, symbol, pair))
    return responses.json_response(pair, status=201)


@margin_control.delete("/pairs/<kind>/<symbol>")
def delete_pair(kind: str, symbol: str) -> Response:
    _margin_input(lambda margin: margin.delete_pair(kind, symbol))
    return responses.json_response({"deleted": symbol})


@margin_control.put("/delist-schedule")
def put_delist_schedule() -> Response:
    """``{"schedule": [{"delistTime": ms, "crossMarginAssets": [...],
    "isolatedMarginSymbols": [...]}]}``, served from now on."""
    schedule = responses.json_object().get("schedule")
    _margin_input(lambda margin: margin.set_schedule(schedule))
    return responses.json_response({"schedule": schedule})
