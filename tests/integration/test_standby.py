"""The API reading from a real streaming hot standby that is behind its primary.

The API's URL names the primary, then the standby (libpq takes the first that answers),
as a deployment whose reads must outlive the primary would. An answer is kept while the
primary serves; the primary goes down while the standby's replay is paused behind it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app, schemas
from api.answers import RECHECK_SECONDS
from core.config import DatabaseSettings, Settings
from core.db import API_ROLE, create_db_engine
from tests.api_client import ok, ts
from tests.builders import at, exchange_info, record_exchange_info, symbol
from tests.standby import Replicated, replicated

T0 = at("2024-01-01T00:00:00")
CHANGED_AT = T0 + timedelta(seconds=20)
SEEN_AGAIN_AT = T0 + timedelta(seconds=30)
ASKED = f"/v1/symbols/BTCUSDT?as_of={ts(T0 + timedelta(seconds=25))}"
NOW = T0 + timedelta(seconds=35)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Replicated]:
    with replicated(tmp_path) as found:
        yield found


@pytest.fixture
def api_engine(pair: Replicated) -> Iterator[Engine]:
    engine = create_db_engine(
        pair.both_url(),
        DatabaseSettings(connect_timeout_seconds=2),
        application_name="exmeta-tests-api",
        pre_ping=False,
        read_only_role=API_ROLE,
    )
    yield engine
    engine.dispose()


def answered(client: FlaskClient, path: str) -> dict[str, Any]:
    """The 200 answer to ``path``; the 503s of the switch to the standby are retried."""
    deadline = time.monotonic() + 20
    while True:
        response = client.get(path)
        if response.status_code != 503 or time.monotonic() > deadline:
            assert response.status_code == 200, response.data[:500]
            body = response.json
            assert isinstance(body, dict)
            return body
        time.sleep(0.1)


def test_after_failing_over_to_a_standby_behind_no_answer_cites_what_it_has_not_replayed(
    pair: Replicated, api_engine: Engine
) -> None:
    trading = exchange_info(symbol("BTCUSDT"))
    halted = exchange_info(symbol("BTCUSDT", status="HALT"))
    record_exchange_info(pair.writer, trading, T0)
    record_exchange_info(pair.writer, trading, T0 + timedelta(seconds=10))
    pair.wait_for_replay()
    pair.on_standby("SELECT pg_wal_replay_pause()")
    record_exchange_info(pair.writer, halted, CHANGED_AT)
    record_exchange_info(pair.writer, halted, SEEN_AGAIN_AT)
    pair.wait_until_standby("receive", pair.primary_position())  # received, not replayed

    client = create_app(Settings(), api_engine, clock=lambda: NOW).test_client()
    on_primary = ok(client.get(ASKED), schemas.SymbolAsOf)
    assert (on_primary["status"], on_primary["evidence"]["observed_after"]) == (
        "HALT",
        ts(SEEN_AGAIN_AT),
    )
    assert client.get(ASKED).json == on_primary  # kept: served from memory

    pair.primary.stop("fast")
    time.sleep(RECHECK_SECONDS * 2)
    on_standby = answered(client, ASKED)
    assert on_standby["status"] == "TRADING"
    assert on_standby["evidence"]["observed_before"] == ts(T0 + timedelta(seconds=10))
    assert on_standby["evidence"]["observed_after"] is None
    assert ts(CHANGED_AT) not in str(on_standby)
    assert ts(SEEN_AGAIN_AT) not in str(on_standby)

    ready = client.get("/readyz")
    schemas.Readiness.model_validate(ready.json)
    assert ready.json is not None
    database = ready.json["database"]
    assert database["role"] == "standby"
    assert database["replay_paused"] is True
    assert database["replay_pending_bytes"] > 0
    assert database["replay_lag_seconds"] > 0

    pair.on_standby("SELECT pg_wal_replay_resume()")
    deadline = time.monotonic() + 20
    while answered(client, ASKED)["status"] != "HALT":
        assert time.monotonic() < deadline, "the standby's replay did not resume"
        time.sleep(0.05)
    assert answered(client, ASKED) == on_primary
    resumed = answered(client, "/readyz")["database"]
    assert (resumed["replay_paused"], resumed["replay_lag_seconds"]) == (False, 0)
