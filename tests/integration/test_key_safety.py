"""The key-safety gate, the sim's refusals of bad signed requests, and `exmeta poll`'s exit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine

from binance_sim.server import SimServer
from core.config import Secret
from poller.signed_jobs import UnsafeKeyError, unsafe_permissions
from poller.signing import Signer, signed_query
from tests.builders import sim_env
from tests.signed_sim import API_KEY, API_SECRET, jobs_by_stream, register_key, sim_settings

REPO = Path(__file__).resolve().parents[2]


def test_read_only_flags_are_safe_and_anything_else_is_not() -> None:
    assert unsafe_permissions({"enableReading": True, "enableFixReadOnly": True}) == []
    assert unsafe_permissions(
        {
            "ipRestrict": True,
            "enableReading": True,
            "enableWithdrawals": True,
            "permitsUniversalTransfer": True,
            "enableSomethingNew": True,
            "enableMargin": False,
        }
    ) == ["enableSomethingNew", "enableWithdrawals", "permitsUniversalTransfer"]


@pytest.mark.parametrize(
    "power", ["enableWithdrawals", "enableInternalTransfer", "enableSpotAndMarginTrading"]
)
def test_a_key_that_can_do_more_than_read_is_refused(
    engine: Engine, sim: SimServer, power: str
) -> None:
    register_key(sim, **{power: True})
    with pytest.raises(UnsafeKeyError, match=f"can do more than read \\({power}\\)"):
        jobs_by_stream(sim_settings(sim), engine)


def test_allow_unsafe_key_polls_with_a_warning(
    engine: Engine, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    register_key(sim, enableWithdrawals=True, ipRestrict=False)
    settings = sim_settings(sim, binance={"allow_unsafe_key": True})
    with caplog.at_level(logging.WARNING, logger="poller"):
        jobs = jobs_by_stream(settings, engine)
    assert jobs["account"].run().outcome == "changed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("enableWithdrawals" in w and "polling anyway" in w for w in warnings)
    assert any("no IP restriction" in w for w in warnings)


def test_an_unknown_key_is_refused_with_binance_s_reason(engine: Engine, sim: SimServer) -> None:
    with pytest.raises(UnsafeKeyError, match="-2015"):
        jobs_by_stream(sim_settings(sim), engine)


def _signed_url(sim: SimServer, secret: str, timestamp_ms: int) -> str:
    query = signed_query([], Signer(hmac_secret=Secret(secret)), timestamp_ms, 5000)
    return f"{sim.url}/api/v3/account?{query}"


@pytest.mark.parametrize(
    ("key", "secret", "skew_ms", "status", "code"),
    [
        (None, API_SECRET, 0, 401, -2014),
        ("unknownKey123", API_SECRET, 0, 401, -2015),
        (API_KEY, "not-the-secret", 0, 400, -1022),
        (API_KEY, API_SECRET, -6000, 400, -1021),
        (API_KEY, API_SECRET, 1500, 400, -1021),
    ],
    ids=["no-key", "unknown-key", "bad-signature", "too-old", "from-the-future"],
)
def test_the_sim_refuses_bad_signed_requests_as_binance_does(
    sim: SimServer, key: str | None, secret: str, skew_ms: int, status: int, code: int
) -> None:
    register_key(sim)
    headers = {} if key is None else {"X-MBX-APIKEY": key}
    url = _signed_url(sim, secret, int(time.time() * 1000) + skew_ms)
    response = requests.get(url, headers=headers, timeout=5)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "msg"}
    good = requests.get(
        _signed_url(sim, API_SECRET, int(time.time() * 1000)),
        headers={"X-MBX-APIKEY": API_KEY},
        timeout=5,
    )
    assert good.status_code == 200


def test_a_tampered_query_fails_the_signature(sim: SimServer) -> None:
    register_key(sim)
    url = _signed_url(sim, API_SECRET, int(time.time() * 1000)).replace(
        "recvWindow=5000", "recvWindow=6000"
    )
    response = requests.get(url, headers={"X-MBX-APIKEY": API_KEY}, timeout=5)
    assert (response.status_code, response.json()["code"]) == (400, -1022)


def _poll_env(sim: SimServer, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXMETA_")}
    env.update(
        EXMETA_DATABASE__URL=database_url,
        **sim_env(sim.url),
        EXMETA_BINANCE__API_KEY=API_KEY,
        EXMETA_BINANCE__API_SECRET=API_SECRET,
        **extra,
    )
    return env


def test_exmeta_poll_exits_non_zero_with_one_clear_line_for_a_key_that_can_withdraw(
    sim: SimServer, database_url: str, tmp_path: Path
) -> None:
    register_key(sim, enableWithdrawals=True)
    result = subprocess.run(
        [sys.executable, "-m", "exmeta", "poll"],
        cwd=tmp_path,  # no config.toml here: defaults + environment only
        env={**_poll_env(sim, database_url), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("exmeta: error: account stream: the API key can do more than read")
    assert "enableWithdrawals" in last
    assert "allow_unsafe_key" in last
    assert API_SECRET not in result.stderr
    assert API_KEY not in result.stderr


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PUT", "/system-status", {"status": 2, "msg": "x"}, '"status": 0 | 1'),
        ("PUT", "/clock", {"offset_ms": "3s"}, "offset_ms must be an integer"),
        ("PUT", "/delist-schedule", {"schedule": [{"symbols": []}]}, "delistTime"),
        ("PATCH", "/keys/nobody/restrictions", {"enableWithdrawals": True}, "unknown API key"),
        ("PUT", f"/keys/{API_KEY}", {}, "exactly one of"),
        ("PATCH", "/account", {"fields": {"balances": []}}, "set balances with 'balances'"),
        ("PATCH", "/account", {"balances": {"BTC": {"free": 1}}}, "{free, locked} strings"),
    ],
)
def test_the_sim_control_api_refuses_bad_input_with_a_reason(
    sim: SimServer, method: str, path: str, body: object, message: str
) -> None:
    response = requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["error"]
