"""``exmeta asof`` prints what GET /v1/symbols/{symbol}?as_of= answers, errors included."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from tests.integration.test_api import ts
from tests.integration.test_changes import T0, T1, T2, T4, record_script


@pytest.fixture
def recorded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    record_script(engine)
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    return engine


def api_answer(engine: Engine, symbol: str, at: datetime) -> bytes:
    # The real clock, as the command's: the evidence of an instant does not depend on
    # "now" once a later observation exists, which every instant asked about here has.
    client = create_app(Settings(), engine).test_client()
    response = client.get(f"/v1/symbols/{symbol}?as_of={ts(at)}")
    assert response.status_code == 200
    return response.data


@pytest.mark.parametrize(
    ("symbol", "at", "tick_size"),
    [
        ("BTCUSDT", T0, "0.01000000"),
        ("BTCUSDT", T1 + timedelta(seconds=1), "0.10000000"),
        ("ETHUSDT", T2, "0.01000000"),
    ],
)
def test_asof_prints_the_api_answer(
    recorded: Engine,
    capsys: pytest.CaptureFixture[str],
    symbol: str,
    at: datetime,
    tick_size: str,
) -> None:
    assert main(["asof", symbol, "--at", ts(at)]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == orjson.loads(api_answer(recorded, symbol, at))
    assert printed["filters"]["PRICE_FILTER"]["tick_size"] == tick_size


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (["ETHUSDT", "--at", ts(T4)], 1, "symbol_not_listed"),
        (["BTCUSDT", "--at", ts(T0 - timedelta(seconds=1))], 1, "not_observed"),
        (["BTCUSDT", "--at", "yesterday"], 2, "--at"),
    ],
)
def test_asof_errors_are_one_line(
    recorded: Engine,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    code: str,
) -> None:
    assert main(["asof", *args]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"exmeta: error: {code}")
    assert len(captured.err.strip().splitlines()) == 1
