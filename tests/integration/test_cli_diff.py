"""``exmeta diff`` answers what GET /v1/diff answers: as JSON with ``--json``, else a table."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import combinations

import orjson
import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from tests.api_client import ts
from tests.cli_output import fails_in_one_line
from tests.scripts import NOW, SCRIPT, T0, T1, T2, T5, record_script


@pytest.fixture
def recorded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    record_script(engine)
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    return engine


INSTANTS = [when for when, _ in SCRIPT]


@pytest.mark.parametrize(("start", "end"), list(combinations(INSTANTS, 2)))
def test_diff_json_equals_the_api_for_every_pair_of_instants(
    recorded: Engine, capsys: pytest.CaptureFixture[str], start: datetime, end: datetime
) -> None:
    assert main(["diff", "--from", ts(start), "--to", ts(end), "--json"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    client = create_app(Settings(), recorded).test_client()
    assert printed == client.get(f"/v1/diff?from={ts(start)}&to={ts(end)}").json


def test_diff_table_lists_what_was_added_removed_and_changed(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", "--from", ts(T0), "--to", ts(T5)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"from {ts(T0)} to {ts(T5)}"
    assert lines[3].split() == ["entity", "change", "key", "field", "old", "new"]
    rows = [line.split() for line in lines[5:]]
    assert ["symbols", "added", "BNBUSDT", "-", "-", "-"] in rows
    assert ["symbols", "removed", "ETHUSDT", "-", "-", "-"] in rows
    assert [
        "symbols",
        "changed",
        "BTCUSDT",
        "filters.PRICE_FILTER.tickSize",
        "0.01000000",
        "0.10000000",
    ] in rows
    assert ["rate_limits", "changed", "REQUEST_WEIGHT:MINUTE:1", "limit", "6000", "5000"] in rows


def test_no_difference_says_so(recorded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--from", ts(T0), "--to", ts(T1 - timedelta(seconds=1))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no difference"


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (["--from", "yesterday"], 2, "--from"),
        (["--from", ts(T2), "--to", "now"], 2, "--to"),
        (["--from", ts(T2), "--to", ts(T1)], 2, "invalid_window"),
        (["--from", ts(T0 - timedelta(days=1)), "--to", ts(NOW)], 1, "not_observed"),
    ],
)
def test_diff_errors_are_one_line(
    recorded: Engine,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    code: str,
) -> None:
    fails_in_one_line(capsys, ["diff", *args], status, code)
