"""Hostile input to the API through the Flask test client: NUL bytes, repeated parameters,
private routes asked with bad parameters. Each is a 4xx JSON error, never a 500."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core.config import ApiSettings, DatabaseSettings, Secret, Settings
from core.db import create_db_engine
from core.redact import install
from tests.builders import exchange_info, record_exchange_info, symbol

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(engine: Engine, api_engine: Engine) -> FlaskClient:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), datetime(2024, 5, 1, tzinfo=UTC))
    settings = Settings(api=ApiSettings(token=Secret(TOKEN)))
    return create_app(settings, api_engine, clock=lambda: datetime.now(UTC)).test_client()


def refused(client: FlaskClient, url: str, status: int = 400, **kwargs: Any) -> str:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/json"
    body = response.json
    schemas.ErrorResponse.model_validate(body)
    assert body is not None
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize(
    "url",
    [
        "/v1/symbols/BTC%00USDT",
        "/v1/symbols?status=%00",
        "/v1/symbols?base_asset=BTC%00",
        "/v1/changes?symbol=%00",
        "/v1/symbols/BTCUSDT/history?from=%00",
        "/v1/observations?stream=%00",
        "/v1/symbols?as%00of=1",
        "/v1/nowhere/%00",
    ],
)
def test_a_nul_byte_anywhere_is_a_400(client: FlaskClient, url: str) -> None:
    assert "NUL" in refused(client, url)


def test_a_nul_byte_in_a_private_route_is_a_400_with_the_token(client: FlaskClient) -> None:
    assert "NUL" in refused(client, "/v1/account/balances?asset=%00", headers=AUTH)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/v1/symbols/BTCUSDT?as_of=1&as_of=2", "as_of"),
        ("/v1/observations?stream=exchange_info&stream=account", "stream"),
        ("/v1/changes?stream=exchange_info&stream=delistings", "stream"),
        ("/v1/symbols/BTCUSDT/history?from=1&to=5&from=2", "from"),
        ("/v1/symbols?status=TRADING&status=BREAK", "status"),
    ],
)
def test_a_single_valued_parameter_given_twice_is_a_400(
    client: FlaskClient, url: str, name: str
) -> None:
    assert f"given more than once: {name}" in refused(client, url)


def test_list_parameters_stay_repeatable(client: FlaskClient) -> None:
    response = client.get("/v1/changes?field=status&field=filters.PRICE_FILTER")
    assert response.status_code == 200, response.data[:500]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/account?as_of=junk",
        "/v1/account?as_of=1&as_of=2",
        "/v1/account/balances?asset=%00",
        "/v1/account/balances?nonsense=1",
        "/v1/account/commission/BTCUSDT?as_of=",
        "/v1/account/commission/" + "X" * 100,
    ],
)
def test_private_routes_authenticate_before_they_validate(client: FlaskClient, url: str) -> None:
    refused(client, url, 401)
    refused(client, url, 401, headers={"Authorization": "Bearer wrong"})


def test_private_routes_still_validate_with_the_token(client: FlaskClient) -> None:
    refused(client, "/v1/account?as_of=junk", 400, headers=AUTH)


def test_every_bearer_only_operation_refuses_an_anonymous_caller_first(
    client: FlaskClient,
) -> None:
    """Whatever route is added later: the spec's bearer-only operations are private."""
    spec = client.get("/openapi.json").json
    assert spec is not None
    private = [
        path
        for path, operations in spec["paths"].items()
        for operation in operations.values()
        if operation.get("security") == [{"bearer": []}]
    ]
    assert len(private) == 3
    for path in private:
        refused(client, path.replace("{symbol}", "BTCUSDT") + "?as_of=junk&x=1", 401)


@pytest.mark.parametrize("digits", ["\uff11\uff12\uff13", "\u0661\u0662\u0663", "1_000"])
def test_epoch_milliseconds_are_ascii_digits_only(client: FlaskClient, digits: str) -> None:
    refused(client, "/v1/symbols/BTCUSDT", query_string={"as_of": digits})


def test_a_newline_in_a_logged_path_cannot_forge_a_log_line() -> None:
    """A request the API logs (the database does not answer) with %0a in its path: the
    handler `exmeta serve` installs writes one line, the newline escaped."""
    unreachable = create_db_engine(
        "postgresql://exmeta@127.0.0.1:1/exmeta", DatabaseSettings(connect_timeout_seconds=1)
    )
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    install([handler], [])
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        app = create_app(Settings(), unreachable, clock=lambda: datetime.now(UTC))
        forged = "/v1/symbols/X%0a2026-12-03 07:00:00,000 ERROR api: forged"
        refused(app.test_client(), forged, 503)
    finally:
        root.removeHandler(handler)
        unreachable.dispose()
    lines = output.getvalue().splitlines()
    assert lines
    assert not any(line.startswith("2026-12-03") for line in lines)
    assert "/v1/symbols/X\\n2026-12-03 07:00:00,000 ERROR api: forged" in lines[0]


def test_every_operation_documents_the_servers_414_and_431(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    assert spec is not None
    assert "ErrorResponse" in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for status in ("414", "431"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, path


ORDER_SIZES = [
    {k: v for k, v in combo.items() if v is not None}
    for combo in (
        {"type": kind, "quantity": qty, "quote_quantity": quote, "price": price}
        for kind in ("LIMIT", "MARKET")
        for qty in (None, "0.1")
        for quote in (None, "10")
        for price in (None, "100.01")
    )
]


@pytest.mark.parametrize("order", ORDER_SIZES, ids="&".join)
def test_the_published_check_query_accepts_exactly_what_the_api_does(
    client: FlaskClient, order: dict[str, str]
) -> None:
    """The order check's sizing rule (quantity or quote_quantity, MARKET without a price)
    spans parameters: the document states it on the query as one object, and it says
    yes exactly where the API does."""
    spec = client.get("/openapi.json").json
    assert spec is not None
    (query,) = [
        p
        for p in spec["paths"]["/v1/symbols/{symbol}/check"]["get"]["parameters"]
        if p["in"] == "query"
    ]
    assert (query["style"], query["explode"]) == ("form", True)
    instance = {"side": "BUY", **order}
    published = jsonschema_rs.Draft202012Validator(query["schema"]).is_valid(instance)
    response = client.get("/v1/symbols/BTCUSDT/check", query_string=instance)
    assert response.status_code == (200 if published else 400), response.data[:300]


@pytest.mark.parametrize(
    "number", ["0", "0.000", "1e5", "+1", "01", "1.", ".5", "1234567890123", "0." + "0" * 18 + "1"]
)
def test_order_numbers_are_positive_plain_decimals(client: FlaskClient, number: str) -> None:
    query = {"side": "BUY", "type": "LIMIT", "quantity": number}
    assert "quantity" in refused(client, "/v1/symbols/BTCUSDT/check", query_string=query)


@pytest.mark.parametrize("path", ["/v1/changes", "/v1/observations"])
def test_a_default_window_ending_in_the_first_hour_of_year_1_starts_at_year_1(
    client: FlaskClient, path: str
) -> None:
    # "to minus an hour" is before the first instant a datetime holds: an empty window
    # from year 1, not an overflow answered 500.
    response = client.get(f"{path}?to=0001-01-01T00:30:00Z")

    assert response.status_code == 200, response.data[:500]
    assert response.json is not None
    assert response.json["from"] == "0001-01-01T00:00:00.000Z"
