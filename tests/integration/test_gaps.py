"""A 60 s outage on a fixed timeline: the history says where it is blind, readyz says so too."""

from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from core.config import Settings
from core.timeparse import format_instant
from tests.builders import at, exchange_info, record_exchange_info, record_failure, symbol

T0 = at("2025-03-01T12:00:00")
INTERVAL = 10  # the default exchange_info interval: a gap is > 30 s without a success
OUTAGE_FROM = T0 + timedelta(seconds=50)  # the last success before the outage
OUTAGE_TO = T0 + timedelta(seconds=110)  # the first success after it


def ts(value: datetime) -> str:
    return format_instant(value) or ""


def record_polls(engine: Engine, until: datetime) -> None:
    """Polls every 10 s up to ``until``; from +60 s to +100 s each fails (503): a 60 s outage."""
    document = exchange_info(symbol("BTCUSDT"))
    for second in range(0, 130, INTERVAL):
        when = T0 + timedelta(seconds=second)
        if when > until:
            return
        if OUTAGE_FROM < when < OUTAGE_TO:
            record_failure(engine, when)
        else:
            record_exchange_info(engine, document, when)


@pytest.fixture
def outage(engine: Engine) -> None:
    record_polls(engine, T0 + timedelta(seconds=130))


def client_at(engine: Engine, now: datetime) -> FlaskClient:
    return create_app(Settings(), engine, clock=lambda: now).test_client()


@pytest.mark.usefixtures("outage")
@pytest.mark.parametrize("offset", [51, 80, 109])
def test_as_of_inside_the_outage_is_a_gap_with_its_bounds(api_engine: Engine, offset: int) -> None:
    client = client_at(api_engine, T0 + timedelta(seconds=130))
    instant = quote(ts(T0 + timedelta(seconds=offset)))

    response = client.get(f"/v1/symbols/BTCUSDT?as_of={instant}")

    assert response.status_code == 200
    assert response.json is not None
    schemas.SymbolAsOf.model_validate(response.json)
    assert response.json["status"] == "TRADING"  # the answer stands, with its doubt attached
    assert response.json["evidence"] == {
        "observed_before": ts(OUTAGE_FROM),
        "observed_after": ts(OUTAGE_TO),
        "gap": True,
        "gap_from": ts(OUTAGE_FROM),
        "gap_to": ts(OUTAGE_TO),
        "imported": False,
    }


@pytest.mark.usefixtures("outage")
@pytest.mark.parametrize("offset", [5, 45, 115])
def test_as_of_outside_the_outage_is_no_gap(api_engine: Engine, offset: int) -> None:
    client = client_at(api_engine, T0 + timedelta(seconds=130))
    instant = quote(ts(T0 + timedelta(seconds=offset)))

    response = client.get(f"/v1/symbols/BTCUSDT?as_of={instant}")

    assert response.json is not None
    assert response.json["evidence"]["gap"] is False
    assert response.json["evidence"]["gap_from"] is None


@pytest.mark.usefixtures("outage")
def test_observations_report_the_failures_and_the_gap_of_a_window(api_engine: Engine) -> None:
    client = client_at(api_engine, T0 + timedelta(seconds=130))
    window = f"from={quote(ts(T0))}&to={quote(ts(T0 + timedelta(seconds=120)))}"

    response = client.get(f"/v1/observations?stream=exchange_info&outcome=error&{window}")

    assert response.status_code == 200
    body = response.json
    assert body is not None
    schemas.ObservationLog.model_validate(body)
    assert [o["observed_at"] for o in body["observations"]] == [
        ts(T0 + timedelta(seconds=s)) for s in (60, 70, 80, 90, 100)
    ]
    assert {o["http_status"] for o in body["observations"]} == {503}
    assert body["gaps"] == [
        {"stream": "exchange_info", "start": ts(OUTAGE_FROM), "end": ts(OUTAGE_TO)}
    ]
    before = f"from={quote(ts(T0))}&to={quote(ts(T0 + timedelta(seconds=50)))}"
    quiet = client.get(f"/v1/observations?{before}").json
    assert quiet is not None
    assert quiet["gaps"] == []


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (45, 200),  # before the outage
        (75, 200),  # 25 s since the last success: within 3 intervals
        (85, 503),  # 35 s: the outage is now a gap
        (105, 503),
        (111, 200),  # the first success after it was recorded at +110 s
    ],
)
def test_readyz_turns_503_during_the_outage_and_200_after(
    engine: Engine, api_engine: Engine, offset: int, status: int
) -> None:
    now = T0 + timedelta(seconds=offset)
    record_polls(engine, now)  # what the poller had recorded by then

    client = client_at(api_engine, now)
    response = client.get("/readyz")

    assert response.status_code == status
    body = response.json
    assert body is not None
    schemas.Readiness.model_validate(body)
    if status == 503:
        [reason] = body["reasons"]
        stale, _, why = reason.partition("; ")
        assert stale == f"exchange_info: last success {ts(OUTAGE_FROM)} is older than 30 s"
        # The newest failed poll says why.
        assert why.startswith("last poll ")
        assert why.endswith(": http_error, HTTP 503: Service Unavailable")
        log = client.get(f"/v1/observations?from={quote(ts(T0))}").json
        assert log is not None
        assert log["gaps"] == [{"stream": "exchange_info", "start": ts(OUTAGE_FROM), "end": None}]
