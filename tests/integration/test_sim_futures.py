"""The simulator's USD-M and COIN-M markets over real HTTP: each market its own document,
weight, lifecycle controls and faults, beside an unchanged spot."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from binance_sim.cli import main
from binance_sim.server import SimServer
from binance_sim.state import IN_FLIGHT_SECONDS, Market, SimState, default_fixture
from poller.parse_futures import COINM as COINM_MARKET
from poller.parse_futures import USDM as USDM_MARKET
from poller.parse_futures import FuturesMarket, futures_symbol_row, parse_futures_exchange_info
from tests.conftest import FIXTURES
from tests.sim_client import TIMEOUT, Client, FakeClock

REPO = Path(__file__).resolve().parents[2]
SPOT = "/api/v3/exchangeInfo"
USDM = "/fapi/v1/exchangeInfo"
COINM = "/dapi/v1/exchangeInfo"
WEIGHT = "X-MBX-USED-WEIGHT-1M"
USDM_2021 = FIXTURES / "futures_usdm" / "2021-09-06_133.json"


@pytest.fixture
def sim() -> Iterator[Client]:
    with requests.Session() as session, SimServer() as server:
        yield Client(session, server.url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_010.25)  # 10 s into a UTC minute


@pytest.fixture
def clocked_sim(clock: FakeClock) -> Iterator[Client]:
    with (
        requests.Session() as session,
        SimServer(SimState.from_file(clock=clock)) as server,
    ):
        yield Client(session, server.url)


def symbols(document: dict[str, Any]) -> list[str]:
    return [s["symbol"] for s in document["symbols"]]


def filters_by_type(symbol: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in symbol["filters"]}


def patch(sim: Client, market: str, symbol: str, **body: Any) -> requests.Response:
    return sim.request("PATCH", f"/_sim/markets/{market}/symbols/{symbol}", json=body)


def versions(sim: Client) -> dict[str, int]:
    return {m: sim.get(f"/_sim/markets/{m}/state").json()["version"] for m in MARKETS}


MARKETS = ("spot", "usdm", "coinm")


def test_each_market_serves_its_own_packaged_document_in_wire_key_order(sim: Client) -> None:
    usdm, coinm, spot = sim.exchange_info(USDM), sim.exchange_info(COINM), sim.exchange_info()

    assert symbols(usdm) == symbols(orjson.loads(default_fixture(Market.USDM)))
    assert list(usdm)[:7] == [
        "timezone",
        "serverTime",
        "futuresType",
        "rateLimits",
        "exchangeFilters",
        "assets",
        "symbols",
    ]
    assert usdm["futuresType"] == "U_MARGINED"
    assert {s["status"] for s in usdm["symbols"]} == {"TRADING", "SETTLING", "PENDING_TRADING"}
    assert all("contractStatus" in s and "status" not in s for s in coinm["symbols"])
    assert {s["contractStatus"] for s in coinm["symbols"]} >= {"PENDING_TRADING", "DELIVERING"}
    assert "BTCUSDT" in symbols(spot)  # the same name, another market's entity
    assert "contractType" not in sim.symbol("BTCUSDT")
    assert abs(usdm["serverTime"] - coinm["serverTime"]) < 2_000


def test_each_market_counts_its_own_weight_in_its_header(
    clocked_sim: Client, clock: FakeClock
) -> None:
    def used_after(path: str) -> int:
        return int(clocked_sim.get(path).headers[WEIGHT])

    assert used_after(USDM) == 1
    assert used_after(USDM) == 2
    assert used_after("/fapi/v1/time") == 3
    assert used_after(SPOT) == 20
    assert used_after(COINM) == 1
    assert used_after("/dapi/v1/ping") == 2
    assert used_after(USDM) == 4
    assert clocked_sim.get("/_sim/markets/usdm/weight").json() == {"total": 4, "this_minute": 4}
    assert clocked_sim.get("/_sim/weight").json() == {"total": 20, "this_minute": 20}
    clock.now += 50  # the next minute
    assert used_after(USDM) == 1
    assert clocked_sim.request("DELETE", "/_sim/markets/usdm/weight").json() == {"cleared": 5}
    assert clocked_sim.get("/_sim/markets/coinm/weight").json()["total"] == 2


def test_futures_time_and_ping_and_unknown_paths_answer_like_binance(
    clocked_sim: Client,
) -> None:
    assert clocked_sim.get("/fapi/v1/time").json() == {"serverTime": 1_700_000_010_250}
    assert clocked_sim.get("/dapi/v1/ping").content == b"{}"
    response = clocked_sim.get("/fapi/v1/premiumIndex")
    assert response.status_code == 404
    assert response.json()["code"] == -1000
    assert response.headers[WEIGHT] == "1"  # /fapi/v1/time only: a 404 costs nothing


def test_a_contract_walks_its_lifecycle_on_usdm_and_only_there(sim: Client) -> None:
    assert sim.symbol("BTCSTUSDT", USDM)["status"] == "PENDING_TRADING"
    for status in ("TRADING", "SETTLING", "CLOSE"):
        response = patch(sim, "usdm", "BTCSTUSDT", status=status)
        assert response.status_code == 200, response.text
        assert sim.symbol("BTCSTUSDT", USDM)["status"] == status
    assert versions(sim) == {"spot": 0, "usdm": 3, "coinm": 0}


def test_coinm_status_goes_to_contract_status(sim: Client) -> None:
    response = patch(sim, "coinm", "ETHUSD_260327", status="TRADING")

    assert response.status_code == 200, response.text
    served = sim.symbol("ETHUSD_260327", COINM)
    assert served["contractStatus"] == "TRADING"
    assert "status" not in served


def test_a_moved_delivery_date_is_served(sim: Client) -> None:
    response = patch(sim, "coinm", "BTCUSD_251226", delivery_date=1_767_081_600_000)

    assert response.status_code == 200, response.text
    assert sim.symbol("BTCUSD_251226", COINM)["deliveryDate"] == 1_767_081_600_000
    assert sim.symbol("BTCUSD_PERP", COINM)["deliveryDate"] == 4_133_404_800_000


def test_futures_filters_are_upserted_and_removed_by_type(sim: Client) -> None:
    before = filters_by_type(sim.symbol("BTCUSDT", USDM))
    spot_before = sim.symbol("BTCUSDT")

    response = patch(
        sim,
        "usdm",
        "BTCUSDT",
        filters=[{"filterType": "MIN_NOTIONAL", "notional": "50"}],
        remove_filters=["POSITION_RISK_CONTROL"],
    )

    assert response.status_code == 200, response.text
    after = filters_by_type(sim.symbol("BTCUSDT", USDM))
    assert after["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "50"}
    assert "POSITION_RISK_CONTROL" in before
    assert "POSITION_RISK_CONTROL" not in after
    assert after["PRICE_FILTER"] == before["PRICE_FILTER"]
    assert sim.symbol("BTCUSDT") == spot_before  # spot's BTCUSDT is another entity


def test_listing_and_delisting_a_contract_touches_only_its_market(sim: Client) -> None:
    listed = dict(sim.symbol("BTCUSDT_260327", USDM), symbol="BTCUSDT_260626")
    listed.update(status="PENDING_TRADING", contractType="NEXT_QUARTER")

    created = sim.request("PUT", "/_sim/markets/usdm/symbols/BTCUSDT_260626", json=listed)
    assert created.status_code == 201, created.text
    assert sim.symbol("BTCUSDT_260626", USDM)["status"] == "PENDING_TRADING"

    removed = sim.request("DELETE", "/_sim/markets/usdm/symbols/BTCUSDT_251226")
    assert removed.json() == {"removed": "BTCUSDT_251226"}
    assert "BTCUSDT_251226" not in symbols(sim.exchange_info(USDM))
    assert versions(sim) == {"spot": 0, "usdm": 2, "coinm": 0}
    assert sim.get("/_sim/markets/usdm/state").json()["symbols"] == 13


def test_a_market_can_be_given_a_whole_real_snapshot(sim: Client) -> None:
    response = sim.request("PUT", "/_sim/markets/usdm/exchange-info", data=USDM_2021.read_bytes())

    assert response.status_code == 200, response.text
    assert response.json()["symbols"] == 133
    served = sim.exchange_info(USDM)
    real = orjson.loads(USDM_2021.read_bytes())
    assert {k: v for k, v in served.items() if k != "serverTime"} == {
        k: v for k, v in real.items() if k != "serverTime"
    }


def test_a_market_fault_hits_that_market_only(sim: Client) -> None:
    response = sim.request(
        "POST", "/_sim/markets/usdm/faults", json={"kind": "status", "status": 503, "count": 2}
    )
    assert response.status_code == 201, response.text
    assert response.json()["endpoint"] == USDM

    assert sim.get(SPOT).status_code == 200
    assert sim.get(COINM).status_code == 200
    assert sim.get("/fapi/v1/time").status_code == 200
    assert [sim.get(USDM).status_code for _ in range(3)] == [503, 503, 200]


def test_faults_are_listed_per_market(sim: Client) -> None:
    sim.add_fault(kind="invalid_json", endpoint=COINM)
    sim.add_fault(kind="invalid_json", endpoint="*")

    coinm = sim.get("/_sim/markets/coinm/faults").json()["faults"]
    usdm = sim.get("/_sim/markets/usdm/faults").json()["faults"]

    assert [f["endpoint"] for f in coinm] == [COINM, "*"]
    assert [f["endpoint"] for f in usdm] == ["*"]


def test_a_429_back_off_bans_only_the_market_that_sent_it(sim: Client) -> None:
    sim.request("POST", "/_sim/markets/usdm/faults", json={"kind": "rate_limit"})

    assert sim.get(USDM).status_code == 429
    time.sleep(IN_FLIGHT_SECONDS + 0.1)  # past the sim's allowance for calls in flight
    assert sim.get(SPOT).status_code == 200
    assert sim.get(COINM).status_code == 200
    assert sim.get(USDM).status_code == 418


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("PATCH", "/_sim/markets/usdm/symbols/BTCUSDT", {"status": "HALT"}, 400, "one of"),
        ("PATCH", "/_sim/markets/coinm/symbols/BTCUSD_PERP", {"status": "SETTLING"}, 400, "coinm"),
        ("PATCH", "/_sim/markets/spot/symbols/BNBBTC", {"delivery_date": 1}, 400, "no delivery"),
        (
            "PATCH",
            "/_sim/markets/usdm/symbols/BTCUSDT",
            {"delivery_date": "2026-01-01"},
            400,
            "epoch milliseconds",
        ),
        ("PATCH", "/_sim/markets/usdm/symbols/BTCUSDT", {"delivery_date": -1}, 400, "at least 0"),
        ("PATCH", "/_sim/markets/usdm/symbols/NOPE", {"status": "TRADING"}, 404, "unknown symbol"),
        ("PATCH", "/_sim/markets/options/symbols/BTCUSDT", {}, 404, "not found"),
        ("POST", "/_sim/markets/usdm/faults", {"kind": "reset", "endpoint": SPOT}, 400, "usdm"),
        ("POST", "/_sim/markets/coinm/faults", {"kind": "reset", "endpoint": "*"}, 400, "'*'"),
        ("PUT", "/_sim/markets/coinm/exchange-info", {"timezone": "UTC"}, 400, "'symbols' list"),
    ],
)
def test_bad_market_control_input_is_a_json_error_and_changes_nothing(
    sim: Client, method: str, path: str, body: Any, status: int, error: str
) -> None:
    response = sim.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert error in response.json()["error"]
    assert versions(sim) == {"spot": 0, "usdm": 0, "coinm": 0}
    assert sim.get("/_sim/faults").json() == {"faults": []}


def test_cli_serves_a_given_usdm_fixture() -> None:
    command = [
        sys.executable,
        "-m",
        "binance_sim",
        "--port",
        "0",
        "--usdm-fixture",
        str(USDM_2021),
    ]
    with (
        requests.Session() as session,
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process,
    ):
        try:
            assert process.stdout is not None
            url = process.stdout.readline().removeprefix("binance_sim listening on ").strip()
            served = Client(session, url).exchange_info(USDM)
            assert len(served["symbols"]) == 133
        finally:
            process.terminate()
            process.communicate(timeout=TIMEOUT)


def test_cli_with_a_missing_coinm_fixture_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "coinm.json"

    assert main(["--coinm-fixture", str(missing)]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(missing) in err


def test_sim_help_documents_the_market_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--usdm-fixture" in out
    assert "--coinm-fixture" in out
    assert "/fapi/v1/exchangeInfo" in out


@pytest.mark.parametrize(
    ("market", "path", "contract"),
    [(USDM_MARKET, USDM, "BTCSTUSDT"), (COINM_MARKET, COINM, "ETHUSD_260327")],
)
def test_what_the_sim_serves_parses_and_a_status_change_is_one_changed_contract(
    sim: Client, market: FuturesMarket, path: str, contract: str
) -> None:
    def contracts() -> dict[tuple[Any, ...], Any]:
        response = sim.get(path)
        assert response.status_code == 200
        parsed = {k.table: k for k in parse_futures_exchange_info(response.content, market)}
        return parsed[market.table("symbol")].entities

    before = contracts()
    assert patch(sim, market.name, contract, status="TRADING").status_code == 200
    after = contracts()

    changed = {key for key in before if before[key].content_hash != after[key].content_hash}
    assert changed == {(contract,)}
    assert futures_symbol_row(market)(after[(contract,)].source)["status"] == "TRADING"
