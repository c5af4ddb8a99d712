"""The account, key-restriction, system-status, delist-schedule and capital-config endpoints,
and their controls.

Every signed route goes through ``_signed``: the key, the signature and the timestamp are
checked before anything is served, and a refusal is Binance's own ``{"code", "msg"}`` with
its HTTP status, logged and charged like any other request.
"""

from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Response, request

from binance_sim import responses
from binance_sim.account import AccountInputError, ApiKey, SignedRequestError
from binance_sim.state import (
    ACCOUNT_PATH,
    API_RESTRICTIONS_PATH,
    CAPITAL_CONFIG_PATH,
    COMMISSION_PATH,
    DELIST_SCHEDULE_PATH,
    SYSTEM_STATUS_PATH,
    SimInputError,
    SimState,
)

signed_binance = Blueprint("signed_binance", __name__)
signed_control = Blueprint("signed_control", __name__, url_prefix="/_sim")

Render = Callable[[SimState, ApiKey, dict[str, str]], Any]


def _signed(render: Render) -> Response:
    def respond(state: SimState) -> Response:
        try:
            key, params = state.account.authenticate(
                request.headers.get("X-MBX-APIKEY"),
                request.query_string.decode("utf-8", "replace"),
                state.server_time_ms(),
            )
            return responses.binance_response(200, orjson.dumps(render(state, key, params)))
        except SignedRequestError as exc:
            return responses.binance_error(exc.status, exc.code, exc.msg)

    return responses.serve(respond)


@signed_binance.get(ACCOUNT_PATH)
def account() -> Response:
    return _signed(
        lambda state, _key, params: state.account.account(
            omit_zero_balances=params.get("omitZeroBalances") == "true",
            server_time_ms=state.server_time_ms(),
        )
    )


@signed_binance.get(COMMISSION_PATH)
def commission() -> Response:
    def render(state: SimState, _key: ApiKey, params: dict[str, str]) -> Any:
        symbol = params.get("symbol")
        if not symbol:
            raise SignedRequestError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        return state.account.commission(symbol)

    return _signed(render)


@signed_binance.get(API_RESTRICTIONS_PATH)
def api_restrictions() -> Response:
    return _signed(lambda state, key, _params: state.account.restrictions(key))


@signed_binance.get(DELIST_SCHEDULE_PATH)
def delist_schedule() -> Response:
    return _signed(lambda state, _key, _params: state.account.delist_schedule())


@signed_binance.get(CAPITAL_CONFIG_PATH)
def capital_config() -> Response:
    """Signed (USER_DATA), like Binance's: the coins' switches and the key's balances."""
    return _signed(lambda state, _key, _params: state.account.capital_config())


@signed_binance.get(SYSTEM_STATUS_PATH)
def system_status() -> Response:
    """Unsigned (security type NONE), like Binance's."""
    return responses.serve(
        lambda state: responses.binance_response(200, orjson.dumps(state.account.system_status()))
    )


# -- control API -----------------------------------------------------------------------------


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise SimInputError(f"{name} must be a string")
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, dict):
        raise SimInputError(f"{name} must be a JSON object")
    return value


def _account_input(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except AccountInputError as exc:
        raise SimInputError(str(exc)) from exc


@signed_control.put("/keys/<api_key>")
def put_key(api_key: str) -> Response:
    """Accept ``api_key`` with ``hmac_secret`` or ``ed25519_public_key`` (PEM); 201."""
    body = responses.json_object()
    _account_input(
        lambda: responses.current_state().account.put_key(
            api_key,
            hmac_secret=_string(body, "hmac_secret"),
            ed25519_public_key_pem=_string(body, "ed25519_public_key"),
            restrictions=_object(body, "restrictions"),
        )
    )
    return responses.json_response({"key": api_key}, status=201)


@signed_control.patch("/keys/<api_key>/restrictions")
def patch_restrictions(api_key: str) -> Response:
    body = responses.json_object()
    return responses.json_response(
        _account_input(lambda: responses.current_state().account.patch_restrictions(api_key, body))
    )


@signed_control.patch("/account")
def patch_account() -> Response:
    """``{"fields": {...}, "balances": {"BTC": {"free": "1", "locked": "0"}}}``."""
    body = responses.json_object()
    state = responses.current_state()
    return responses.json_response(
        _account_input(
            lambda: state.account.patch_account(
                _object(body, "fields"), _object(body, "balances"), state.server_time_ms()
            )
        )
    )


@signed_control.put("/commission/<symbol>")
def put_commission(symbol: str) -> Response:
    responses.current_state().account.put_commission(symbol, responses.json_object())
    return responses.json_response(responses.current_state().account.commission(symbol))


@signed_control.put("/system-status")
def put_system_status() -> Response:
    body = responses.json_object()
    status, msg = body.get("status"), body.get("msg")
    if status not in (0, 1) or not isinstance(msg, str):
        raise SimInputError('the body must be {"status": 0 | 1, "msg": "..."}')
    responses.current_state().account.set_system_status(status, msg)
    return responses.json_response(responses.current_state().account.system_status())


@signed_control.put("/delist-schedule")
def put_delist_schedule() -> Response:
    """``{"schedule": [{"delistTime": ms, "symbols": [...]}]}``, served from now on."""
    schedule = responses.json_object().get("schedule")
    if not isinstance(schedule, list):
        raise SimInputError("'schedule' must be a list")
    _account_input(lambda: responses.current_state().account.set_delist_schedule(schedule))
    return responses.json_response({"schedule": schedule})


@signed_control.get("/capital-config")
def get_capital_config() -> Response:
    return Response(
        orjson.dumps(responses.current_state().account.capital_config()),
        mimetype="application/json",
    )


@signed_control.put("/capital-config")
def put_capital_config() -> Response:
    """A whole ``capital/config/getall`` document (a list of coins), served from now on."""
    try:
        doc = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise SimInputError(f"the request body is not valid JSON: {exc}") from exc
    _account_input(lambda: responses.current_state().account.set_capital_config(doc))
    return responses.json_response({"coins": len(doc)})


@signed_control.patch("/capital-config/<coin>/<network>")
def patch_network(coin: str, network: str) -> Response:
    """``{"withdraw": false, "withdraw_desc": "...", "deposit": ..., "deposit_desc": ...,
    "busy": ..., "withdraw_fee": "...", "withdraw_min": "...", "withdraw_max": "...",
    "fields": {...}}``; answers the network as served from now on."""
    body = responses.json_object()
    return responses.json_response(
        _account_input(lambda: responses.current_state().account.patch_network(coin, network, body))
    )


@signed_control.put("/clock")
def put_clock() -> Response:
    """``{"offset_ms": N}``: the sim's clock runs N ms ahead of the host's (negative: behind)."""
    offset = responses.json_object().get("offset_ms")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise SimInputError("offset_ms must be an integer")
    responses.current_state().set_clock_offset_ms(offset)
    return responses.json_response(
        {"offset_ms": offset, "server_time": responses.current_state().server_time_ms()}
    )
