"""Every read command takes one path to the data: the API's routes, run in process. So
`exmeta changes` refuses what GET /v1/changes refuses, in the route's own words."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from tests.cli_output import fails_in_one_line
from tests.conftest import DatabaseServer


@pytest.fixture
def configured(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    return engine


@pytest.mark.parametrize(
    ("args", "query"),
    [
        (["--field", ""], "field="),
        (["--symbol", "X" * 65], "symbol=" + "X" * 65),
    ],
)
def test_changes_refuses_what_the_route_refuses_in_its_words(
    configured: Engine,
    api_engine: Engine,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    query: str,
) -> None:
    answer = create_app(Settings(), api_engine).test_client().get(f"/v1/changes?{query}")
    assert answer.status_code == 400
    error = answer.json["error"] if answer.json else {}

    assert main(["changes", *args]) == 2

    assert capsys.readouterr().err == f"exmeta: error: {error['code']}: {error['message']}\n"


ORDER = ["--side", "BUY", "--type", "LIMIT", "--quantity", "1", "--price", "1"]


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        # A byte that is not UTF-8 reaches Python as a lone surrogate ("\udcff"), which no
        # URL to a route can carry.
        (["asof", "2024-05-01T00:00:00Z", "BTC\udcff"], "SYMBOL"),
        (["asof", "2024-05-01T00:00:00Z", "BTC\udcff", "--wallet"], "SYMBOL"),
        (["check", "BTC\udcff", *ORDER], "symbol"),
        (["check", "BTCUSDT", *ORDER, "--reference-price", "\udcff"], "--reference-price"),
        (["changes", "--field", "\udcff"], "--field"),
        (["changes", "--symbol", "\udcff"], "--symbol"),
    ],
)
def test_an_argument_that_is_not_utf8_is_one_line_and_exit_2(
    configured: Engine, capsys: pytest.CaptureFixture[str], args: list[str], argument: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"exmeta: error: argument {argument}: b'")
    assert "is not UTF-8 text" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["asof", "2024-05-01T00:00:00Z", "BTCUSDT"],
        ["asof", "2024-05-01T00:00:00Z"],
        ["check", "BTCUSDT", *ORDER],
        ["changes"],
        ["diff", "--from", "2024-05-01T00:00:00Z"],
        ["verify"],
    ],
)
def test_a_database_not_migrated_is_one_line_and_exit_2(
    engine: Engine,  # the API's role exists on the server, as after any migration
    pg_server: DatabaseServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.setenv("EXMETA_DATABASE__URL", pg_server.create_database("exmeta_unmigrated"))

    fails_in_one_line(capsys, args, 2, "cannot read the database: ")
