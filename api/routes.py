"""The /v1 routes: parse (api.params), ask core.history, render (api.render).

An `as of` answer is only as good as its evidence, so a question about an instant at
or before which nothing was ever observed is a 404 `not_observed`, never an empty
"nothing was listed" that would look like a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from sqlalchemy import Connection

from api import render
from api.answers import keepable
from api.auth import authenticated, check_token
from api.errors import ApiError
from api.params import (
    ChangesQuery,
    CheckQuery,
    DiffQuery,
    HistoryQuery,
    MarketAsOfQuery,
    ObservationsQuery,
    SchemaQuery,
    SymbolPath,
    SymbolsQuery,
)
from api.schemas import (
    EXCHANGE_INFO_RESPONSE,
    AnyStateDiff,
    AnySymbolAsOf,
    AnySymbolList,
    ChangeFeed,
    ErrorResponse,
    ObservationLog,
    OrderCheck,
    RateLimitsAsOf,
    ReplicaList,
    SchemaAsOf,
    SymbolHistory,
    operation_id,
)
from api.state import app_state
from core import changes, history, replicas, state_diff
from core.cursors import CursorError
from core.order_check import (
    Order,
    Unchecked,
    UnsupportedOrderError,
    check_futures_order,
    check_order,
)
from core.streams import DEFAULT_MARKET, PRIVATE_STREAMS, feed_streams
from core.streams import market as market_declaration
from core.suggestions import did_you_mean
from core.timeparse import format_instant, window_before

DEFAULT_WINDOW = timedelta(hours=1)
# Stricter than for other names: symbols are short and alike, and ETHBTC is no typo of
# ETHUSDT, while ETHBTCC and BTCUSTD are of ETHBTC and BTCUSDT.
SYMBOL_CUTOFF = 0.8

SYMBOLS = Tag(name="symbols", description="trading rules per symbol, now or as of an instant")
EXCHANGE = Tag(name="exchange", description="exchange-wide rules and the raw documents")
CHANGES = Tag(name="changes", description="what changed in a window, field by field")
OBSERVATIONS = Tag(name="observations", description="the poll log: coverage, failures, gaps")
REPLICAS = Tag(name="replicas", description="the poller replicas: heartbeats and leases")

v1 = APIBlueprint(
    "v1",
    __name__,
    abp_responses={400: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse},
    operation_id_callback=operation_id,
)


def _not_observed(at: datetime, market: str = DEFAULT_MARKET) -> ApiError:
    return ApiError(
        404,
        "not_observed",
        f"no successful {market_declaration(market).exchange_info} observation at or before"
        f" {format_instant(at)}",
    )


def _observed(
    conn: Connection, at: datetime, now: datetime, market: str = DEFAULT_MARKET
) -> history.Evidence:
    """The evidence at ``at``; 404 ``not_observed`` when nothing was seen by then."""
    found = app_state().evidence(conn, at, now, market)
    if found.observed_before is None:
        raise _not_observed(at, market)
    return found


@dataclass(frozen=True, slots=True)
class _Rules:
    """A symbol's rules at an instant, their evidence, and, for an answer that may be kept
    (api.answers), the generation they were read in (else None)."""

    rules: history.SymbolRules
    at: datetime
    found: history.Evidence
    generation: int | None


def _symbol_rules(
    symbol: str,
    as_of: datetime | None,
    market: str,
    *,
    decimals_as_text: bool = False,
    keep: bool = False,
) -> _Rules:
    """A symbol's rules on ``market`` in force at ``as_of`` (default now) with their
    evidence, or a 404.

    With ``keep``, an answer that can be kept gets its generation, read in the same
    statement as the rules and their evidence (history.symbol_answer); it counts as a
    look at the generation (api.answers) whether kept or not.
    """
    state = app_state()
    now = state.clock()
    at = as_of or now
    stream = market_declaration(market).exchange_info
    look = state.answers.start_look()
    with state.answering() as conn:
        read = history.symbol_answer(
            conn,
            symbol,
            at,
            state.interval(stream),
            now,
            market=market,
            decimals_as_text=decimals_as_text,
        )
        # The generation came with the answer: a look, which spares the next one.
        state.answers.saw(stream, look, read.generation)
        rules, found = read.rules, read.evidence
        if rules is None:
            if found.observed_before is None:
                raise _not_observed(at, market)
            listed = history.symbol_names(conn, at, market=market)
            raise ApiError(
                404,
                "symbol_not_listed",
                f"{symbol} was not listed{_on(market)} at {format_instant(at)}"
                + did_you_mean(symbol, listed, SYMBOL_CUTOFF),
            )
    generation = read.generation if keep and as_of is not None and keepable(found) else None
    return _Rules(rules, at, found, generation)


def _on(market: str) -> str:
    """`` on usdm`` in a message about another market than spot: spot's read as before."""
    return "" if market == DEFAULT_MARKET else f" on {market}"


