"""The account, commission, system-status and delistings routes over data polled from the sim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from api import create_app, schemas
from binance_sim.server import SimServer
from core.config import Secret, Settings, replace_section
from core.ingest import Recorded
from core.timeparse import format_instant
from tests.builders import sim_urls
from tests.margin_sim import MARGIN_STREAMS
from tests.signed_sim import API_TOKEN, control, jobs_by_stream, register_key, sim_settings

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ACCOUNT_ROUTES = ["/v1/account", "/v1/account/balances", "/v1/account/commission/BTCUSDT"]


def q(at: datetime) -> str:
    return quote(format_instant(at) or "")


def ok(response: TestResponse, model: type[BaseModel]) -> dict[str, Any]:
    assert response.status_code == 200, response.data[:500]
    body = response.json
    assert isinstance(body, dict)
    model.model_validate(body)
    return body


def error_code(response: TestResponse, status: int) -> str:
    assert response.status_code == status, response.data[:500]
    body = response.json
    assert body is not None
    schemas.ErrorResponse.model_validate(body)
    code: str = body["error"]["code"]
    return code


@pytest.fixture
def polled(engine: Engine, sim: SimServer) -> tuple[Settings, list[Recorded]]:
    """Every stream polled once; then BTC's balance, the status and the schedule change."""
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=("BTCUSDT",))
    jobs = jobs_by_stream(settings, engine)
    first = [job.run() for job in jobs.values()]
    control(sim, "PATCH", "/account", {"balances": {"BTC": {"free": "2", "locked": "0"}}})
    control(sim, "PUT", "/system-status", {"status": 1, "msg": "system_maintenance"})
    control(
        sim,
        "PUT",
        "/delist-schedule",
        {"schedule": [{"delistTime": 1767225600000, "symbols": ["ETHBTC"]}]},
    )
    second = [job.run() for job in jobs.values()]
    return settings, [
        max(first, key=lambda r: r.observed_at),
        min(second, key=lambda r: r.observed_at),
    ]


def client_for(engine: Engine, settings: Settings) -> FlaskClient:
    app = create_app(
        settings, engine, clock=lambda: datetime.now(UTC), streams=settings.enabled_streams()
    )
    return app.test_client()


def test_account_routes_answer_as_of_with_evidence(
    api_engine: Engine, polled: tuple[Settings, list[Recorded]]
) -> None:
    settings, (first, second) = polled
    client = client_for(api_engine, settings)
    between = first.observed_at + (second.observed_at - first.observed_at) / 2

    account = ok(client.get("/v1/account", headers=AUTH), schemas.AccountAsOf)
    assert account["commission_rate_maker"] == "0.00150000"
    assert account["permissions"] == ["SPOT"]
    assert account["uid"] == 354937868
    assert account["evidence"]["observed_before"] is not None
    assert account["evidence"]["gap"] is False

    now = ok(client.get("/v1/account/balances", headers=AUTH), schemas.BalancesAsOf)
    then = ok(
        client.get(f"/v1/account/balances?as_of={q(between)}", headers=AUTH), schemas.BalancesAsOf
    )
    assert {b["asset"]: b["free"] for b in now["balances"]}["BTC"] == "2"
    assert {b["asset"]: b["free"] for b in then["balances"]}["BTC"] == "4723846.89208129"
    only = ok(client.get("/v1/account/balances?asset=LTC", headers=AUTH), schemas.BalancesAsOf)
    assert [b["asset"] for b in only["balances"]] == ["LTC"]

    commission = ok(
        client.get("/v1/account/commission/BTCUSDT", headers=AUTH), schemas.CommissionAsOf
    )
    assert commission["standard_maker"] == "0.00000010"
    assert commission["discount_asset"] == "BNB"
    not_polled = client.get("/v1/account/commission/ETHBTC", headers=AUTH)
    assert error_code(not_polled, 404) == "commission_not_polled"

    before = client.get(
        f"/v1/account?as_of={q(first.observed_at - timedelta(days=1))}", headers=AUTH
    )
    assert error_code(before, 404) == "not_observed"


def test_system_status_and_delistings_are_public_and_versioned(
    api_engine: Engine, polled: tuple[Settings, list[Recorded]]
) -> None:
    settings, (first, second) = polled
    client = client_for(api_engine, settings)
    between = first.observed_at + (second.observed_at - first.observed_at) / 2
    now = ok(client.get("/v1/system-status"), schemas.SystemStatusAsOf)
    then = ok(client.get(f"/v1/system-status?as_of={q(between)}"), schemas.SystemStatusAsOf)
    assert (now["status"], now["message"]) == (1, "system_maintenance")
    assert (then["status"], then["message"]) == (0, "normal")

    delistings = ok(client.get("/v1/delistings"), schemas.DelistingsAsOf)
    assert [(d["symbol"], d["delist_time"]) for d in delistings["delistings"]] == [
        ("ETHBTC", "2026-01-01T00:00:00.000Z")
    ]
    assert (
        ok(client.get(f"/v1/delistings?as_of={q(between)}"), schemas.DelistingsAsOf)["delistings"]
        == []
    )
    assert error_code(client.get("/v1/delistings?as_of=now"), 400) == "invalid_time"


@pytest.mark.parametrize("route", ACCOUNT_ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {API_TOKEN}", f"Bearer {API_TOKEN}x"]
)
def test_account_routes_need_the_right_token(
    api_engine: Engine,
    polled: tuple[Settings, list[Recorded]],
    route: str,
    authorization: str | None,
) -> None:
    client = client_for(api_engine, polled[0])
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get(route, headers=headers)
    assert error_code(response, 401) == "unauthorized"
    assert API_TOKEN.encode() not in response.data
    assert client.get(route, headers=AUTH).status_code == 200


@pytest.mark.parametrize("route", ACCOUNT_ROUTES)
def test_account_routes_without_a_configured_token_say_how_to_set_one(
    api_engine: Engine, polled: tuple[Settings, list[Recorded]], route: str
) -> None:
    settings = replace_section(polled[0], "api", token=Secret(""))
    response = client_for(api_engine, settings).get(route, headers=AUTH)
    assert error_code(response, 403) == "forbidden"
    assert "EXMETA_API__TOKEN" in response.json["error"]["message"]  # type: ignore[index]


def test_public_routes_stay_open_and_the_spec_documents_the_new_routes(
    api_engine: Engine, polled: tuple[Settings, list[Recorded]]
) -> None:
    client = client_for(api_engine, polled[0])
    assert client.get("/v1/system-status").status_code == 200
    spec = client.get("/openapi.json").json
    assert spec is not None
    for route in ("/v1/account", "/v1/account/balances", "/v1/system-status", "/v1/delistings"):
        assert route in spec["paths"]
    assert spec["paths"]["/v1/account"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/system-status"]["get"]


def test_enabled_streams_follow_the_key(engine: Engine, sim: SimServer) -> None:
    keyless = replace_section(Settings(), "binance", **sim_urls(sim.url))
    futures = ("usdm_exchange_info", "coinm_exchange_info")
    assert keyless.enabled_streams() == ("exchange_info", "system_status", *futures)
    keyed = sim_settings(sim, commission_symbols=("BTCUSDT",))
    assert keyed.enabled_streams() == (
        "exchange_info",
        "account",
        "account_commission",
        "system_status",
        "delistings",
        "wallet_networks",
        *MARGIN_STREAMS,
        *futures,
    )
