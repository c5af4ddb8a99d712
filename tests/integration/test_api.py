"""The HTTP API over a real database, through Flask's test client, with a fixed clock."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from urllib.parse import quote, urljoin

import orjson
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, inspect, text

from api import create_app, render, schemas
from api.auth import require_token
from api.state import EXTENSION
from core import history
from core.config import DatabaseSettings, Secret, Settings, replace_section
from core.db import create_db_engine
from core.history import FILTER_FIELDS, SYMBOL_FIELDS
from core.timeparse import format_instant
from tests.api_client import PRIMARY, error, ok, q, ts
from tests.builders import at, exchange_info, record_exchange_info, record_failure, symbol
from tests.conftest import FIXTURES, DatabaseServer
from tests.round_trips import traced

T0 = at("2024-01-01T00:00:00")
T1 = T0 + timedelta(seconds=10)
T2 = T0 + timedelta(seconds=20)
NOW = T0 + timedelta(seconds=25)
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

MakeClient = Callable[..., FlaskClient]


@pytest.fixture
def make_client(api_engine: Engine) -> MakeClient:
    def make(
        now: datetime = NOW,
        settings: Settings | None = None,
        streams: tuple[str, ...] = ("exchange_info",),
        db: Engine = api_engine,
    ) -> FlaskClient:
        app = create_app(settings or Settings(), db, clock=lambda: now, streams=streams)
        return app.test_client()

    return make


@pytest.fixture
def client(make_client: MakeClient) -> FlaskClient:
    return make_client()


@pytest.fixture
def halted(engine: Engine) -> None:
    """BTCUSDT trades at T0 and is halted at T1 (tick size too); polled again at T2."""
    eth = symbol("ETHUSDT", tick_size="0.01000000")
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), eth), T0)
    later = exchange_info(symbol("BTCUSDT", status="HALT", tick_size="0.10000000"), eth)
    record_exchange_info(engine, later, T1)
    record_exchange_info(engine, later, T2)


# --- symbols -------------------------------------------------------------------------


@pytest.mark.usefixtures("halted")
def test_symbol_as_of_before_the_change_is_trading_with_its_range(client: FlaskClient) -> None:
    body = ok(
        client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0 + timedelta(seconds=5))}"), schemas.SymbolAsOf
    )
    assert body["symbol"] == "BTCUSDT"
    assert body["status"] == "TRADING"
    assert body["base_asset"] == "BTC"
    assert body["quote_asset"] == "USDT"
    assert body["order_types"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]
    assert body["filters"]["PRICE_FILTER"]["tick_size"] == "0.01000000"
    assert body["valid_from"] == ts(T0)
    assert body["valid_to"] == ts(T1)
    assert body["as_of"] == ts(T0 + timedelta(seconds=5))
    assert body["raw"]["status"] == "TRADING"
    assert body["evidence"] == {
        "observed_before": ts(T0),
        "observed_after": ts(T1),
        "gap": False,
        "gap_from": None,
        "gap_to": None,
        "imported": False,
    }


@pytest.mark.usefixtures("halted")
def test_symbol_without_as_of_is_the_latest_version(client: FlaskClient) -> None:
    body = ok(client.get("/v1/symbols/BTCUSDT"), schemas.SymbolAsOf)
    assert body["status"] == "HALT"
    assert body["filters"]["PRICE_FILTER"]["tick_size"] == "0.10000000"
    assert body["valid_from"] == ts(T1)
    assert body["valid_to"] is None
    assert body["as_of"] == ts(NOW)
    assert body["evidence"]["observed_before"] == ts(T2)
    assert body["evidence"]["observed_after"] is None
    assert body["evidence"]["gap"] is False


@pytest.mark.usefixtures("halted")
def test_epoch_milliseconds_and_offsets_name_the_same_instant(client: FlaskClient) -> None:
    instant = T0 + timedelta(seconds=5)
    epoch = ok(
        client.get(f"/v1/symbols/BTCUSDT?as_of={int(instant.timestamp() * 1000)}"),
        schemas.SymbolAsOf,
    )
    offset = ok(
        client.get("/v1/symbols/BTCUSDT?as_of=" + quote("2024-01-01T02:00:05+02:00")),
        schemas.SymbolAsOf,
    )
    assert epoch["status"] == offset["status"] == "TRADING"
    assert epoch["as_of"] == offset["as_of"] == ts(instant)


@pytest.mark.usefixtures("halted")
def test_filters_are_keyed_by_type_with_decimals_as_text(client: FlaskClient) -> None:
    body = ok(client.get("/v1/symbols/ETHUSDT"), schemas.SymbolAsOf)
    filters = body["filters"]
    assert set(filters) == {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL"}
    price = filters["PRICE_FILTER"]
    assert price["min_price"] == "0.01000000"
    assert price["max_price"] == "1000000.00000000"
    assert "min_qty" not in price  # only the fields the filter has
    assert price["raw"] == {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.01000000",
        "maxPrice": "1000000.00000000",
        "tickSize": "0.01000000",
    }
    assert price["valid_from"] == ts(T0)
    assert filters["MARKET_LOT_SIZE"]["min_qty"] == "0.00000000"  # not 0E-8
    notional = filters["NOTIONAL"]
    assert notional["min_notional"] == "5.00000000"
    assert notional["apply_min_to_market"] is True
    assert notional["apply_max_to_market"] is False
    assert notional["avg_price_mins"] == 5


@pytest.mark.usefixtures("halted")
def test_symbols_latest_and_as_of_before_the_change(client: FlaskClient) -> None:
    latest = ok(client.get("/v1/symbols"), schemas.SymbolList)
    assert [(s["symbol"], s["status"]) for s in latest["symbols"]] == [
        ("BTCUSDT", "HALT"),
        ("ETHUSDT", "TRADING"),
    ]
    assert latest["as_of"] == ts(NOW)
    assert latest["evidence"]["observed_before"] == ts(T2)
    before = ok(client.get(f"/v1/symbols?as_of={q(T0)}"), schemas.SymbolList)
    assert [(s["symbol"], s["status"]) for s in before["symbols"]] == [
        ("BTCUSDT", "TRADING"),
        ("ETHUSDT", "TRADING"),
    ]
    assert before["symbols"][0]["filters"]["PRICE_FILTER"]["tick_size"] == "0.01000000"
    assert before["evidence"]["observed_after"] == ts(T1)


@pytest.mark.usefixtures("halted")
def test_symbols_filtered_by_status_and_assets(client: FlaskClient) -> None:
    halted = ok(client.get("/v1/symbols?status=HALT"), schemas.SymbolList)
    assert [s["symbol"] for s in halted["symbols"]] == ["BTCUSDT"]
    assert set(halted["symbols"][0]["filters"]) == {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "NOTIONAL",
    }
    at_start = ok(client.get(f"/v1/symbols?status=HALT&as_of={q(T0)}"), schemas.SymbolList)
    assert at_start["symbols"] == []
    eth = ok(client.get("/v1/symbols?base_asset=ETH&quote_asset=USDT"), schemas.SymbolList)
    assert [s["symbol"] for s in eth["symbols"]] == ["ETHUSDT"]
    other_quote = ok(client.get("/v1/symbols?quote_asset=BTC"), schemas.SymbolList)
    assert other_quote["symbols"] == []


def test_symbols_before_any_observation_is_not_observed(client: FlaskClient) -> None:
    error(client.get("/v1/symbols"), 404, "not_observed")


@pytest.mark.usefixtures("halted")
def test_as_of_before_the_first_observation_is_not_observed(client: FlaskClient) -> None:
    message = error(
        client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0 - timedelta(days=1))}"), 404, "not_observed"
    )
    assert ts(T0 - timedelta(days=1)) in message


@pytest.mark.usefixtures("halted")
def test_symbol_never_listed_is_not_listed_rather_than_not_observed(client: FlaskClient) -> None:
    message = error(client.get("/v1/symbols/DOGEUSDT"), 404, "symbol_not_listed")
    assert "DOGEUSDT" in message


def test_delisted_symbol_is_found_before_and_not_listed_after(
    engine: Engine, client: FlaskClient
) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), symbol("LUNAUSDT")), T0)
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T1)
    before = ok(
        client.get(f"/v1/symbols/LUNAUSDT?as_of={q(T1 - timedelta(milliseconds=1))}"),
        schemas.SymbolAsOf,
    )
    assert before["valid_to"] == ts(T1)
    error(client.get(f"/v1/symbols/LUNAUSDT?as_of={q(T1)}"), 404, "symbol_not_listed")
    error(client.get("/v1/symbols/LUNAUSDT"), 404, "symbol_not_listed")
    latest = ok(client.get("/v1/symbols"), schemas.SymbolList)
    assert [s["symbol"] for s in latest["symbols"]] == ["BTCUSDT"]


def test_non_ascii_symbol_names_are_served(engine: Engine, client: FlaskClient) -> None:
    name = "币安人生USDT"
    record_exchange_info(engine, exchange_info(symbol(name)), T0)
    body = ok(client.get(f"/v1/symbols/{quote(name)}"), schemas.SymbolAsOf)
    assert body["symbol"] == name
    assert body["base_asset"] == "币安人生"


def test_evidence_reports_a_gap_after_the_last_observation(
    engine: Engine, make_client: MakeClient
) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    client = make_client(now=T0 + timedelta(hours=1))
    body = ok(
        client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0 + timedelta(minutes=30))}"), schemas.SymbolAsOf
    )
    assert body["status"] == "TRADING"
    assert body["evidence"] == {
        "observed_before": ts(T0),
        "observed_after": None,
        "gap": True,
        "gap_from": ts(T0),
        "gap_to": None,
        "imported": False,
    }
    stale_latest = ok(client.get("/v1/symbols"), schemas.SymbolList)
    assert stale_latest["evidence"]["gap"] is True


def test_evidence_reports_a_gap_between_observations(engine: Engine, client: FlaskClient) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0 - timedelta(hours=1))
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    body = ok(
        client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0 - timedelta(minutes=30))}"), schemas.SymbolAsOf
    )
    assert body["evidence"]["gap"] is True
    assert body["evidence"]["gap_from"] == ts(T0 - timedelta(hours=1))
    assert body["evidence"]["gap_to"] == ts(T0)
    covered = ok(
        client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0 + timedelta(seconds=1))}"), schemas.SymbolAsOf
    )
    assert covered["evidence"]["gap"] is False


def test_failed_polls_are_not_evidence(engine: Engine, make_client: MakeClient) -> None:
    success = record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    failures = [record_failure(engine, T0 + timedelta(minutes=m)) for m in (1, 2, 3)]
    client = make_client(now=max(f.observed_at for f in failures) + timedelta(seconds=1))
    body = ok(client.get("/v1/symbols/BTCUSDT"), schemas.SymbolAsOf)
    assert body["evidence"]["observed_before"] == ts(success.observed_at)
    assert body["evidence"]["gap"] is True


# --- history -------------------------------------------------------------------------


@pytest.mark.usefixtures("halted")
def test_history_lists_each_change_with_old_and_new_values(client: FlaskClient) -> None:
    body = ok(client.get("/v1/symbols/BTCUSDT/history"), schemas.SymbolHistory)
    versions = body["versions"]
    assert [(v["valid_from"], v["valid_to"], v["listed"]) for v in versions] == [
        (ts(T0), ts(T1), True),
        (ts(T1), None, True),
    ]
    assert versions[0]["observation_id"] != versions[1]["observation_id"]
    first = {c["field"]: c for c in versions[0]["changes"]}
    assert first["status"] == {"field": "status", "old": None, "new": "TRADING"}
    changes = {c["field"]: (c["old"], c["new"]) for c in versions[1]["changes"]}
    assert changes == {
        "status": ("TRADING", "HALT"),
        "filters.PRICE_FILTER.tickSize": ("0.01000000", "0.10000000"),
    }
    assert body["from"] is None
    assert body["to"] is None


@pytest.mark.usefixtures("halted")
def test_history_window_keeps_versions_overlapping_it(client: FlaskClient) -> None:
    later = ok(client.get(f"/v1/symbols/BTCUSDT/history?from={q(T1)}"), schemas.SymbolHistory)
    assert [v["valid_from"] for v in later["versions"]] == [ts(T1)]
    assert later["from"] == ts(T1)
    earlier = ok(client.get(f"/v1/symbols/BTCUSDT/history?to={q(T1)}"), schemas.SymbolHistory)
    assert [v["valid_from"] for v in earlier["versions"]] == [ts(T0)]
    empty = ok(
        client.get(
            f"/v1/symbols/BTCUSDT/history?from={q(T0 - timedelta(days=2))}&to={q(T0 - timedelta(days=1))}"
        ),
        schemas.SymbolHistory,
    )
    assert empty["versions"] == []


def test_history_shows_a_delisting(engine: Engine, client: FlaskClient) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), symbol("LUNAUSDT")), T0)
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T1)
    body = ok(client.get("/v1/symbols/LUNAUSDT/history"), schemas.SymbolHistory)
    last = body["versions"][-1]
    assert last["valid_from"] == ts(T1)
    assert last["listed"] is False
    assert {"field": "status", "old": "TRADING", "new": None} in last["changes"]


@pytest.mark.usefixtures("halted")
def test_history_of_a_symbol_never_seen_is_404(client: FlaskClient) -> None:
    error(client.get("/v1/symbols/DOGEUSDT/history"), 404, "symbol_never_seen")


# --- rate limits, exchange info ------------------------------------------------------


def test_rate_limits_as_of_and_latest(engine: Engine, client: FlaskClient) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), weight_limit=6000), T0)
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), weight_limit=1200), T1)
    before = ok(client.get(f"/v1/rate-limits?as_of={q(T0)}"), schemas.RateLimitsAsOf)
    assert before["rate_limits"] == [
        {
            "rate_limit_type": "RAW_REQUESTS",
            "interval": "MINUTE",
            "interval_num": 5,
            "limit": 61000,
            "valid_from": ts(T0),
            "valid_to": None,
        },
        {
            "rate_limit_type": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "interval_num": 1,
            "limit": 6000,
            "valid_from": ts(T0),
            "valid_to": ts(T1),
        },
    ]
    assert before["evidence"]["observed_after"] == ts(T1)
    latest = ok(client.get("/v1/rate-limits"), schemas.RateLimitsAsOf)
    weights = [
        r["limit"] for r in latest["rate_limits"] if r["rate_limit_type"] == "REQUEST_WEIGHT"
    ]
    assert weights == [1200]
    error(client.get(f"/v1/rate-limits?as_of={q(T0 - timedelta(seconds=1))}"), 404, "not_observed")


def test_exchange_info_returns_the_exact_bytes_with_server_time(
    engine: Engine, client: FlaskClient
) -> None:
    server_ms = int(T0.timestamp() * 1000)
    document = {**exchange_info(symbol("BTCUSDT")), "serverTime": server_ms}
    # Odd spacing and key order survive: the body is served as stored, not re-serialised.
    sent = orjson.dumps(document, option=orjson.OPT_INDENT_2).replace(
        b'"timezone": "UTC"', b'"timezone" :  "UTC"'
    )
    recorded = record_exchange_info(engine, sent, T0)
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT", status="HALT")), T1)

    response = client.get(f"/v1/exchange-info?as_of={q(T0 + timedelta(seconds=5))}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.data == sent
    assert response.headers["X-Exmeta-Observation-Id"] == str(recorded.observation_id)
    assert response.headers["X-Exmeta-Observed-At"] == ts(T0)

    latest = client.get("/v1/exchange-info")
    assert orjson.loads(latest.data)["symbols"][0]["status"] == "HALT"
    assert orjson.loads(latest.data)["serverTime"] == int(T1.timestamp() * 1000)
    assert latest.headers["X-Exmeta-Observed-At"] == ts(T1)


def test_exchange_info_before_any_observation_is_404(engine: Engine, client: FlaskClient) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    error(
        client.get(f"/v1/exchange-info?as_of={q(T0 - timedelta(milliseconds=1))}"),
        404,
        "not_observed",
    )


# --- observations --------------------------------------------------------------------


@pytest.fixture
def polled(engine: Engine) -> None:
    """Successes at T0, T0+10s and T0+20s, then silence until T0+5min."""
    doc = exchange_info(symbol("BTCUSDT"))
    for seconds in (0, 10, 20):
        record_exchange_info(engine, doc, T0 + timedelta(seconds=seconds))
    record_exchange_info(engine, doc, T0 + timedelta(minutes=5))


@pytest.mark.usefixtures("polled")
def test_observations_default_to_the_last_hour(make_client: MakeClient) -> None:
    client = make_client(now=T0 + timedelta(minutes=10))
    body = ok(client.get("/v1/observations"), schemas.ObservationLog)
    assert body["from"] == ts(T0 + timedelta(minutes=10) - timedelta(hours=1))
    assert body["to"] == ts(T0 + timedelta(minutes=10))
    assert [o["outcome"] for o in body["observations"]] == [
        "changed",
        "unchanged",
        "unchanged",
        "unchanged",
    ]
    assert body["truncated"] is False
    first = body["observations"][0]
    assert first["stream"] == "exchange_info"
    assert first["replica_id"] == "test"
    assert first["observed_at"] == ts(T0)
    assert first["http_status"] == 200
    assert first["used_weight"] == 20
    assert first["error_class"] is None
    assert INSTANT.fullmatch(first["requested_at"])
    assert body["gaps"] == [
        {"stream": "exchange_info", "start": None, "end": ts(T0)},
        {
            "stream": "exchange_info",
            "start": ts(T0 + timedelta(seconds=20)),
            "end": ts(T0 + timedelta(minutes=5)),
        },
        {"stream": "exchange_info", "start": ts(T0 + timedelta(minutes=5)), "end": None},
    ]


@pytest.mark.usefixtures("polled")
def test_observations_in_a_half_open_window_and_cut_by_limit(make_client: MakeClient) -> None:
    client = make_client(now=T0 + timedelta(minutes=10))
    window = f"from={q(T0 + timedelta(seconds=10))}&to={q(T0 + timedelta(seconds=20))}"
    half_open = ok(client.get(f"/v1/observations?{window}"), schemas.ObservationLog)
    assert [o["observed_at"] for o in half_open["observations"]] == [ts(T0 + timedelta(seconds=10))]
    assert half_open["gaps"] == []

    cut = ok(client.get("/v1/observations?limit=2"), schemas.ObservationLog)
    assert [o["observed_at"] for o in cut["observations"]] == [
        ts(T0),
        ts(T0 + timedelta(seconds=10)),
    ]
    assert cut["truncated"] is True
    exact = ok(client.get("/v1/observations?limit=4"), schemas.ObservationLog)
    assert len(exact["observations"]) == 4
    assert exact["truncated"] is False


def test_observations_filtered_by_stream_and_outcome(
    engine: Engine, make_client: MakeClient
) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    failure = record_failure(engine, T1)
    client = make_client(now=failure.observed_at + timedelta(seconds=1))
    failures = ok(
        client.get("/v1/observations?stream=exchange_info&outcome=error"), schemas.ObservationLog
    )
    assert [o["id"] for o in failures["observations"]] == [failure.observation_id]
    row = failures["observations"][0]
    assert row["outcome"] == "error"
    assert row["http_status"] == 503
    assert row["error_class"] == "http_error"
    assert row["error_message"] == "Service Unavailable"
    everything = ok(client.get("/v1/observations"), schemas.ObservationLog)
    assert [o["outcome"] for o in everything["observations"]] == ["changed", "error"]
    changed = ok(client.get("/v1/observations?outcome=changed"), schemas.ObservationLog)
    assert [o["outcome"] for o in changed["observations"]] == ["changed"]
    other = ok(client.get("/v1/observations?stream=system_status"), schemas.ObservationLog)
    assert other["observations"] == []


@pytest.mark.usefixtures("polled")
def test_observations_of_a_stream_never_polled_is_one_open_gap(make_client: MakeClient) -> None:
    client = make_client(now=T0 + timedelta(minutes=10))
    body = ok(client.get("/v1/observations?stream=system_status"), schemas.ObservationLog)
    assert body["observations"] == []
    assert body["gaps"] == [{"stream": "system_status", "start": None, "end": None}]


# --- health --------------------------------------------------------------------------


@pytest.mark.usefixtures("halted")
def test_readyz_is_200_when_every_stream_is_fresh(client: FlaskClient) -> None:
    body = ok(client.get("/readyz"), schemas.Readiness)
    assert body == {
        "status": "ready",
        "reasons": [],
        "last_successes": {"exchange_info": ts(T2)},
        "database": PRIMARY,
    }


@pytest.mark.usefixtures("halted")
def test_readyz_is_503_when_data_is_stale(make_client: MakeClient) -> None:
    response = make_client(now=T2 + timedelta(seconds=31)).get("/readyz")
    assert response.status_code == 503
    body = response.json
    assert body is not None
    schemas.Readiness.model_validate(body)
    assert body["status"] == "not_ready"
    assert len(body["reasons"]) == 1
    assert body["reasons"][0].startswith("exchange_info: last success")
    assert make_client(now=T2 + timedelta(seconds=30)).get("/readyz").status_code == 200


@pytest.mark.usefixtures("halted")
def test_readyz_checks_every_enabled_stream(make_client: MakeClient) -> None:
    response = make_client(streams=("exchange_info", "system_status")).get("/readyz")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["reasons"] == ["system_status: no successful observation yet"]


def test_readyz_is_503_without_data(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "not_ready",
        "reasons": ["exchange_info: no successful observation yet"],
        "last_successes": {"exchange_info": None},
        "database": PRIMARY,
    }


@pytest.fixture
def unreachable() -> Iterator[Engine]:
    """An engine whose server refuses connections (nothing listens on port 1)."""
    engine = create_db_engine(
        "postgresql://exmeta@127.0.0.1:1/exmeta", DatabaseSettings(connect_timeout_seconds=1)
    )
    yield engine
    engine.dispose()


def test_unreachable_database_is_503_never_500(
    make_client: MakeClient, unreachable: Engine
) -> None:
    client = make_client(db=unreachable)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json is not None
    assert ready.json["reasons"] == ["database unreachable"]
    assert "127.0.0.1" not in ready.get_data(as_text=True)
    message = error(client.get("/v1/symbols/BTCUSDT"), 503, "database_unavailable")
    assert "127.0.0.1" not in message
    assert client.get("/healthz").json == {"status": "ok"}


def test_database_without_the_schema_is_not_ready(
    make_client: MakeClient, pg_server: DatabaseServer
) -> None:
    unmigrated = create_db_engine(pg_server.create_database("exmeta_empty"), DatabaseSettings())
    try:
        response = make_client(db=unmigrated).get("/readyz")
    finally:
        unmigrated.dispose()
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["reasons"] == ["database error (ProgrammingError)"]


# --- OpenAPI and docs ----------------------------------------------------------------


def test_openapi_document_is_openapi_3_with_every_route(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec is not None
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= {
        "/v1/symbols",
        "/v1/symbols/{symbol}",
        "/v1/symbols/{symbol}/history",
        "/v1/rate-limits",
        "/v1/exchange-info",
        "/v1/observations",
        "/healthz",
        "/readyz",
    }
    operations = [op for item in spec["paths"].values() for op in item.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)
    symbol = spec["paths"]["/v1/symbols/{symbol}"]["get"]
    assert {p["name"] for p in symbol["parameters"]} == {"symbol", "as_of", "market"}
    observations = spec["paths"]["/v1/observations"]["get"]
    assert {p["name"] for p in observations["parameters"]} == {
        "stream",
        "outcome",
        "from",
        "to",
        "limit",
    }
    for op in operations:  # validation errors are documented as our 400, not a 422 list
        assert "422" not in op["responses"]
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    refs = re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', response.get_data(as_text=True))
    assert refs
    assert set(refs) <= set(spec["components"]["schemas"])


def test_docs_page_loads_its_assets_from_this_server(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "SwaggerUIBundle" in page
    assert "http://" not in page
    assert "https://" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        with client.get(urljoin("/docs", asset)) as served:
            assert served.status_code == 200, asset
            assert len(served.data) > 100


# --- bad input -----------------------------------------------------------------------

SQL = "'; DROP TABLE symbol_versions; --"
BAD_INPUTS = [
    ("naive time", "/v1/symbols/BTCUSDT?as_of=2024-01-01T00:00:00", 400, "invalid_time"),
    ("now", "/v1/symbols/BTCUSDT?as_of=now", 400, "invalid_time"),
    ("infinity", "/v1/symbols?as_of=infinity", 400, "invalid_time"),
    ("year 10000", "/v1/rate-limits?as_of=10000-01-01T00:00:00Z", 400, "invalid_time"),
    (
        "offset +25:00",
        "/v1/exchange-info?as_of=" + quote("2024-01-01T00:00:00+25:00"),
        400,
        "invalid_time",
    ),
    ("empty time", "/v1/symbols?as_of=", 400, "invalid_time"),
    ("10 KB time", "/v1/symbols?as_of=" + "9" * 10_240, 400, "invalid_time"),
    ("10 KB symbol", "/v1/symbols/" + "A" * 10_240, 400, "invalid_parameter"),
    ("10 KB filter", "/v1/symbols?status=" + "A" * 10_240, 400, "invalid_parameter"),
    ("unknown symbol", "/v1/symbols/NOSUCHCOIN", 404, "symbol_not_listed"),
    ("sql as symbol", "/v1/symbols/" + quote(SQL, safe=""), 404, "symbol_not_listed"),
    ("sql in history", "/v1/symbols/" + quote(SQL, safe="") + "/history", 404, "symbol_never_seen"),
    ("sql as time", "/v1/symbols?as_of=" + quote(SQL), 400, "invalid_time"),
    ("limit=0", "/v1/observations?limit=0", 400, "invalid_parameter"),
    ("limit=abc", "/v1/observations?limit=abc", 400, "invalid_parameter"),
    ("limit too big", "/v1/observations?limit=10001", 400, "invalid_parameter"),
    (
        "from after to",
        f"/v1/observations?from={q(T1)}&to={q(T0)}",
        400,
        "invalid_window",
    ),
    (
        "from equals to",
        f"/v1/symbols/BTCUSDT/history?from={q(T0)}&to={q(T0)}",
        400,
        "invalid_window",
    ),
    (
        "from after now",
        f"/v1/observations?from={q(NOW + timedelta(days=1))}",
        400,
        "invalid_window",
    ),
    ("unknown stream", "/v1/observations?stream=" + quote(SQL), 400, "invalid_parameter"),
    ("unknown outcome", "/v1/observations?outcome=maybe", 400, "invalid_parameter"),
    ("misspelt parameter", f"/v1/symbols/BTCUSDT?asof={q(T0)}", 400, "unknown_parameter"),
    ("unknown route", "/v2/symbols", 404, "not_found"),
    ("symbol with a slash", "/v1/symbols/BTC/USDT", 404, "not_found"),
]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [pytest.param(path, status, code, id=name) for name, path, status, code in BAD_INPUTS],
)
def test_bad_input_is_a_json_4xx(
    engine: Engine, client: FlaskClient, path: str, status: int, code: str
) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), T0)
    response = client.get(path)
    message = error(response, status, code)
    assert len(message) < 1000  # the input is never echoed back whole
    assert "<html" not in response.get_data(as_text=True).lower()
    tables = set(inspect(engine).get_table_names())
    assert {"symbol_versions", "observations"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM symbol_versions")).scalar_one() == 1


def test_wrong_method_is_a_json_405_with_allow(client: FlaskClient) -> None:
    response = client.post("/v1/symbols")
    error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


# --- errors and auth on a test-only blueprint ----------------------------------------


def _with_test_routes(engine: Engine, settings: Settings) -> Flask:
    app = create_app(settings, engine, clock=lambda: NOW)
    private = Blueprint("private", __name__)

    @private.get("/test/private")
    @require_token
    def secret() -> dict[str, str]:
        return {"secret": "balances"}

    @private.get("/test/broken")
    def broken() -> dict[str, str]:
        raise RuntimeError("connection string postgres://admin:hunter2@db")

    app.register_blueprint(private)
    return app


def test_unexpected_error_is_a_generic_500_logged_with_its_traceback(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client = _with_test_routes(engine, Settings()).test_client()
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = client.get("/test/broken")
    assert error(response, 500, "internal_error") == "internal error"
    assert b"hunter2" not in response.data
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)


def test_account_routes_are_disabled_without_a_token(engine: Engine) -> None:
    client = _with_test_routes(engine, Settings()).test_client()
    message = error(
        client.get("/test/private", headers={"Authorization": "Bearer "}), 403, "forbidden"
    )
    assert message == (
        "account routes are disabled: set a bearer token in EXMETA_API__TOKEN"
        " ([api] token) and restart the API"
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        "Basic s3cr3t-token",
        "s3cr3t-token",
        "Bearer s3cr3t-token-and-more",
    ],
)
def test_missing_or_wrong_token_is_401(engine: Engine, authorization: str | None) -> None:
    settings = replace_section(Settings(), "api", token=Secret("s3cr3t-token"))
    client = _with_test_routes(engine, settings).test_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/test/private", headers=headers)
    error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"s3cr3t" not in response.data


def test_right_token_lets_the_request_through(engine: Engine) -> None:
    settings = replace_section(Settings(), "api", token=Secret("s3cr3t-token"))
    client = _with_test_routes(engine, settings).test_client()
    response = client.get("/test/private", headers={"Authorization": "Bearer s3cr3t-token"})
    assert response.status_code == 200
    assert response.json == {"secret": "balances"}


# --- the documented shapes follow core -----------------------------------------------


def test_response_models_name_every_typed_column() -> None:
    symbol_fields = set(schemas.SymbolRules.model_fields) - {
        "filters",
        "valid_from",
        "valid_to",
        "raw",
    }
    assert symbol_fields == set(SYMBOL_FIELDS)
    filter_fields = set(schemas.FilterRules.model_fields) - {"valid_from", "valid_to", "raw"}
    assert filter_fields == set(FILTER_FIELDS)


def test_create_app_refuses_an_unknown_stream(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown streams: exchange_infos"):
        create_app(Settings(), engine, streams=("exchange_infos",))


def test_healthz_answers_ok(client: FlaskClient) -> None:
    assert ok(client.get("/healthz"), schemas.Health) == {"status": "ok"}


def test_whole_exchange_answers_equal_the_rules_read_as_decimals(
    engine: Engine, make_client: MakeClient
) -> None:
    """/v1/symbols reads numerics as PostgreSQL's text; the same rules read as Decimals and
    rendered must give the same answer.

    Two real days of Binance, recorded at instants with sub-millisecond fractions (the
    milliseconds are truncated, not rounded), asked before, between and after, with and
    without a filter on the symbols.
    """
    day1 = at("2024-03-01T00:00:00.123999")
    day2 = at("2024-03-02T00:00:00.987654")
    record_exchange_info(engine, (FIXTURES / "2022-11-28_2124.json").read_bytes(), day1)
    record_exchange_info(engine, (FIXTURES / "2022-11-29_2124.json").read_bytes(), day2)
    client = make_client(now=day2 + timedelta(seconds=5))
    for as_of, params in (
        (day1 + timedelta(seconds=1), ""),
        (day1 + timedelta(hours=1), "&status=BREAK"),
        (day2 + timedelta(seconds=1), ""),
        (None, "&quote_asset=BTC&base_asset=ETH"),
        (None, "&status=TRADING"),
    ):
        url = f"/v1/symbols?as_of={q(as_of)}{params}" if as_of else f"/v1/symbols?{params[1:]}"
        answer = ok(client.get(url), schemas.SymbolList)
        filters = dict(p.split("=") for p in params[1:].split("&") if p)
        with engine.connect() as conn:
            expected = [
                orjson.loads(render.json_response(render.symbol_rules(r)).get_data())
                for r in history.symbols_as_of(conn, as_of)
                if all(r.symbol.fields[name] == value for name, value in filters.items())
            ]
        assert expected, url
        assert answer["symbols"] == expected, url
        assert all(INSTANT.fullmatch(s["filters"]["PRICE_FILTER"]["valid_from"]) for s in expected)


def test_each_symbol_of_a_whole_exchange_answer_equals_its_own_answer(
    engine: Engine, make_client: MakeClient
) -> None:
    """/v1/symbols builds its answer straight from the rows (render.symbol_list); every
    symbol in it must equal /v1/symbols/{symbol} at the same instant: a symbol without
    filters, one whose filter closed before its own version (which closed later), one whose
    own version closed first, and a symbol that is delisted by then (absent from both)."""
    no_filters = {**symbol("NOFUSDT"), "filters": []}
    btc, eth, gone = symbol("BTCUSDT"), symbol("ETHUSDT"), symbol("GONEUSDT")
    record_exchange_info(engine, exchange_info(btc, eth, gone, no_filters), T0)
    btc_tick = symbol("BTCUSDT", tick_size="0.10000000")
    eth_halt = symbol("ETHUSDT", status="HALT")
    record_exchange_info(engine, exchange_info(btc_tick, eth_halt, no_filters), T1)
    btc_halt = symbol("BTCUSDT", tick_size="0.10000000", status="HALT")
    later = T1 + timedelta(seconds=5)
    record_exchange_info(engine, exchange_info(btc_halt, symbol("ETHUSDT"), no_filters), later)
    client = make_client()
    for instant, names in (
        (T0 + timedelta(seconds=1), ["BTCUSDT", "ETHUSDT", "GONEUSDT", "NOFUSDT"]),
        (T1 + timedelta(seconds=1), ["BTCUSDT", "ETHUSDT", "NOFUSDT"]),
        (None, ["BTCUSDT", "ETHUSDT", "NOFUSDT"]),
    ):
        suffix = f"?as_of={q(instant)}" if instant else ""
        whole = ok(client.get(f"/v1/symbols{suffix}"), schemas.SymbolList)
        assert [s["symbol"] for s in whole["symbols"]] == names, suffix
        for listed in whole["symbols"]:
            own = ok(client.get(f"/v1/symbols/{listed['symbol']}{suffix}"), schemas.SymbolAsOf)
            assert listed == {k: v for k, v in own.items() if k not in ("as_of", "evidence")}
            assert list(listed["filters"]) == sorted(listed["filters"])  # stable output
    first = ok(client.get(f"/v1/symbols?as_of={q(T0 + timedelta(seconds=1))}"), schemas.SymbolList)
    by_name = {s["symbol"]: s for s in first["symbols"]}
    assert by_name["NOFUSDT"]["filters"] == {}
    assert by_name["BTCUSDT"]["valid_to"] == format_instant(T1)  # a filter closed at T1
    assert by_name["BTCUSDT"]["filters"]["LOT_SIZE"]["valid_to"] is None
    assert by_name["BTCUSDT"]["filters"]["PRICE_FILTER"]["valid_to"] == format_instant(T1)
    assert by_name["ETHUSDT"]["valid_to"] == format_instant(T1)  # its own version closed
    assert by_name["ETHUSDT"]["filters"]["PRICE_FILTER"]["valid_to"] is None


def test_a_past_answer_is_kept_until_the_versions_change(
    engine: Engine, make_client: MakeClient
) -> None:
    """api.answers: kept answers are served from memory, and dropped once a write
    changes the stream's versions (a LOT_SIZE change closes a version in the answer)."""
    eth = symbol("ETHUSDT")
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT"), eth), T0)
    halted = exchange_info(symbol("BTCUSDT", status="HALT"), eth)
    record_exchange_info(engine, halted, T1)
    client = make_client(now=NOW + timedelta(seconds=30))
    cache = client.application.extensions[EXTENSION].answers
    url = f"/v1/symbols/BTCUSDT?as_of={q(T0 + timedelta(seconds=5))}"
    first = ok(client.get(url), schemas.SymbolAsOf)
    assert first["filters"]["LOT_SIZE"]["valid_to"] is None
    assert len(cache) == 1
    ok(client.get("/v1/symbols/BTCUSDT"), schemas.SymbolAsOf)  # about now: never kept
    ok(client.get(f"/v1/symbols/BTCUSDT?as_of={q(T1 + timedelta(seconds=1))}"), schemas.SymbolAsOf)
    assert len(cache) == 1  # nothing observed after T1 + 1 s yet: evidence may still change

    later = exchange_info(symbol("BTCUSDT", status="HALT", min_qty="0.01000000"), eth)
    record_exchange_info(engine, later, T2)
    cache.recheck_seconds = 3600.0  # the generation read with the first answer stays
    assert ok(client.get(url), schemas.SymbolAsOf) == first  # served from memory
    cache.recheck_seconds = 0.0  # read the generation on every request from now on
    fresh = ok(client.get(url), schemas.SymbolAsOf)
    assert fresh["filters"]["LOT_SIZE"]["valid_to"] == ts(T2)
    assert {k: v for k, v in fresh.items() if k != "filters"} == {
        k: v for k, v in first.items() if k != "filters"
    }


@pytest.mark.usefixtures("halted")
def test_an_as_of_answer_is_one_round_trip(client: FlaskClient, api_engine: Engine) -> None:
    """Rules, evidence and the generation that lets the answer be kept come in one
    statement, outside any transaction: no BEGIN, no ROLLBACK, no second query; and the
    generation read with it spares the repeat its own look (api.answers)."""
    client.application.extensions[EXTENSION].answers.recheck_seconds = 3600.0
    with traced(api_engine) as trace:
        answer = ok(client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0)}"), schemas.SymbolAsOf)
        first = trace.round_trips()
        again = ok(client.get(f"/v1/symbols/BTCUSDT?as_of={q(T0)}"), schemas.SymbolAsOf)
        assert first == 1, trace.sent()
        assert trace.round_trips() == 1, trace.sent()  # kept, read with the generation
    assert answer == again