@v1.get(
    "/v1/symbols",
    tags=[SYMBOLS],
    responses={200: AnySymbolList, 404: ErrorResponse},
)
def list_symbols(query: SymbolsQuery) -> Response:
    """Every symbol of the market in force at as_of (default: the current ones), with its rules

    A futures market's answer names its market and its contracts' own fields (pair,
    contract_type, delivery_date...).
    """
    state = app_state()
    now = state.clock()
    at = query.as_of or now
    with state.reading() as conn:
        found = _observed(conn, at, now, query.market)
        rows = history.rules_rows_as_of(
            conn,
            query.as_of,
            market=query.market,
            status=query.status,
            base_asset=query.base_asset,
            quote_asset=query.quote_asset,
            decimals_as_text=True,
        )
    return render.json_response(render.symbol_list(rows, at, found))


@v1.get(
    "/v1/symbols/<symbol>",
    tags=[SYMBOLS],
    responses={200: AnySymbolAsOf, 404: ErrorResponse},
)
def get_symbol(path: SymbolPath, query: MarketAsOfQuery) -> Response:
    """One symbol's rules on the market at as_of, with their validity and the evidence

    404 `not_observed` if the market's exchangeInfo was not observed at or before as_of,
    404 `symbol_not_listed` if the symbol was not listed on it then.
    """
    state = app_state()
    market = query.market
    key = (market, path.symbol, query.as_of)
    answers = state.answers
    # A question not kept needs no look at the generation: the answer's statement reads it.
    if query.as_of is not None and key in answers:
        body = answers.get(key, state.generation(market))
        if body is not None:
            return render.json_body(body)
    read = _symbol_rules(path.symbol, query.as_of, market, decimals_as_text=True, keep=True)
    shape = history.layout(market)
    response = render.json_response(render.symbol_as_of(read.rules, shape, read.at, read.found))
    if read.generation is not None:
        answers.put(key, read.generation, response.get_data())
    return response


@v1.get(
    "/v1/symbols/<symbol>/history",
    tags=[SYMBOLS],
    responses={200: SymbolHistory, 404: ErrorResponse},
)
def get_symbol_history(path: SymbolPath, query: HistoryQuery) -> Response:
    """The symbol's versions overlapping [from, to), each with the fields that changed

    On the market asked (default spot). At most `limit` per page, oldest first; `next` continues after the last one. A
    contract's lifecycle (PENDING_TRADING, TRADING, SETTLING..., its delivery date) reads
    as the changes of `status` and `deliveryDate`.
    """
    state = app_state()
    market = query.market
    with state.reading() as conn:
        try:
            page = history.symbol_history(
                conn,
                path.symbol,
                query.start,
                query.end,
                limit=query.limit,
                cursor=query.next_cursor,
                market=market,
            )
        except CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        # An empty window is an answer; a symbol never seen is not.
        if not page.entries and not history.symbol_seen(conn, path.symbol, market=market):
            seen = history.symbol_names(conn, market=market)
            raise ApiError(
                404,
                "symbol_never_seen",
                f"{path.symbol} was never observed{_on(market)}"
                + did_you_mean(path.symbol, seen, SYMBOL_CUTOFF),
            )
    return render.json_response(render.symbol_history(path.symbol, page, query.start, query.end))


@v1.get(
    "/v1/symbols/<symbol>/check",
    tags=[SYMBOLS],
    responses={200: OrderCheck, 404: ErrorResponse},
)
def check_symbol_order(path: SymbolPath, query: CheckQuery) -> Response:
    """Would the order have been accepted under the symbol's rules at as_of, and if not why

    Status, order types, permissions, PRICE_FILTER, PERCENT_PRICE(_BY_SIDE) given
    reference_price, LOT_SIZE, MARKET_LOT_SIZE, ICEBERG_PARTS given iceberg_quantity,
    NOTIONAL and MIN_NOTIONAL, quoteOrderQtyMarketAllowed for a MARKET order sized by
    quote_quantity; with the bearer token, the account's canTrade and
    permissions too. A futures contract (market=usdm|coinm): status, order types,
    PRICE_FILTER, LOT_SIZE (MARKET_LOT_SIZE for a MARKET order), MIN_NOTIONAL's notional
    against price * quantity, PERCENT_PRICE against reference_price (the mark price);
    MAX_NUM_* and POSITION_RISK_CONTROL are listed as not checked, and quote_quantity or
    iceberg_quantity, which futures orders do not have, are a 400. Rules it could not
    check are listed apart, never as passed; the nearest valid price and quantity follow
    the tick and step in force. 404 as for the symbol itself.
    """
    read = _symbol_rules(path.symbol, query.as_of, query.market)
    order = Order(
        query.side,
        query.type,
        query.quantity,
        query.price,
        query.reference_price,
        query.iceberg_quantity,
        query.quote_quantity,
    )
    filters = {ftype: v.raw for ftype, v in read.rules.filters.items()}
    if query.market == DEFAULT_MARKET:
        account, account_unchecked = _account_for_check(read.at)
        verdict = check_order(read.rules.symbol.raw, filters, order, account)
        verdict = replace(verdict, not_checked=verdict.not_checked + account_unchecked)
    else:  # the account recorded is the spot one: the check lists it as not checked
        try:
            verdict = check_futures_order(
                read.rules.symbol.raw, filters, order, market=query.market
            )
        except UnsupportedOrderError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
    return render.json_response(
        render.order_check(path.symbol, order, verdict, read.at, read.found)
    )


