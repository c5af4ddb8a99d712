"""The /v1 routes over the account, commission, system-status, delistings and wallet streams.

Account answers (commissions, permissions, balances) need the bearer token
(``api.auth``); the exchange's system status, its announced delistings and the wallet's
deposit and withdrawal switches are public facts, like the symbols (the wallet's tables
hold no balance: core.wallet). Each answer carries the evidence of its own stream: the account
may have been polled a minute ago while exchangeInfo was polled a second ago.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from sqlalchemy import Connection

from api import render
from api.auth import require_token
from api.errors import ApiError
from api.params import (
    AsOfQuery,
    BalancesQuery,
    CoinPath,
    NetworkPath,
    PagedWindow,
    SymbolPath,
    WalletNetworksQuery,
)
from api.schemas import (
    AccountAsOf,
    BalancesAsOf,
    CommissionAsOf,
    DelistingsAsOf,
    ErrorResponse,
    SystemStatusAsOf,
    WalletCoinAsOf,
    WalletNetworkHistory,
    WalletNetworksAsOf,
    operation_id,
)
from api.state import app_state
from core import history, signals
from core.cursors import CursorError
from core.history import ChangeWindow, Version
from core.timeparse import format_instant

T = TypeVar("T")

ACCOUNT = Tag(name="account", description="commissions, permissions, balances (bearer token)")
EXCHANGE = Tag(name="exchange", description="exchange-wide rules and the raw documents")
WALLET = Tag(
    name="wallet", description="could a coin be deposited or withdrawn, by which network, at t"
)
WALLET_STREAM = "wallet_networks"
SECURED: list[dict[str, list[str]]] = [{"bearer": []}]

account_v1 = APIBlueprint(
    "account_v1",
    __name__,
    abp_responses={400: ErrorResponse, 404: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse},
    operation_id_callback=operation_id,
)
TOKEN_RESPONSES: dict[str | int, Any] = {401: ErrorResponse, 403: ErrorResponse}


def stream_as_of(
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
    return stream_as_of("account", query.as_of, history.account_as_of, render.version_as_of)


@account_v1.get(
    "/v1/account/balances",
    tags=[ACCOUNT],
    security=SECURED,
    responses={200: BalancesAsOf, **TOKEN_RESPONSES},
)
@require_token
def get_balances(query: BalancesQuery) -> Response:
    """Non-zero balances at as_of (an asset that is not listed held zero)

    With `asset`, the evidence has `change` when the user data stream's event dated the
    start of that balance's change.
    """

    def read(conn: Connection, at: datetime) -> tuple[list[Version], ChangeWindow | None]:
        versions = history.balances_as_of(conn, at, query.asset)
        change = None
        if query.asset is not None and len(versions) == 1:
            change = signals.change_window(conn, "account", query.asset, versions[0].valid_from)
        return versions, change

    def respond(
        answer: tuple[list[Version], ChangeWindow | None], at: datetime, found: history.Evidence
    ) -> dict[str, object]:
        versions, change = answer
        return render.versions_as_of("balances", versions, at, replace(found, change=change))

    return stream_as_of("account", query.as_of, read, respond)


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

    return stream_as_of("account_commission", query.as_of, read, render.version_as_of)


@account_v1.get(
    "/v1/system-status",
    tags=[EXCHANGE],
    responses={200: SystemStatusAsOf},
)
def get_system_status(query: AsOfQuery) -> Response:
    """Binance's system status at as_of: 0 normal, 1 system maintenance"""
    return stream_as_of(
        "system_status", query.as_of, history.system_status_as_of, render.version_as_of
    )


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
    return stream_as_of(
        "delistings",
        query.as_of,
        history.delistings_as_of,
        lambda versions, at, found: render.versions_as_of("delistings", versions, at, found),
    )


@account_v1.get(
    "/v1/wallet/networks",
    tags=[WALLET],
    responses={200: WalletNetworksAsOf},
)
def list_wallet_networks(query: WalletNetworksQuery) -> Response:
    """Every coin's networks in force at as_of: deposit and withdrawal switches, messages, fees

    A suspension reads `withdraw_enable: false` with Binance's reason in `withdraw_desc`.
    404 `not_observed` if the wallet was not polled successfully at or before as_of.
    """
    return stream_as_of(
        WALLET_STREAM,
        query.as_of,
        lambda conn, at: history.wallet_networks_as_of(conn, at, query.coin, query.network),
        lambda versions, at, found: render.versions_as_of("networks", versions, at, found),
    )


@account_v1.get(
    "/v1/wallet/networks/<coin>/<network>/history",
    tags=[WALLET],
    responses={200: WalletNetworkHistory},
)
def get_wallet_network_history(path: NetworkPath, query: PagedWindow) -> Response:
    """The network's versions overlapping [from, to), each with the fields that changed

    A withdrawal suspended and resumed is two versions: `withdrawEnable` true → false with
    its `withdrawDesc`, and back. At most `limit` per page, oldest first; `next` continues
    after the last one. 404 `network_never_seen` for a network never recorded.
    """
    with app_state().reading() as conn:
        try:
            page = history.wallet_network_history(
                conn,
                path.coin,
                path.network,
                query.start,
                query.end,
                limit=query.limit,
                cursor=query.next_cursor,
            )
        except CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        if not page.entries and not history.wallet_network_versions(conn, path.coin, path.network):
            raise ApiError(
                404,
                "network_never_seen",
                f"network {path.network} of {path.coin} was never observed",
            )
    return render.json_response(
        render.wallet_network_history(path.coin, path.network, page, query.start, query.end)
    )


@account_v1.get(
    "/v1/wallet/<coin>",
    tags=[WALLET],
    responses={200: WalletCoinAsOf},
)
def get_wallet_coin(path: CoinPath, query: AsOfQuery) -> Response:
    """By which networks the coin could be deposited and withdrawn at as_of, at what fees

    Each network's deposit and withdrawal switch says since when it had been in that
    position. 404 `not_observed` if the wallet was not polled successfully at or before
    as_of, 404 `coin_not_listed` if Binance's answer then had no such coin.
    """

    def read(conn: Connection, at: datetime) -> history.WalletCoin:
        found = history.wallet_coin_at(conn, path.coin, at)
        if found is None:
            raise ApiError(
                404, "coin_not_listed", f"{path.coin} was not in the wallet at {format_instant(at)}"
            )
        return found

    return stream_as_of(WALLET_STREAM, query.as_of, read, render.wallet_coin)
