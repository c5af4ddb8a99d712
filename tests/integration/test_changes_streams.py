"""The change feed, the diff and the ``changes`` view over every stream, account behind the token.

The exchangeInfo script of test_changes is recorded together with a script of the other
streams: an account flag and permission change, a commission change, a maintenance
window (status 0 → 1 → 0), a delisting announced, postponed and withdrawn, and a balance
change that must not show (balances are not in the feed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from api import schemas
from core.diff import flatten
from tests.api_client import AUTH, app_client, error, ok, ts
from tests.builders import account_document, commission_document, record_stream
from tests.margin_sim import MARGIN_STREAMS
from tests.reader_role import view_rows
from tests.scripts import (
    EXPECTED,
    MAINTENANCE,
    NORMAL,
    NOW,
    T0,
    T1,
    T2,
    T3,
    T4,
    expected_diff,
    expected_entities,
    field_diff,
    record_script,
    summary,
)

A0 = T0 + timedelta(seconds=2)
A1 = T0 + timedelta(seconds=12)
A2 = T0 + timedelta(seconds=15)
A3 = T0 + timedelta(seconds=22)
A4 = T0 + timedelta(seconds=25)
A5 = T0 + timedelta(seconds=32)
A6 = T0 + timedelta(seconds=35)
A7 = T0 + timedelta(seconds=45)
A8 = T0 + timedelta(seconds=55)
A9 = T0 + timedelta(seconds=57)
D1 = 1714608000000  # 2024-05-02T00:00Z, the announced delisting
D2 = 1714694400000  # a day later: postponed


STREAM_SCRIPT: list[tuple[datetime, str, Any]] = [
    (A0, "account", account_document()),
    (A0, "account_commission", [commission_document()]),
    (A0, "system_status", NORMAL),
    (A0, "delistings", []),
    (
        A1,
        "account",
        account_document(can_trade=False, permissions=("SPOT", "MARGIN"), update_time=2),
    ),
    (A2, "account_commission", [commission_document(taker="0.00200000")]),
    (A3, "system_status", MAINTENANCE),
    (A4, "delistings", [{"delistTime": D1, "symbols": ["ETHUSDT"]}]),
    (A5, "system_status", NORMAL),
    (  # only the balance and updateTime move: no change in force
        A6,
        "account",
        account_document(can_trade=False, permissions=("SPOT", "MARGIN"), btc="0.5", update_time=3),
    ),
    (A7, "delistings", [{"delistTime": D2, "symbols": ["ETHUSDT"]}]),
    (A8, "delistings", []),
    (
        A9,
        "account",
        account_document(
            can_trade=False,
            permissions=("SPOT", "MARGIN"),
            btc="0.5",
            maker="0.00090000",
            update_time=4,
        ),
    ),
]


def record_streams(engine: Engine) -> None:
    record_script(engine)
    for when, stream, document in STREAM_SCRIPT:
        record_stream(engine, stream, document, when)


def account_object(document: dict[str, Any]) -> dict[str, Any]:
    """The account as versioned: without balances and updateTime."""
    return {k: v for k, v in document.items() if k not in ("balances", "updateTime")}


ETH_DELISTING = {"symbol": "ETHUSDT", "delistTime": D1}
E = {row[0]: row for row in EXPECTED}  # the exchange_info changes, by instant
ALL_EXPECTED = [
    (A0, "account", "spot", "listed", None, account_object(account_document())),
    (A0, "commission", "BTCUSDT", "listed", None, commission_document()),
    (A0, "system_status", "binance", "listed", None, NORMAL),
    E[T1],
    (A1, "account", "spot", "canTrade", True, False),
    (A1, "account", "spot", "permissions", ["SPOT"], ["SPOT", "MARGIN"]),
    (A2, "commission", "BTCUSDT", "standardCommission.taker", "0.00100000", "0.00200000"),
    E[T2],
    (A3, "system_status", "binance", "msg", "normal", "system_maintenance"),
    (A3, "system_status", "binance", "status", 0, 1),
    (A4, "delisting", "ETHUSDT", "listed", None, ETH_DELISTING),
    E[T3],
    (A5, "system_status", "binance", "msg", "system_maintenance", "normal"),
    (A5, "system_status", "binance", "status", 1, 0),
    E[T4],
    (A7, "delisting", "ETHUSDT", "delistTime", D1, D2),
    *EXPECTED[4:6],
    (A8, "delisting", "ETHUSDT", "listed", {**ETH_DELISTING, "delistTime": D2}, None),
    (A9, "account", "spot", "commissionRates.maker", "0.00100000", "0.00090000"),
]
PRIVATE_ENTITIES = ("account", "commission")
PUBLIC_EXPECTED = [r for r in ALL_EXPECTED if r[1] not in PRIVATE_ENTITIES]
WINDOW = {"from": ts(T0 + timedelta(seconds=1)), "to": ts(NOW)}


def expected(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(ts(r[0]), *r[1:]) for r in rows]


@pytest.fixture
def client(engine: Engine) -> FlaskClient:
    record_streams(engine)
    return app_client(engine)


def feed(client: FlaskClient, headers: dict[str, str] | None = None, **params: Any) -> Any:
    response = client.get(f"/v1/changes?{urlencode(params, doseq=True)}", headers=headers)
    return ok(response, schemas.ChangeFeed)


def test_with_the_token_every_stream_comes_back_once_in_order(client: FlaskClient) -> None:
    body = feed(client, AUTH, **WINDOW)
    assert summary(body["changes"]) == expected(ALL_EXPECTED)
    assert body["streams"] == [
        "exchange_info",
        "account",
        "account_commission",
        "system_status",
        "delistings",
        "wallet_networks",
        *MARGIN_STREAMS,
    ]
    assert body["next"] is None


def test_each_change_is_dated_by_the_polls_of_its_own_stream(
    client: FlaskClient, engine: Engine
) -> None:
    with engine.connect() as conn:
        ids = {
            (stream, when): i
            for i, stream, when in conn.execute(
                text("SELECT id, stream, observed_at FROM observations")
            ).all()
        }
    body = feed(client, AUTH, **{"from": ts(A1), "to": ts(A3 + timedelta(seconds=1))})
    assert [
        (c["stream"], c["changed_at"], c["observed_before"], c["observation_id"])
        for c in body["changes"]
    ] == [
        ("account", ts(A1), ts(A0), ids[("account", A1)]),
        ("account", ts(A1), ts(A0), ids[("account", A1)]),
        ("account_commission", ts(A2), ts(A0), ids[("account_commission", A2)]),
        ("exchange_info", ts(T2), ts(T1), ids[("exchange_info", T2)]),
        ("system_status", ts(A3), ts(A0), ids[("system_status", A3)]),
        ("system_status", ts(A3), ts(A0), ids[("system_status", A3)]),
    ]


def test_without_the_token_the_account_is_left_out(client: FlaskClient) -> None:
    body = feed(client, **WINDOW)
    assert summary(body["changes"]) == expected(PUBLIC_EXPECTED)
    assert body["streams"] == [
        "exchange_info",
        "system_status",
        "delistings",
        "wallet_networks",
        *MARGIN_STREAMS,
    ]
    assert not {c["entity"] for c in body["changes"]} & set(PRIVATE_ENTITIES)


@pytest.mark.parametrize("stream", ["account", "account_commission"])
def test_asking_for_a_private_stream_needs_the_token(engine: Engine, stream: str) -> None:
    record_streams(engine)
    client = app_client(engine)
    query = f"/v1/changes?stream={stream}&from={WINDOW['from']}&to={WINDOW['to']}"
    error(client.get(query), 401, "unauthorized")
    error(client.get(query, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    error(app_client(engine, token=None).get(query, headers=AUTH), 403, "forbidden")
    body = ok(client.get(query, headers=AUTH), schemas.ChangeFeed)
    entity = {"account": "account", "account_commission": "commission"}[stream]
    assert summary(body["changes"]) == expected([r for r in ALL_EXPECTED if r[1] == entity])
    assert body["streams"] == [stream]


def test_a_wrong_token_is_refused_rather_than_answered_as_anonymous(client: FlaskClient) -> None:
    error(client.get("/v1/changes", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    error(
        client.get("/v1/diff?from=1714564800000", headers={"Authorization": "Basic x"}),
        401,
        "unauthorized",
    )


@pytest.mark.parametrize(
    ("stream", "entities"),
    [
        ("exchange_info", ("symbol", "rate_limit", "exchange_filter")),
        ("system_status", ("system_status",)),
        ("delistings", ("delisting",)),
        ("account_commission", ("commission",)),
    ],
)
def test_stream_keeps_only_that_streams_changes(
    client: FlaskClient, stream: str, entities: tuple[str, ...]
) -> None:
    body = feed(client, AUTH, stream=stream, **WINDOW)
    rows = [r for r in ALL_EXPECTED if r[1] in entities]
    assert summary(body["changes"]) == expected(rows)
    assert rows


def test_symbol_keeps_its_rules_commission_and_delisting(client: FlaskClient) -> None:
    eth = feed(client, AUTH, symbol="ETHUSDT", **WINDOW)
    assert summary(eth["changes"]) == expected([r for r in ALL_EXPECTED if r[2] == "ETHUSDT"])
    assert {c["entity"] for c in eth["changes"]} == {"symbol", "delisting"}
    btc = feed(client, AUTH, symbol="BTCUSDT", **WINDOW)
    assert {c["entity"] for c in btc["changes"]} == {"symbol", "commission"}


@pytest.mark.parametrize("stream", ["account", "system_status"])
def test_a_symbol_of_a_stream_without_symbols_is_an_empty_feed(
    client: FlaskClient, stream: str
) -> None:
    """Found by schemathesis: no table to read made an empty UNION, a 500."""
    body = feed(client, AUTH, stream=stream, symbol="BTCUSDT", **WINDOW)
    assert (body["changes"], body["next"]) == ([], None)


def test_a_balance_change_alone_is_not_in_the_feed(client: FlaskClient, engine: Engine) -> None:
    with engine.connect() as conn:
        opened = conn.execute(
            text("SELECT count(*) FROM balance_versions WHERE valid_from = :t"), {"t": A6}
        ).scalar_one()
    assert opened == 1  # the balance did get a new version at A6
    body = feed(client, AUTH, stream="account", **{"from": ts(A6), "to": ts(A9)})
    assert body["changes"] == []


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_with_a_small_limit_returns_the_same_list(client: FlaskClient, limit: int) -> None:
    whole = feed(client, AUTH, **WINDOW)["changes"]
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {**WINDOW, "limit": limit}
    while True:
        body = feed(client, AUTH, **params)
        assert len(body["changes"]) <= limit
        pages.extend(body["changes"])
        if body["next"] is None:
            break
        params["next"] = body["next"]
    assert pages == whole
    assert len(whole) == len(ALL_EXPECTED)


def test_the_view_equals_the_authenticated_feed(client: FlaskClient, engine: Engine) -> None:
    whole = feed(client, AUTH, **{"from": ts(T0), "to": ts(NOW)})["changes"]
    rows = view_rows(engine)
    assert rows == whole
    assert {r["stream"] for r in rows} == {
        "exchange_info",
        "account",
        "account_commission",
        "system_status",
        "delistings",
    }


def flat(obj: dict[str, Any]) -> dict[str, Any]:
    """Nested objects' fields as ``parent.child``, computed here independently."""
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, dict):
            out.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            out[name] = value
    return out


