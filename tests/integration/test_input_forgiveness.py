"""Input a person types, forgiven where the meaning is plain and refused with a hint where
it is not: symbols in any case, epoch seconds, unknown order types, names with typos.
The CLI's read commands run the same routes, so each refusal is its exit 2 as well."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema_rs
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from core.timeparse import format_instant
from exmeta.cli import main
from tests.builders import exchange_info, record_exchange_info, symbol
from tests.futures_replay import COINM_AT, record_coinm

T = datetime(2024, 5, 1, 12, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 13, tzinfo=UTC)
AT = format_instant(LATER)


@pytest.fixture
def recorded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    document = exchange_info(symbol("ETHBTC", quote="BTC"), symbol("BTCUSDT"))
    record_exchange_info(engine, document, T)
    record_exchange_info(engine, document, LATER)
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    return engine


@pytest.fixture
def client(recorded: Engine, api_engine: Engine) -> FlaskClient:
    return create_app(Settings(), api_engine).test_client()


def error(client: FlaskClient, url: str, status: int, code: str) -> str:
    response = client.get(url)
    assert response.status_code == status, response.data[:500]
    body = response.json
    assert body is not None
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize("spelling", ["ethbtc", "EthBtc", "ETHBTC"])
def test_a_symbol_in_any_case_is_answered_in_binances_spelling(
    client: FlaskClient, spelling: str
) -> None:
    answer = client.get(f"/v1/symbols/{spelling}?as_of={AT}")
    assert answer.status_code == 200, answer.data[:300]
    assert answer.json is not None
    assert answer.json["symbol"] == "ETHBTC"
    history = client.get(f"/v1/symbols/{spelling}/history")
    assert history.status_code == 200
    assert history.json is not None
    assert history.json["symbol"] == "ETHBTC"
    assert history.json["versions"]
    check = client.get(
        f"/v1/symbols/{spelling}/check?as_of={AT}&side=BUY&type=LIMIT&quantity=1&price=0.05"
    )
    assert check.status_code == 200
    assert check.json is not None
    assert check.json["symbol"] == "ETHBTC"
    feed = client.get(f"/v1/changes?symbol={spelling}&from=2024-05-01T00:00:00Z&to={AT}")
    assert feed.json is not None
    assert {c["key"] for c in feed.json["changes"]} == {"ETHBTC"}


def test_a_futures_symbol_in_any_case_is_answered(engine: Engine, api_engine: Engine) -> None:
    record_coinm(engine)
    client = create_app(Settings(), api_engine).test_client()
    answer = client.get(f"/v1/symbols/btcusd_perp?market=coinm&as_of={format_instant(COINM_AT[1])}")
    assert answer.status_code == 200, answer.data[:300]
    assert answer.json is not None
    assert answer.json["symbol"] == "BTCUSD_PERP"


def test_only_ascii_letters_are_folded(client: FlaskClient) -> None:
    """A non-ASCII symbol keeps its letters: "ß" is not "SS" (str.upper would make it so)."""
    message = error(client, f"/v1/symbols/ethbtcß?as_of={AT}", 404, "symbol_not_listed")
    assert message.startswith("ETHBTCß was not listed")


def test_the_cli_reads_a_symbol_in_any_case(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asof", AT, "ethbtc"]) == 0
    assert "ETHBTC" in capsys.readouterr().out
    assert main(["changes", "--symbol", "ethbtc", "--from", format_instant(T), "--json"]) == 0
    assert '"key":"ETHBTC"' in capsys.readouterr().out


def test_epoch_seconds_are_a_400_that_says_so(client: FlaskClient) -> None:
    message = error(client, "/v1/symbols/ETHBTC?as_of=1796275095", 400, "invalid_time")
    assert "looks like epoch seconds" in message
    assert "1796275095000" in message


def test_an_unencoded_plus_is_a_400_that_says_to_encode_it(client: FlaskClient) -> None:
    message = error(
        client, "/v1/symbols/ETHBTC?as_of=2024-05-01T14:00:00+02:00", 400, "invalid_time"
    )
    assert "%2B" in message
    assert client.get("/v1/symbols/ETHBTC?as_of=2024-05-01T14:00:00%2B02:00").status_code == 200


def test_the_cli_refuses_epoch_seconds(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asof", "1796275095", "ETHBTC"]) == 2
    assert "looks like epoch seconds" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("market", "typed", "hint"),
    [
        ("spot", "LIMTI", "LIMIT"),
        ("spot", "limit", "LIMIT"),
        ("spot", "STOP_MARKET", "MARKET"),  # a futures type, not a spot one
        ("coinm", "STOP_LOSS_LIMIT", None),  # a spot type, not a futures one
        ("spot", "ICEBERG", None),
    ],
)
def test_an_order_type_the_market_does_not_know_is_an_input_error(
    client: FlaskClient, market: str, typed: str, hint: str | None
) -> None:
    url = f"/v1/symbols/ETHBTC/check?market={market}&side=BUY&type={typed}&quantity=1&price=1"
    message = error(client, url, 400, "invalid_parameter")
    assert f"{typed} is not a {market} order type" in message
    if typed in ("STOP_MARKET", "STOP_LOSS_LIMIT"):
        assert "(it is one of " in message
    if hint is None:
        assert "did you mean" not in message
    else:
        assert f"did you mean {hint}?" in message


def test_a_known_type_the_symbol_does_not_take_stays_a_broken_rule(client: FlaskClient) -> None:
    answer = client.get(
        f"/v1/symbols/ETHBTC/check?as_of={AT}&side=BUY&type=STOP_LOSS_LIMIT&quantity=200&price=0.05"
    )
    assert answer.status_code == 200
    assert answer.json is not None
    assert [v["rule"] for v in answer.json["violations"]] == ["orderTypes"]


def test_the_cli_check_of_an_unknown_type_exits_2(
    recorded: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["--side", "BUY", "--type", "LIMTI", "--quantity", "1", "--price", "0.05"]
    assert main(["check", "ETHBTC", *order, "--at", AT]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "did you mean LIMIT?" in captured.err


@pytest.mark.parametrize(
    ("url", "code", "hint"),
    [
        ("/v1/symbols/ETHBTC?asof=2024-05-01T13:00:00Z", "unknown_parameter", "as_of"),
        ("/v1/symbols?market=spto", "invalid_parameter", "spot"),
        ("/v1/changes?stream=exchangeinfo", "invalid_parameter", "exchange_info"),
        ("/v1/observations?stream=exchange_infos", "invalid_parameter", "exchange_info"),
        ("/v1/changes?feild=status", "unknown_parameter", "field"),
    ],
)
def test_an_unknown_name_gets_the_close_one(
    client: FlaskClient, url: str, code: str, hint: str
) -> None:
    assert f"did you mean {hint}?" in error(client, url, 400, code)


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["asfo", AT], "asof"),
        (["asof", AT, "--market", "spto"], "spot"),
        (["changes", "--stream", "exchangeinfo"], "exchange_info"),
        (["check", "ETHBTC", "--side", "BUY", "--type", "LIMIT", "--quantiy", "1"], "--quantity"),
        (["diff", "--from", AT, "--markte", "spot"], "--market"),
    ],
)
def test_the_cli_suggests_the_close_name(
    capsys: pytest.CaptureFixture[str], args: list[str], hint: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert f"did you mean {hint}?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "code", "hint"),
    [
        (f"/v1/symbols/ETHBTCC?as_of={AT}", "symbol_not_listed", "ETHBTC"),
        (
            f"/v1/symbols/btcustd/check?as_of={AT}&side=BUY&type=LIMIT&quantity=1",
            "symbol_not_listed",
            "BTCUSDT",
        ),
        ("/v1/symbols/ETHBTCC/history", "symbol_never_seen", "ETHBTC"),
    ],
)
def test_a_symbol_close_to_one_listed_gets_it(
    client: FlaskClient, url: str, code: str, hint: str
) -> None:
    assert error(client, url, 404, code).endswith(f"(did you mean {hint}?)")


def test_a_symbol_unlike_any_gets_no_suggestion(client: FlaskClient) -> None:
    assert "did you mean" not in error(
        client, f"/v1/symbols/ETHUSDT?as_of={AT}", 404, "symbol_not_listed"
    )


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.parametrize("order_type", ["LIMIT", "LIMIT_MAKER", "STOP_MARKET", "LIMTI"])
def test_the_published_order_types_are_exactly_the_accepted_ones(
    client: FlaskClient, market: str, order_type: str
) -> None:
    """The document states each market's types (``if``/``then``/``else`` on market): a
    client that checks its query against it is refused for no other type."""
    spec = client.get("/openapi.json").json
    assert spec is not None
    (query,) = [
        p
        for p in spec["paths"]["/v1/symbols/{symbol}/check"]["get"]["parameters"]
        if p["in"] == "query"
    ]
    instance = {"market": market, "side": "BUY", "type": order_type, "quantity": "1"}
    published = jsonschema_rs.Draft202012Validator(query["schema"]).is_valid(instance)
    response = client.get("/v1/symbols/ETHBTC/check", query_string=instance)
    # A valid query about a symbol usdm never listed is a 404, not a 400.
    assert (response.status_code != 400) == published, response.data[:300]
