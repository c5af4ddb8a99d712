"""``exmeta changes`` prints what GET /v1/changes answers, every page of it: as a table,
or with ``--json`` as JSON Lines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from api import create_app, schemas
from core.config import Settings
from exmeta.cli import main
from tests.api_client import ok, ts
from tests.scripts import NOW, T0, T1, record_script


@pytest.fixture
def recorded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    record_script(engine)
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("EXMETA_DATABASE__URL", url)
    return engine


def api_changes(engine: Engine, query: str) -> list[dict[str, Any]]:
    """Every change the API answers for ``query``, following ``next`` with small pages."""
    client = create_app(Settings(), engine, clock=lambda: NOW).test_client()
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = ok(client.get(f"/v1/changes?{query}&limit=2{cursor}"), schemas.ChangeFeed)
        found.extend(body["changes"])
        if body["next"] is None:
            return found
        cursor = f"&next={body['next']}"


def cli_changes(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["changes", *args, "--json"]) == 0
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_cli_prints_what_the_api_answers(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = cli_changes(capsys, "--from", ts(T0), "--to", ts(NOW))
    assert printed == api_changes(recorded, f"from={ts(T0)}&to={ts(NOW)}")
    assert len(printed) == 10


def test_the_cli_filters_like_the_api(recorded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    printed = cli_changes(
        capsys,
        "--from",
        ts(T1),
        "--to",
        ts(NOW),
        "--symbol",
        "BTCUSDT",
        "--exclude-field",
        "filters.MARKET_LOT_SIZE",
    )
    query = f"from={ts(T1)}&to={ts(NOW)}&symbol=BTCUSDT&exclude_field=filters.MARKET_LOT_SIZE"
    assert printed == api_changes(recorded, query)
    assert [c["field"] for c in printed] == ["filters.PRICE_FILTER.tickSize"]


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "yesterday"],
        ["--from", ts(NOW), "--to", ts(T0)],
        ["--to", "2024-05-01T00:00:00"],
        ["--to", ""],  # "$TO" with TO unset is no instant, not now
        ["--from", ""],
    ],
)
def test_bad_times_are_one_line_and_exit_2(
    recorded: Engine, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert main(["changes", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exmeta: error: --")
    assert len(err.strip().splitlines()) == 1


def test_a_window_without_changes_prints_nothing(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    later = ts(NOW + timedelta(hours=1))
    assert cli_changes(capsys, "--from", ts(NOW), "--to", later) == []


def test_the_table_shows_each_change_in_a_row(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes", "--from", ts(T0), "--to", ts(NOW)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["changed_at", "entity", "key", "field", "old", "new"]
    rows = lines[2:]
    assert len(rows) == len(api_changes(recorded, f"from={ts(T0)}&to={ts(NOW)}")) == 10
    assert [
        ts(T1),
        "symbol",
        "BTCUSDT",
        "filters.PRICE_FILTER.tickSize",
        "0.01000000",
        "0.10000000",
    ] in [r.split() for r in rows]
    listing = next(r for r in rows if "BNBUSDT" in r)
    assert listing.split()[3:5] == ["listed", "-"]
    assert listing.endswith("…")  # the whole symbol: shortened, --json has it all


def test_an_empty_window_says_so(recorded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    later = ts(NOW + timedelta(hours=1))
    assert main(["changes", "--from", ts(NOW), "--to", later]) == 0
    assert capsys.readouterr().out == "no change in the window\n"


def test_a_to_in_the_first_hour_of_year_1_is_an_empty_window(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes", "--to", "0001-01-01T00:30:00Z"]) == 0
    assert capsys.readouterr().out == "no change in the window\n"
