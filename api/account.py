"""The /v1 routes over the account, commission, system-status and delistings streams.

Account answers (commissions, permissions, balances) need the bearer token
(``api.auth``); the exchange's system status and its announced delistings are public
facts, like the symbols. Each answer carries the evidence of its own stream: the account
may have been polled a minute ago while exchangeInfo was polled a second ago.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from sqlalchemy import Connection

from api import render
from api.auth import require_token
from api.errors import ApiError
from api.params import AsOfQuery, BalancesQuery, SymbolPath
from api.schemas import (
    AccountAsOf,
    BalancesAsOf,
    CommissionAsOf,
    DelistingsAsOf,
    ErrorResponse,
    SystemStatusAsOf,
    operation_id,
)
from api.state import app_state
from core import history
from core.history import Version
from core.timeparse import format_instant

T = TypeVar("T")

ACCOUNT = Tag(name="account", description="commissions, permissions, balances (bearer token)")
EXCHANGE = Tag(name="exchange", description="exchange-wide rules and the raw documents")
SECURED: list[dict[str, list[str]]] = [{"bearer": []}]

account_v1 = APIBlueprint(
    "account_v1",
    __name__,
    abp_responses={400: ErrorResponse, 404: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse},
    operation_id_callback=operation_id,
)
TOKEN_RESPONSES: dict[str | int, Any] = {401: ErrorResponse, 403: ErrorResponse}


def _as_of(
    stream: str,
    as_of: datetime | None,
    read: Callable[[Connection, datetime], T | None],
    respond: Callable[[T, datetime, history.Evidence], dict[str, object]],
) -> Response:
    """Read ``stream``'s answer at ``as_of`` with its evidence; 404 if never observed by then."""
    state = app_state()
    now = state.clock()
    at = as_of or now
    with state.reading() as conn:
        found = history.evidence(conn, stream, at, state.interval(stream), now)
        answer = read(conn, at) if found.observed_before is not None else None
    if answer is None:
        raise ApiError(
            404,
            "not_observed",
            f"no successful {stream} observation at or before {format_instant(at)}",
        )
    return render.json_response(respond(answer, at, found))


@account_v1.get(
    "/v1/account",
    tags=[ACCOUNT],
    security=SECURED,
    responses={200: AccountAsOf, **TOKEN_RESPONSES},
)
@require_token
def get_account(query: AsOfQuery) -> Response:
    """The account's commissions, permissions and flags in force at as_of"""
    return _as_of("account", query.as_of, history.account_as_of, render.version_as_of)


@account_v1.get(
    "/v1/account/balances",
    tags=[ACCOUNT],
    security=SECURED,
    responses={200: BalancesAsOf, **TOKEN_RESPONSES},
)
@require_token
def get_balances(query: BalancesQuery) -> Response:
    """Non-zero balances at as_of (an asset that is not listed held zero)"""
    return _as_of(
        "account",
        query.as_of,
        lambda conn, at: history.balances_as_of(conn, at, query.asset),
        lambda versions, at, found: render.versions_as_of("balances", versions, at, found),
    )


@account_v1.get(
    "/v1/account/commission/<symbol>",
    tags=[ACCOUNT],
    security=SECURED,
    responses={200: CommissionAsOf, **TOKEN_RESPONSES},
)
@require_token
def get_commission(path: SymbolPath, query: AsOfQuery) -> Response:
    """The account's commission rates on one symbol at as_of ([poller] commission_symbols)

    404 `not_observed` if commissions were never polled by as_of, 404
    `commission_not_polled` if this symbol's were not among them then.
    """

    def read(conn: Connection, at: datetime) -> Version:
        found = history.commission_as_of(conn, path.symbol, at)
        if found is None:
            raise ApiError(
                404,
                "commission_not_polled",
                f"no commission of {path.symbol} at {format_instant(at)}:"
                " is it in [poller] commission_symbols?",
            )
        return found

    return _as_of("account_commission", query.as_of, read, render.version_as_of)


@account_v1.get(
    "/v1/system-status",
    tags=[EXCHANGE],
    responses={200: SystemStatusAsOf},
)
def get_system_status(query: AsOfQuery) -> Response:
    """Binance's system status at as_of: 0 normal, 1 system maintenance"""
    return _as_of("system_status", query.as_of, history.system_status_as_of, render.version_as_of)


@account_v1.get(
    "/v1/delistings",
    tags=[EXCHANGE],
    responses={200: DelistingsAsOf},
)
def list_delistings(query: AsOfQuery) -> Response:
    """Delistings announced and still scheduled at as_of

    valid_from is when the announcement was first observed, delist_time when it takes
    effect: compare them with the symbol's status history (/v1/symbols/{symbol}/history).
    """
    return _as_of(
        "delistings",
        query.as_of,
        history.delistings_as_of,
        lambda versions, at, found: render.versions_as_of("delistings", versions, at, found),
    )