def stream_document(stream: str, when: datetime) -> Any:
    found = [doc for at, s, doc in STREAM_SCRIPT if s == stream and at <= when]
    return found[-1] if found else None


def expected_stream_diff(start: datetime, end: datetime) -> dict[str, Any]:
    def states(stream: str, entities: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            entities(doc) if doc is not None else {}
            for doc in (stream_document(stream, start), stream_document(stream, end))
        ]

    def nested_diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
        return field_diff(flat(old), flat(new))

    accounts = states("account", lambda doc: {"spot": account_object(doc)})
    commissions = states("account_commission", lambda doc: {c["symbol"]: c for c in doc})
    statuses = states("system_status", lambda doc: {"binance": doc})
    delistings = states(
        "delistings",
        lambda doc: {
            s: {"symbol": s, "delistTime": e["delistTime"]} for e in doc for s in e["symbols"]
        },
    )
    return {
        "account": expected_entities(*accounts, nested_diff),
        "commissions": expected_entities(*commissions, nested_diff),
        "system_status": expected_entities(*statuses, field_diff),
        "delistings": expected_entities(*delistings, field_diff),
    }


DIFF_INSTANTS = [T0, A0, A1 + timedelta(seconds=1), A3, A4, A6, A7, A8, NOW]
SECTIONS = ("symbols", "rate_limits", "exchange_filters", "system_status", "delistings")


