"""Asking the API in tests and checking its answers: instants as query values, a 200's
JSON checked against its documented model, an error's code and message."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from api import create_app, schemas
from core.config import ApiSettings, Secret, Settings
from core.timeparse import format_instant
from tests.scripts import NOW
from tests.signed_sim import API_TOKEN

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

# What /readyz says of the test server (a standby is in tests/integration/test_standby.py).
PRIMARY = {
    "role": "primary",
    "replay_lag_seconds": None,
    "replay_pending_bytes": None,
    "last_replayed_at": None,
    "replay_paused": None,
}


def ts(value: datetime) -> str:
    return format_instant(value) or ""


def q(value: datetime) -> str:
    return quote(ts(value))


def ok(response: TestResponse, model: type[BaseModel]) -> dict[str, Any]:
    """The JSON of a 200 answer, checked against the response model the spec documents."""
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "application/json"
    body = response.json
    assert isinstance(body, dict)
    model.model_validate(body)
    return body


def error(response: TestResponse, status: int, code: str) -> str:
    """The message of a JSON error answer with this status and code."""
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/json"
    body = response.json
    assert body is not None
    schemas.ErrorResponse.model_validate(body)
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert "Traceback" not in message
    return message


def app_client(engine: Engine, token: str | None = API_TOKEN) -> FlaskClient:
    """A client of the API over ``engine`` at the scripts' NOW, with ``token`` configured."""
    settings = Settings(api=ApiSettings(token=Secret(token or "")))
    return create_app(settings, engine, clock=lambda: NOW).test_client()
