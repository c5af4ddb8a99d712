"""A live `exmeta serve` on a real streaming hot standby keeps answering once the primary
is down: as-of answers with their evidence, every route without a 5xx, and a /readyz that
says it reads a standby, how far behind, and why it is not ready."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.api_client import ts
from tests.builders import at, exchange_info, record_exchange_info, symbol
from tests.e2e.processes import ApiServer
from tests.standby import Replicated, replicated

TOKEN = "standby-test-token"
T0 = at("2024-01-01T00:00:00")
T1 = T0 + timedelta(seconds=10)
T2 = T0 + timedelta(seconds=20)


def instant(value: timedelta) -> str:
    return quote(ts(T0 + value))


# Every route, as a user asks it (the account ones with the token): each answers, or says
# what it has not recorded (404), never a 5xx.
ROUTES = [
    f"/v1/symbols?as_of={instant(timedelta(seconds=5))}",
    f"/v1/symbols/BTCUSDT/history?from={instant(timedelta(hours=-1))}",
    f"/v1/symbols/BTCUSDT/check?as_of={instant(timedelta(seconds=5))}"
    "&side=BUY&type=LIMIT&quantity=1&price=100",
    f"/v1/rate-limits?as_of={instant(timedelta(seconds=5))}",
    f"/v1/exchange-info?as_of={instant(timedelta(seconds=15))}",
    f"/v1/changes?from={instant(timedelta(hours=-1))}&to={instant(timedelta(hours=1))}",
    f"/v1/diff?from={instant(timedelta(seconds=5))}&to={instant(timedelta(seconds=15))}",
    f"/v1/observations?from={instant(timedelta(hours=-1))}&to={instant(timedelta(hours=1))}",
    "/v1/replicas",
    f"/v1/account?as_of={instant(timedelta(seconds=5))}",
    "/v1/account/balances",
    "/v1/account/commission/BTCUSDT",
    "/v1/system-status",
    "/v1/delistings",
    "/metrics",
    "/openapi.json",
]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Replicated]:
    with replicated(tmp_path) as found:
        yield found


def test_serve_on_a_standby_answers_as_of_with_the_primary_down(
    pair: Replicated, tmp_path: Path
) -> None:
    record_exchange_info(pair.writer, exchange_info(symbol("BTCUSDT")), T0)
    halted = exchange_info(symbol("BTCUSDT", status="HALT"))
    record_exchange_info(pair.writer, halted, T1)
    record_exchange_info(pair.writer, halted, T2)
    pair.wait_for_replay()
    # The pollers' primary is not serve's concern: it never connects with it.
    with ApiServer(
        tmp_path,
        "postgresql://nobody@127.0.0.1:1/unused",
        API__DATABASE_URL=pair.standby_url,
        API__TOKEN=TOKEN,
    ) as server:
        url = server.url
        pair.primary.stop("fast")

        def get(path: str) -> requests.Response:
            return requests.get(
                url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
            )

        before = get(f"/v1/symbols/BTCUSDT?as_of={instant(timedelta(seconds=5))}")
        assert before.status_code == 200, before.text
        assert before.json()["status"] == "TRADING"
        assert before.json()["evidence"] == {
            "observed_before": ts(T0),
            "observed_after": ts(T1),
            "gap": False,
            "gap_from": None,
            "gap_to": None,
            "imported": False,
        }
        after = get(f"/v1/symbols/BTCUSDT?as_of={instant(timedelta(seconds=15))}")
        assert (after.status_code, after.json()["status"]) == (200, "HALT")
        assert after.json()["evidence"]["observed_after"] == ts(T2)
        assert get(f"/v1/symbols/BTCUSDT?as_of={instant(timedelta(seconds=15))}").json() == (
            after.json()
        )

        statuses = {path: get(path).status_code for path in ROUTES}
        assert {p: s for p, s in statuses.items() if s not in (200, 404)} == {}

        ready = get("/readyz")
        assert ready.status_code == 503  # stale: the pollers cannot write without a primary
        body = ready.json()
        assert body["reasons"] == [
            f"exchange_info: last success {ts(T2)} is older than 30 s",
            "system_status: no successful observation yet",
            "usdm_exchange_info: no successful observation yet",
            "coinm_exchange_info: no successful observation yet",
        ]
        database = body["database"]
        assert database["role"] == "standby"
        assert database["replay_paused"] is False
        assert database["replay_lag_seconds"] == 0  # it replayed all that it received
        assert database["last_replayed_at"] is not None

    log = server.log()
    assert "Traceback" not in log