def test_diff_equals_an_independent_computation_for_every_stream(client: FlaskClient) -> None:
    pairs = list(combinations(DIFF_INSTANTS, 2))
    for start, end in pairs:
        body = ok(
            client.get(f"/v1/diff?from={ts(start)}&to={ts(end)}", headers=AUTH), schemas.StateDiff
        )
        want = {**expected_diff(start, end), **expected_stream_diff(start, end)}
        assert {k: body[k] for k in want} == want, (ts(start), ts(end))
    assert len(pairs) == 36


def test_diff_over_the_whole_script_names_each_stream_change(client: FlaskClient) -> None:
    body = ok(client.get(f"/v1/diff?from={ts(A0)}&to={ts(NOW)}", headers=AUTH), schemas.StateDiff)
    assert body["account"]["changed"] == [
        {
            "key": "spot",
            "changes": [
                {"field": "canTrade", "old": True, "new": False},
                {"field": "commissionRates.maker", "old": "0.00100000", "new": "0.00090000"},
                {"field": "permissions", "old": ["SPOT"], "new": ["SPOT", "MARGIN"]},
            ],
        }
    ]
    assert body["commissions"]["changed"][0]["changes"] == [
        {"field": "standardCommission.taker", "old": "0.00100000", "new": "0.00200000"}
    ]
    # The maintenance window and the delisting both came and went: no difference.
    assert body["system_status"] == {"added": [], "removed": [], "changed": []}
    assert body["delistings"] == {"added": [], "removed": [], "changed": []}
    during = ok(client.get(f"/v1/diff?from={ts(A0)}&to={ts(A4)}"), schemas.StateDiff)
    assert during["system_status"]["changed"] == [
        {
            "key": "binance",
            "changes": [
                {"field": "msg", "old": "normal", "new": "system_maintenance"},
                {"field": "status", "old": 0, "new": 1},
            ],
        }
    ]
    assert during["delistings"]["added"] == ["ETHUSDT"]


def test_diff_without_the_token_leaves_the_account_out(client: FlaskClient) -> None:
    query = f"/v1/diff?from={ts(A0)}&to={ts(NOW)}"
    anonymous = ok(client.get(query), schemas.StateDiff)
    assert anonymous["account"] is None
    assert anonymous["commissions"] is None
    authenticated = ok(client.get(query, headers=AUTH), schemas.StateDiff)
    assert authenticated["account"]["changed"]
    assert {k: anonymous[k] for k in SECTIONS} == {k: authenticated[k] for k in SECTIONS}


@pytest.mark.parametrize(
    "obj",
    [
        account_object(account_document()),
        commission_document(),
        {"status": 0, "msg": "normal"},
        {"a": {"b": {"c": 1}}, "d": [1, {"e": 2}], "f": None, "g": {}},
    ],
)
def test_sql_flatten_fields_is_core_flatten(engine: Engine, obj: dict[str, Any]) -> None:
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT flatten_fields(CAST(:o AS jsonb))::text"),
            {"o": orjson.dumps(obj).decode()},
        ).scalar_one()
    assert orjson.loads(got) == flatten(obj)
    assert flatten(obj) == flat(obj)
