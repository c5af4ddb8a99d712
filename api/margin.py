"""The /v1 routes over the margin streams: cross and isolated pairs, the margin delist
schedule. Public facts, like the symbols; each answer carries the evidence of the stream
it reads (``margin_pairs`` or ``margin_isolated_pairs``, ``margin_delistings``).
"""

from __future__ import annotations

from datetime import datetime

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from sqlalchemy import Connection

from api import render
from api.account import stream_as_of
from api.errors import ApiError
from api.params import AsOfQuery, MarginHistoryQuery, MarginPairsQuery, SymbolPath
from api.schemas import (
    ErrorResponse,
    MarginDelistingsAsOf,
    MarginPairHistory,
    MarginPairsAsOf,
    operation_id,
)
from api.state import app_state
from core import history
from core import streams as catalogue
from core.cursors import CursorError
from core.history import Version

MARGIN = Tag(name="margin", description="could a pair be margined, bought, sold, at t")
# The stream each pair type is polled by; its one table is the catalogue's.
PAIR_STREAMS = {"cross": "margin_pairs", "isolated": "margin_isolated_pairs"}
DELISTINGS_STREAM = "margin_delistings"

margin_v1 = APIBlueprint(
    "margin_v1",
    __name__,
    abp_responses={400: ErrorResponse, 404: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse},
    operation_id_callback=operation_id,
)


def _table(kind: str) -> str:
    [table] = catalogue.stream(PAIR_STREAMS[kind]).tables
    return table


@margin_v1.get("/v1/margin/pairs", tags=[MARGIN], responses={200: MarginPairsAsOf})
def list_margin_pairs(query: MarginPairsQuery) -> Response:
    """Every margin pair of one type in force at as_of: margin trade, buy, sell, delist time

    A pair whose buying was switched off reads `is_buy_allowed: false`. 404 `not_observed`
    if that type's pairs were not polled successfully at or before as_of.
    """

    def read(conn: Connection, at: datetime) -> list[Version]:
        return history.margin_pairs_as_of(conn, _table(query.type), at)

    return stream_as_of(
        PAIR_STREAMS[query.type],
        query.as_of,
        read,
        lambda versions, at, found: render.margin_pairs(query.type, versions, at, found),
    )


@margin_v1.get(
    "/v1/margin/pairs/<symbol>/history", tags=[MARGIN], responses={200: MarginPairHistory}
)
def get_margin_pair_history(path: SymbolPath, query: MarginHistoryQuery) -> Response:
    """The pair's versions overlapping [from, to), each with the fields that changed

    Buying switched off and on again is two versions: `isBuyAllowed` true → false, and
    back. At most `limit` per page, oldest first; `next` continues after the last one.
    404 `pair_never_seen` for a pair never recorded.
    """
    table = _table(query.type)
    with app_state().reading() as conn:
        try:
            page = history.margin_pair_history(
                conn,
                table,
                path.symbol,
                query.start,
                query.end,
                limit=query.limit,
                cursor=query.next_cursor,
            )
        except CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        if not page.entries and not history.margin_pair_versions(conn, table, path.symbol):
            raise ApiError(
                404, "pair_never_seen", f"{query.type} margin pair {path.symbol} was never observed"
            )
    return render.json_response(
        render.margin_pair_history(path.symbol, query.type, page, query.start, query.end)
    )


@margin_v1.get("/v1/margin/delistings", tags=[MARGIN], responses={200: MarginDelistingsAsOf})
def list_margin_delistings(query: AsOfQuery) -> Response:
    """Margin delistings announced and still scheduled at as_of

    Cross margin assets (`type` cross) and isolated margin symbols (`isolated`), each with
    when it takes effect (`delist_time`) and when it was first seen (`valid_from`).
    """
    return stream_as_of(
        DELISTINGS_STREAM,
        query.as_of,
        history.margin_delistings_as_of,
        lambda versions, at, found: render.versions_as_of("delistings", versions, at, found),
    )