def _account_for_check(at: datetime) -> tuple[dict[str, Any] | None, list[Unchecked]]:
    """The account in force at ``at`` if this caller may see it; else why it is not checked."""
    if not authenticated():
        return None, [Unchecked("account", "needs the bearer token of the account routes")]
    with app_state().reading() as conn:
        account = history.account_as_of(conn, at)
    if account is None:
        return None, [Unchecked("account", "no account was recorded at as_of")]
    return account.raw, []


@v1.get(
    "/v1/rate-limits",
    tags=[EXCHANGE],
    responses={200: RateLimitsAsOf, 404: ErrorResponse},
)
def get_rate_limits(query: MarketAsOfQuery) -> Response:
    """The market's rate limits in force at as_of (default: the current versions)"""
    state = app_state()
    now = state.clock()
    at = query.as_of or now
    with state.reading() as conn:
        found = _observed(conn, at, now, query.market)
        limits = history.rate_limits_as_of(conn, query.as_of, market=query.market)
    return render.json_response(render.rate_limits(limits, at, found))


@v1.get(
    "/v1/exchange-info",
    tags=[EXCHANGE],
    responses={200: EXCHANGE_INFO_RESPONSE, 404: ErrorResponse},
)
def get_exchange_info(query: MarketAsOfQuery) -> Response:
    """The market's exchangeInfo document of the last successful observation by as_of

    Served byte for byte as stored, serverTime restored; the observation it came from
    is named in the X-Exmeta-Observation-Id and X-Exmeta-Observed-At headers.
    """
    state = app_state()
    at = query.as_of or state.clock()
    with state.reading() as conn:
        document = history.exchange_info_as_of(conn, at, market=query.market)
    if document is None:
        raise _not_observed(at, query.market)
    return Response(
        document.body,
        mimetype=render.JSON,
        headers={
            "X-Exmeta-Observation-Id": str(document.observation_id),
            "X-Exmeta-Observed-At": format_instant(document.observed_at) or "",
        },
    )


@v1.get(
    "/v1/schema",
    tags=[EXCHANGE],
    responses={200: SchemaAsOf, 404: ErrorResponse},
)
def get_schema(query: SchemaQuery) -> Response:
    """The shape of the stream's documents at as_of: each field path and its JSON types

    What a client's parser meets: a filter type is a path of its own
    (`symbols[].filters[NOTIONAL]`), so one that appeared or went away shows here and,
    as the entity `schema`, in /v1/changes?schema=true. 404 `not_observed` if the stream
    had no successful observation at or before as_of.
    """
    state = app_state()
    now = state.clock()
    at = query.as_of or now
    with state.reading() as conn:
        found = history.evidence(conn, query.stream, at, state.interval(query.stream), now)
        if found.observed_before is None:
            raise ApiError(
                404,
                "not_observed",
                f"no successful {query.stream} observation at or before {format_instant(at)}",
            )
        paths = history.schema_as_of(conn, query.stream, query.as_of)
    return render.json_response(render.schema(query.stream, paths, at, found))


# The bearer token is optional on the feed and the diff: it adds the account's part.
OPTIONAL_TOKEN: list[dict[str, list[str]]] = [{}, {"bearer": []}]
TOKEN_ERRORS: dict[str | int, Any] = {401: ErrorResponse, 403: ErrorResponse}


def _feed_streams(stream: str | None, market: str | None) -> tuple[str, ...]:
    """The streams the caller asked for and may read, all of one market (default spot).

    Without a stream named, the private ones are included only with the token, so an
    anonymous feed never shows the account; naming a private stream requires it.
    """
    if stream is None:
        return feed_streams(market or DEFAULT_MARKET, private=authenticated())
    if stream in PRIVATE_STREAMS:
        check_token()
    return (stream,)


