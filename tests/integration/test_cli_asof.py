"""``exmeta asof`` and ``exmeta check``: with ``--json`` what their API routes answer,
errors included; without, the same answer as an aligned table."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from exmeta.reads import SYMBOL_HEADERS
from tests.api_client import ts
from tests.cli_output import fails_in_one_line
from tests.scripts import T0, T1, T2, T4, record_script


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
    assert main(["asof", ts(at), symbol, "--json"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == orjson.loads(api_answer(recorded, symbol, at))
    assert printed["filters"]["PRICE_FILTER"]["tick_size"] == tick_size


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        ([ts(T4), "ETHUSDT"], 1, "symbol_not_listed"),
        ([ts(T4), "BTCUSDT", "ETHUSDT"], 1, "symbol_not_listed"),
        ([ts(T0 - timedelta(seconds=1)), "BTCUSDT"], 1, "not_observed"),
        ([ts(T0 - timedelta(seconds=1))], 1, "not_observed"),
        (["yesterday", "BTCUSDT"], 2, "TIME"),
        (["2024-05-01T00:00:00"], 2, "TIME"),
        # A name is one segment of the route's path: "/" would ask another route, or none.
        ([ts(T4), ""], 2, "SYMBOL '' is empty"),
        ([ts(T4), "BTCUSDT/history"], 2, "SYMBOL 'BTCUSDT/history' holds '/'"),
        ([ts(T4), "x/../BTCUSDT"], 2, "SYMBOL 'x/../BTCUSDT' holds '/'"),
        ([ts(T4), "", "--wallet"], 2, "COIN '' is empty"),
    ],
)
def test_asof_errors_are_one_line(
    recorded: Engine,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    code: str,
) -> None:
    fails_in_one_line(capsys, ["asof", *args], status, code)


def test_check_prints_the_api_answer_and_exits_1_when_refused(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["--side", "BUY", "--type", "LIMIT", "--quantity", "0.1", "--price", "100.01"]
    assert main(["check", "BTCUSDT", *order, "--at", ts(T0), "--json"]) == 0
    accepted = orjson.loads(capsys.readouterr().out)
    assert main(["check", "BTCUSDT", *order, "--at", ts(T1), "--json"]) == 1
    refused = orjson.loads(capsys.readouterr().out)
    client = create_app(Settings(), recorded).test_client()
    query = "side=BUY&type=LIMIT&quantity=0.1&price=100.01"
    for printed, at in ((accepted, T0), (refused, T1)):
        answer = client.get(f"/v1/symbols/BTCUSDT/check?{query}&as_of={ts(at)}")
        assert printed == orjson.loads(answer.data)
    assert [v["rule"] for v in refused["violations"]] == ["PRICE_FILTER.tickSize"]


def test_check_of_a_market_order_sized_in_the_quote_asset_equals_the_api(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["--side", "SELL", "--type", "MARKET", "--quote-quantity", "250"]
    at = ["--at", ts(T0), "--reference-price", "0.1"]
    assert main(["check", "BTCUSDT", *order, *at, "--json"]) == 1
    printed = orjson.loads(capsys.readouterr().out)
    client = create_app(Settings(), recorded).test_client()
    query = f"side=SELL&type=MARKET&quote_quantity=250&reference_price=0.1&as_of={ts(T0)}"
    assert printed == orjson.loads(client.get(f"/v1/symbols/BTCUSDT/check?{query}").data)
    assert printed["order"]["quote_quantity"] == "250"
    assert main(["check", "BTCUSDT", *order, "--quantity", "1"]) == 2
    assert "not both or neither" in capsys.readouterr().err


def test_check_bad_input_is_exit_2(recorded: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "BTCUSDT", "--side", "HOLD", "--type", "LIMIT", "--quantity", "1"]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("exmeta: error: invalid_parameter")


@pytest.mark.parametrize(
    ("symbol", "start"), [("", "SYMBOL '' is empty"), ("BTC/USDT", "SYMBOL 'BTC/USDT' holds '/'")]
)
def test_check_of_a_name_no_route_can_carry_is_exit_2(
    recorded: Engine, capsys: pytest.CaptureFixture[str], symbol: str, start: str
) -> None:
    order = ["--side", "BUY", "--type", "LIMIT", "--quantity", "1", "--price", "1"]
    fails_in_one_line(capsys, ["check", symbol, *order], 2, start)


def test_asof_without_symbols_is_the_whole_exchange(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asof", ts(T2), "--json"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    client = create_app(Settings(), recorded).test_client()
    assert printed == client.get(f"/v1/symbols?as_of={ts(T2)}").json
    assert [s["symbol"] for s in printed["symbols"]] == ["BTCUSDT", "ETHUSDT"]


def test_asof_several_symbols_print_one_json_line_each(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asof", ts(T2), "BTCUSDT", "ETHUSDT", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [orjson.loads(line) for line in lines] == [
        orjson.loads(api_answer(recorded, name, T2)) for name in ("BTCUSDT", "ETHUSDT")
    ]


def test_asof_prints_an_aligned_table_of_the_same_answer(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asof", ts(T2)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"as of {ts(T2)}: 2 symbol(s)"
    assert lines[1].startswith(f"evidence: last poll before {ts(T2)}, first after ")
    header, rule, btc, eth = lines[2:]
    assert header.split() == list(SYMBOL_HEADERS)
    assert set(rule.replace(" ", "")) == {"-"}
    assert btc.split()[:3] == ["BTCUSDT", "TRADING", "0.10000000"]
    assert eth.split()[:3] == ["ETHUSDT", "BREAK", "0.01000000"]
    # aligned: every column starts where its header does
    for column in ("status", "tick_size", "valid_to"):
        start = header.index(column)
        assert btc[start - 2 : start] == "  "
        assert eth[start - 2 : start] == "  "
        assert btc[start] != " "


def test_check_prints_a_table_of_the_broken_rules_and_the_nearest_valid_order(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["--side", "BUY", "--type", "LIMIT", "--quantity", "0.1", "--price", "100.01"]
    assert main(["check", "BTCUSDT", *order, "--at", ts(T1)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"BTCUSDT as of {ts(T1)}: BUY LIMIT 0.1 at 100.01"
    assert lines[2] == "REJECTED: 1 rule(s) broken, 1 rule(s) not checked"
    assert lines[3].split() == ["verdict", "rule", "why"]
    assert lines[5].split()[:2] == ["broken", "PRICE_FILTER.tickSize"]
    assert lines[5].endswith("price 100.01 is not a multiple of 0.10000000")
    assert lines[6].split()[:3] == ["not", "checked", "account"]
    assert lines[-1] == "nearest valid: price 100.00000000, quantity 0.10000000"


@pytest.mark.parametrize(
    "args",
    [
        ["check", "BTCUSDT", "--type", "LIMIT", "--quantity", "1"],
        ["asof"],
        ["diff", "--to", "2024-05-01T00:00:00Z"],
        ["check", "BTCUSDT", "--side", "BUY", "--type", "LIMIT", "--quantity", "1", "--bogus"],
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("exmeta: error: ")
    assert len(err.strip().splitlines()) == 1