@v1.get(
    "/v1/changes",
    tags=[CHANGES],
    security=OPTIONAL_TOKEN,
    responses={200: ChangeFeed, **TOKEN_ERRORS},
)
def list_changes(query: ChangesQuery) -> Response:
    """Every change within [from, to) (default: the last hour), field by field, in time order

    Ordered by (changed_at, entity, key, field); a listing or delisting is one change of
    the field `listed`. At most `limit` per page; `next` continues after the last one.
    The account and commission changes are listed only with the bearer token (`streams`
    says which streams the answer covers); balances are never listed.
    """
    streams = _feed_streams(query.stream, query.market)
    state = app_state()
    end = query.end or state.clock()
    start = query.start or window_before(end, DEFAULT_WINDOW)
    if start >= end:
        raise ApiError(400, "invalid_window", "from must be before to (to defaults to now)")
    with state.reading() as conn:
        try:
            page = changes.changes(
                conn,
                start,
                end,
                streams=streams,
                symbol=query.symbol,
                fields=query.field,
                exclude_fields=query.exclude_field,
                schema=query.schema_changes,
                limit=query.limit,
                cursor=query.next_cursor,
            )
        except CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
    return render.json_response(render.change_feed(page, start, end, streams))


@v1.get(
    "/v1/diff",
    tags=[CHANGES],
    security=OPTIONAL_TOKEN,
    responses={200: AnyStateDiff, 404: ErrorResponse, 409: ErrorResponse, **TOKEN_ERRORS},
)
def get_diff(query: DiffQuery) -> Response:
    """How the market's state at to (default now) differs from its state at from

    Symbols, rate limits, exchange filters, system status and delistings added,
    removed, and changed field by field; with the bearer token, the account and its
    commissions too (else null). A futures market: its contracts, rate limits, exchange
    filters and (USD-M) assets. Intermediate steps that cancel out are no difference
    (see /v1/changes). 404 `not_observed` if nothing was observed at or before from;
    409 `different_sources` if a stream moved to another source in between (README,
    Source identity): two exchanges' states are not a difference.
    """
    private = authenticated()
    state = app_state()
    now = state.clock()
    end = query.end or now
    if query.start >= end:
        raise ApiError(400, "invalid_window", "from must be before to (to defaults to now)")
    market = query.market
    with state.reading() as conn:
        before = state.evidence(conn, query.start, now, market)
        if before.observed_before is None:
            raise _not_observed(query.start, market)
        after = state.evidence(conn, end, now, market)
        try:
            found = state_diff.state_diff(conn, query.start, end, private=private, market=market)
        except state_diff.DifferentSourcesError as exc:
            raise ApiError(
                409,
                "different_sources",
                f"from and to lie in different sources' histories: {exc.stream} moved to"
                f" another source at {format_instant(exc.at)}; diff within one history",
            ) from None
    return render.json_response(render.state_diff(found, query.start, end, before, after, market))


@v1.get(
    "/v1/observations",
    tags=[OBSERVATIONS],
    security=OPTIONAL_TOKEN,
    responses={200: ObservationLog, **TOKEN_ERRORS},
)
def list_observations(query: ObservationsQuery) -> Response:
    """The poll log within [from, to) (default: the last hour), and the gaps in it

    The account's streams (account, account_commission) need the bearer token: when
    their polls changed something is when the account traded. Without a stream named,
    they are left out unless the token is given.
    """
    state = app_state()
    intervals = state.settings.stream_intervals()
    if query.stream is not None and query.stream not in intervals:
        raise ApiError(
            400,
            "invalid_parameter",
            f"stream: must be one of {', '.join(sorted(intervals))}"
            + did_you_mean(query.stream, intervals),
        )
    if query.stream in PRIVATE_STREAMS:
        check_token()
    hidden = frozenset() if authenticated() else PRIVATE_STREAMS
    now = state.clock()
    end = query.end or now
    start = query.start or window_before(end, DEFAULT_WINDOW)
    if start >= end:
        raise ApiError(400, "invalid_window", "from must be before to (to defaults to now)")
    streams = [query.stream] if query.stream is not None else list(state.streams)
    streams = [s for s in streams if s not in hidden]
    with state.reading() as conn:
        rows = history.observations(
            conn,
            stream=query.stream,
            hidden=hidden,
            outcome=query.outcome,
            start=start,
            end=end,
            limit=query.limit + 1,  # one more tells whether the answer was cut short
        )
        gaps = [
            gap
            for stream in streams
            for gap in history.gaps(conn, stream, start, end, intervals[stream], now)
        ]
    truncated = len(rows) > query.limit
    return render.json_response(
        render.observation_log(rows[: query.limit], gaps, start, end, truncated=truncated)
    )


@v1.get("/v1/replicas", tags=[REPLICAS], responses={200: ReplicaList})
def list_replicas() -> Response:
    """Every poller replica that registered, most recently seen first, with its leases"""
    with app_state().reading() as conn:
        found = replicas.list_replicas(conn)
    return render.json_response(render.replica_list(found))
