"""The Binance simulator over real HTTP: what a poller sees and what the control API changes."""

import select
import signal
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
from tests.sim_client import Client, FakeClock

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TIMEOUT = 10


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def sim(session: requests.Session) -> Iterator[Client]:
    with SimServer() as server:
        yield Client(session, server.url)


@pytest.fixture
def clock() -> FakeClock:
    # 30 s into a UTC minute; .25 is exact in binary, so milliseconds come out exact.
    return FakeClock(1_700_000_010.25)


@pytest.fixture
def clocked_sim(session: requests.Session, clock: FakeClock) -> Iterator[Client]:
    state = SimState.from_file(clock=clock)
    with SimServer(state) as server:
        yield Client(session, server.url)


def packaged_symbols() -> list[str]:
    return [symbol["symbol"] for symbol in orjson.loads(default_fixture())["symbols"]]


def filters_by_type(symbol: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in symbol["filters"]}


def new_symbol(name: str) -> dict[str, Any]:
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": name[:-4],
        "quoteAsset": "USDT",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000",
                "tickSize": "0.01",
            }
        ],
    }


# -- Binance endpoints -------------------------------------------------------------------------


def test_exchange_info_serves_the_fixture_symbols_with_a_fresh_server_time(sim: Client) -> None:
    response = sim.get("/api/v3/exchangeInfo")
    now_ms = time.time() * 1000

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    document = orjson.loads(response.content)
    assert list(document)[:5] == [
        "timezone",
        "serverTime",
        "rateLimits",
        "exchangeFilters",
        "symbols",
    ]
    assert [s["symbol"] for s in document["symbols"]] == packaged_symbols()
    assert isinstance(document["serverTime"], int)
    assert abs(document["serverTime"] - now_ms) < 2_000


def test_server_time_is_the_sim_clock_in_milliseconds_on_every_endpoint(
    clocked_sim: Client, clock: FakeClock
) -> None:
    assert clocked_sim.exchange_info()["serverTime"] == 1_700_000_010_250
    clock.now += 1.5
    assert clocked_sim.exchange_info()["serverTime"] == 1_700_000_011_750
    assert clocked_sim.get("/api/v3/time").json() == {"serverTime": 1_700_000_011_750}


def test_used_weight_grows_by_endpoint_weight_and_resets_each_whole_minute(
    clocked_sim: Client, clock: FakeClock
) -> None:
    def used_after(path: str) -> int:
        return int(clocked_sim.get(path).headers["X-MBX-USED-WEIGHT-1M"])

    assert used_after("/api/v3/exchangeInfo") == 20
    assert used_after("/api/v3/exchangeInfo") == 40
    assert used_after("/api/v3/time") == 41
    assert used_after("/api/v3/ping") == 42
    clock.now += 29.5  # still the same minute
    assert used_after("/api/v3/exchangeInfo") == 62
    clock.now += 0.5  # the next minute starts
    assert used_after("/api/v3/ping") == 1


def test_total_weight_counts_across_minutes_until_cleared(
    clocked_sim: Client, clock: FakeClock
) -> None:
    clocked_sim.get("/api/v3/exchangeInfo")
    clock.now += 60
    clocked_sim.get("/api/v3/time")
    clocked_sim.get("/api/v3/unknown")  # Binance charges nothing for a 404

    assert clocked_sim.get("/_sim/weight").json() == {"total": 21, "this_minute": 1}
    assert clocked_sim.request("DELETE", "/_sim/weight").json() == {"cleared": 21}
    clocked_sim.get("/api/v3/ping")
    assert clocked_sim.get("/_sim/weight").json() == {"total": 1, "this_minute": 2}


def test_time_and_ping_answer_like_binance(sim: Client) -> None:
    time_response = sim.get("/api/v3/time")
    ping_response = sim.get("/api/v3/ping")

    assert time_response.status_code == 200
    assert list(time_response.json()) == ["serverTime"]
    assert abs(time_response.json()["serverTime"] - time.time() * 1000) < 2_000
    assert ping_response.status_code == 200
    assert ping_response.content == b"{}"
    for response in (time_response, ping_response):
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert "X-MBX-USED-WEIGHT-1M" in response.headers


def test_unknown_binance_path_is_a_binance_shaped_404(sim: Client) -> None:
    response = sim.get("/api/v3/klinez")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert set(response.json()) == {"code", "msg"}
    assert response.json()["code"] < 0


# -- changing the document ---------------------------------------------------------------------


def test_patched_status_and_filter_show_in_the_next_response_and_other_filters_stay(
    sim: Client,
) -> None:
    before = sim.symbol("BNBBTC")
    new_price_filter = {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.00000200",
        "maxPrice": "2000.00000000",
        "tickSize": "0.00000200",
    }
    max_position = {"filterType": "MAX_POSITION", "maxPosition": "100.00000000"}

    response = sim.request(
        "PATCH",
        "/_sim/symbols/BNBBTC",
        json={"fields": {"status": "BREAK"}, "filters": [new_price_filter, max_position]},
    )

    assert response.status_code == 200, response.text
    after = sim.symbol("BNBBTC")
    assert after["status"] == "BREAK"
    after_filters, before_filters = filters_by_type(after), filters_by_type(before)
    assert after_filters["PRICE_FILTER"] == new_price_filter
    assert after_filters["MAX_POSITION"] == max_position
    # Replaced where it stood, a new type appended: no duplicates, no reshuffling.
    assert [f["filterType"] for f in after["filters"]] == [
        *(f["filterType"] for f in before["filters"]),
        "MAX_POSITION",
    ]
    untouched = set(before_filters) - {"PRICE_FILTER"}
    assert {t: after_filters[t] for t in untouched} == {t: before_filters[t] for t in untouched}
    assert {k: v for k, v in after.items() if k not in ("status", "filters")} == {
        k: v for k, v in before.items() if k not in ("status", "filters")
    }
    assert sim.symbol("ETHBTC") == sim.get("/_sim/symbols/ETHBTC").json()


def test_remove_filters_drops_only_the_named_filter_types(sim: Client) -> None:
    before = filters_by_type(sim.symbol("ETHBTC"))
    assert {"LOT_SIZE", "ICEBERG_PARTS"} <= set(before)

    response = sim.request(
        "PATCH", "/_sim/symbols/ETHBTC", json={"remove_filters": ["LOT_SIZE", "ICEBERG_PARTS"]}
    )

    assert response.status_code == 200, response.text
    after = filters_by_type(sim.symbol("ETHBTC"))
    assert set(after) == set(before) - {"LOT_SIZE", "ICEBERG_PARTS"}
    assert all(after[t] == before[t] for t in after)


def test_added_symbol_is_served_and_removed_symbol_disappears(sim: Client) -> None:
    added = sim.request("PUT", "/_sim/symbols/NEWUSDT", json=new_symbol("NEWUSDT"))
    assert added.status_code == 201, added.text
    assert sim.symbol("NEWUSDT") == new_symbol("NEWUSDT")

    replaced = sim.request(
        "PUT", "/_sim/symbols/NEWUSDT", json={**new_symbol("NEWUSDT"), "status": "BREAK"}
    )
    assert replaced.status_code == 200, replaced.text
    assert sim.symbol("NEWUSDT")["status"] == "BREAK"

    removed = sim.request("DELETE", "/_sim/symbols/ETHBTC")
    assert removed.status_code == 200, removed.text
    names = [s["symbol"] for s in sim.exchange_info()["symbols"]]
    assert "ETHBTC" not in names
    assert names == [*[n for n in packaged_symbols() if n != "ETHBTC"], "NEWUSDT"]
    assert sim.get("/_sim/symbols/ETHBTC").status_code == 404


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"fields": {"status": "BREAK"}}),
        ("DELETE", None),
        ("GET", None),
    ],
)
def test_unknown_symbol_is_404_json(sim: Client, method: str, body: Any) -> None:
    response = sim.request(method, "/_sim/symbols/NOSUCHPAIR", json=body)

    assert response.status_code == 404
    assert "NOSUCHPAIR" in response.json()["error"]


def test_each_change_bumps_the_state_version(sim: Client) -> None:
    assert sim.get("/_sim/state").json()["version"] == 0

    sim.request("PATCH", "/_sim/symbols/BNBBTC", json={"fields": {"status": "BREAK"}})
    sim.request("DELETE", "/_sim/symbols/BNBBTC")

    state = sim.get("/_sim/state").json()
    assert state["version"] == 2
    assert state["symbols"] == len(packaged_symbols()) - 1


def test_replacing_the_document_with_a_real_snapshot_serves_all_its_symbols(sim: Client) -> None:
    snapshot = (FIXTURES / "2022-11-28_2124.json").read_bytes()

    response = sim.request(
        "PUT", "/_sim/exchange-info", data=snapshot, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["symbols"] == 2124
    served = sim.exchange_info()
    expected = orjson.loads(snapshot)
    assert len(served["symbols"]) == 2124
    assert served["symbols"] == expected["symbols"]
    assert served["rateLimits"] == expected["rateLimits"]
    assert served["serverTime"] != expected["serverTime"]


# -- faults ------------------------------------------------------------------------------------


def test_status_fault_fails_exactly_the_next_n_responses(sim: Client) -> None:
    sim.add_fault(kind="status", status=503, count=2)

    responses = [sim.get("/api/v3/exchangeInfo") for _ in range(3)]

    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].json()["code"] == -1008
    assert "overloaded" in responses[0].json()["msg"]
    assert all("X-MBX-USED-WEIGHT-1M" in r.headers for r in responses)
    assert sim.get("/_sim/faults").json() == {"faults": []}


def test_invalid_json_fault_body_does_not_parse(sim: Client) -> None:
    sim.add_fault(kind="invalid_json")

    faulted = sim.get("/api/v3/exchangeInfo")

    assert faulted.status_code == 200
    assert faulted.headers["Content-Type"] == "application/json;charset=UTF-8"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(faulted.content)
    assert len(sim.exchange_info()["symbols"]) == len(packaged_symbols())


@pytest.mark.parametrize(("requested", "served"), [({}, 451), ({"status": 200}, 200)])
def test_geo_block_fault_returns_the_restricted_location_body(
    sim: Client, requested: dict[str, int], served: int
) -> None:
    sim.add_fault(kind="geo_block", **requested)

    response = sim.get("/api/v3/exchangeInfo")

    assert response.status_code == served
    expected = orjson.loads((FIXTURES / "restricted_location_2022-12-07.json").read_bytes())
    assert orjson.loads(response.content) == expected
    assert sim.get("/api/v3/exchangeInfo").status_code == 200


def test_fault_hits_only_its_endpoint_unless_it_is_a_wildcard(sim: Client) -> None:
    sim.add_fault(kind="status", status=500)

    assert sim.get("/api/v3/ping").status_code == 200
    assert sim.get("/api/v3/time").status_code == 200
    assert sim.get("/api/v3/exchangeInfo").status_code == 500

    sim.add_fault(kind="status", status=502, endpoint="*", count=3)

    assert [sim.get(p).status_code for p in ("/api/v3/ping", "/api/v3/time")] == [502, 502]
    assert sim.get("/api/v3/exchangeInfo").json() == {
        "code": -1000,
        "msg": "An unknown error occurred while processing the request.",
    }
    assert sim.get("/api/v3/ping").status_code == 200


def test_pending_faults_can_be_listed_and_cleared(sim: Client) -> None:
    sim.add_fault(kind="status", status=504, count=5)

    assert sim.get("/_sim/faults").json() == {
        "faults": [
            {
                "kind": "status",
                "endpoint": "/api/v3/exchangeInfo",
                "remaining": 5,
                "status": 504,
                "delay_seconds": None,
                "retry_after": None,
                "chunk_bytes": None,
            }
        ]
    }
    assert sim.request("DELETE", "/_sim/faults").json() == {"cleared": 1}
    assert sim.get("/api/v3/exchangeInfo").status_code == 200


@pytest.mark.parametrize(
    ("kind", "broken"), [("truncated", "IncompleteRead"), ("reset", "Connection reset")]
)
def test_cut_short_faults_send_part_of_the_promised_body(
    sim: Client, kind: str, broken: str
) -> None:
    sim.add_fault(kind=kind)

    with pytest.raises(requests.exceptions.ChunkedEncodingError, match=broken):
        sim.get("/api/v3/exchangeInfo")

    assert len(sim.exchange_info()["symbols"]) == len(packaged_symbols())


def test_slow_fault_answers_after_its_delay(sim: Client) -> None:
    sim.add_fault(kind="slow", delay_seconds=0.6)

    with pytest.raises(requests.exceptions.ReadTimeout):
        sim.session.get(sim.url + "/api/v3/exchangeInfo", timeout=(1, 0.2))
    started = time.monotonic()
    sim.add_fault(kind="slow", delay_seconds=0.6)
    assert sim.get("/api/v3/exchangeInfo").status_code == 200
    assert time.monotonic() - started >= 0.6


def test_trickle_fault_sends_the_whole_answer_a_chunk_at_a_time(sim: Client) -> None:
    whole = sim.get("/api/v3/exchangeInfo").content
    sim.add_fault(kind="trickle", chunk_bytes=len(whole) // 4 + 1, delay_seconds=0.3)

    started = time.monotonic()
    with sim.session.get(sim.url + "/api/v3/exchangeInfo", timeout=(1, 1), stream=True) as r:
        arrivals = [time.monotonic() - started for _ in r.raw.stream(1, decode_content=False)]

    assert len(arrivals) == len(whole)  # all of it, byte for byte...
    assert arrivals[-1] >= 0.9  # ...four chunks, 0.3 s apart, though no read waited 1 s


def test_error_body_fault_is_a_200_carrying_a_binance_error(sim: Client) -> None:
    sim.add_fault(kind="error_body")

    faulted = sim.get("/api/v3/exchangeInfo")

    assert faulted.status_code == 200
    assert faulted.json()["code"] == -1001


def test_calling_during_a_429_back_off_earns_a_418_ban_once_the_429_could_be_read(
    session: requests.Session, clock: FakeClock
) -> None:
    state = SimState.from_file(clock=clock)
    with SimServer(state) as server:
        sim = Client(session, server.url)
        sim.add_fault(kind="rate_limit", retry_after=5)

        limited = sim.get("/api/v3/exchangeInfo")
        in_flight = sim.get("/api/v3/ping")  # as if sent before the 429 came back
        wait_until_told(state)  # the server has finished sending the 429 (on its clock)
        clock.now += IN_FLIGHT_SECONDS + 0.25
        banned = sim.get("/api/v3/ping")  # any endpoint: the limit is per IP
        log = sim.get("/_sim/requests").json()["requests"]

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "5")
    assert limited.json()["code"] == -1003
    assert (in_flight.status_code, in_flight.headers["Retry-After"]) == (429, "5")
    assert (banned.status_code, banned.headers["Retry-After"]) == (418, "120")
    assert "banned until" in banned.json()["msg"]
    assert [(r["status"], r["fault"]) for r in log] == [
        (429, "rate_limit"),
        (429, "rate_limit"),
        (418, "ip_ban"),
    ]


def wait_until_told(state: SimState) -> None:
    deadline = time.monotonic() + TIMEOUT
    while state.book(Market.SPOT).backoff_told_at is None:
        assert time.monotonic() < deadline, "the 429 was never sent"
        time.sleep(0.005)


def test_waiting_out_a_429_is_not_banned(sim: Client) -> None:
    sim.add_fault(kind="rate_limit", retry_after=1)
    assert sim.get("/api/v3/exchangeInfo").status_code == 429

    time.sleep(1.05)

    assert sim.get("/api/v3/exchangeInfo").status_code == 200


def test_chaos_fails_about_its_rate_and_replays_with_its_seed(sim: Client) -> None:
    chaos = {
        "rate": 0.3,
        "seed": 42,
        "faults": [{"kind": "status", "status": 502, "endpoint": "*"}],
    }

    def run() -> list[int]:
        assert sim.request("PUT", "/_sim/chaos", json=chaos).status_code == 200
        return [sim.get("/api/v3/ping").status_code for _ in range(200)]

    first, second = run(), run()

    assert first == second
    assert 40 <= first.count(502) <= 80
    assert set(first) == {200, 502}
    assert sim.request("DELETE", "/_sim/chaos").json() == {"chaos": None}
    assert {sim.get("/api/v3/ping").status_code for _ in range(20)} == {200}


# -- request log -------------------------------------------------------------------------------


def test_request_log_records_binance_requests_with_status_and_fault(sim: Client) -> None:
    sim.add_fault(kind="status", status=503)
    started = time.time()
    sim.get("/api/v3/exchangeInfo", params={"symbol": "ETHBTC"})
    sim.get("/api/v3/exchangeInfo")
    sim.get("/api/v3/nope")

    log = sim.get("/_sim/requests").json()["requests"]

    assert [(r["method"], r["path"], r["query"], r["status"], r["fault"]) for r in log] == [
        ("GET", "/api/v3/exchangeInfo", "symbol=ETHBTC", 503, "status"),
        ("GET", "/api/v3/exchangeInfo", "", 200, None),
        ("GET", "/api/v3/nope", "", 404, None),
    ]
    assert all(started - 1 < r["received_at"] < time.time() + 1 for r in log)
    since = log[0]["received_at"]
    later = sim.get("/_sim/requests", params={"since": since}).json()["requests"]
    assert later == log[1:]
    assert sim.request("DELETE", "/_sim/requests").json() == {"cleared": 3}
    assert sim.get("/_sim/requests").json() == {"requests": []}


# -- bad control input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("POST", "/_sim/faults", b"{not json", "not valid JSON"),
        ("POST", "/_sim/faults", b"[]", "must be a JSON object"),
        ("POST", "/_sim/faults", {"kind": "explode"}, "kind must be one of"),
        ("POST", "/_sim/faults", {"kind": "status"}, "needs a status"),
        ("POST", "/_sim/faults", {"kind": "status", "status": 200}, "400..599"),
        ("POST", "/_sim/faults", {"kind": "status", "status": "503"}, "must be an integer"),
        ("POST", "/_sim/faults", {"kind": "invalid_json", "count": 0}, "at least 1"),
        ("POST", "/_sim/faults", {"kind": "invalid_json", "count": True}, "must be an integer"),
        ("POST", "/_sim/faults", {"kind": "invalid_json", "status": 500}, "takes no status"),
        (
            "POST",
            "/_sim/faults",
            {"kind": "invalid_json", "endpoint": "/api/v3/exchangeinfo"},
            "endpoint must be one of",
        ),
        ("POST", "/_sim/faults", {"kind": "geo_block", "times": 2}, "unknown keys"),
        ("POST", "/_sim/faults", {"kind": "slow"}, "delay_seconds is required"),
        ("POST", "/_sim/faults", {"kind": "slow", "delay_seconds": 0}, "must be in"),
        ("POST", "/_sim/faults", {"kind": "slow", "delay_seconds": "1"}, "must be a number"),
        ("POST", "/_sim/faults", {"kind": "reset", "delay_seconds": 1}, "taken by no other"),
        ("POST", "/_sim/faults", {"kind": "trickle", "delay_seconds": 1}, "chunk_bytes is"),
        ("POST", "/_sim/faults", {"kind": "trickle", "chunk_bytes": 10}, "delay_seconds is"),
        (
            "POST",
            "/_sim/faults",
            {"kind": "trickle", "chunk_bytes": 0, "delay_seconds": 1},
            "at least 1",
        ),
        (
            "POST",
            "/_sim/faults",
            {"kind": "slow", "delay_seconds": 1, "chunk_bytes": 9},
            "no other",
        ),
        ("POST", "/_sim/faults", {"kind": "status", "status": 503, "retry_after": 1}, "takes no"),
        ("POST", "/_sim/faults", {"kind": "rate_limit", "retry_after": -1}, "at least 0"),
        ("PUT", "/_sim/chaos", {"rate": 2, "faults": [{"kind": "reset"}]}, "rate must be in"),
        ("PUT", "/_sim/chaos", {"rate": 0.1, "faults": []}, "at least one fault"),
        ("PUT", "/_sim/chaos", {"rate": 0.1, "faults": [{"kind": "boom"}]}, "kind must be"),
        ("PUT", "/_sim/chaos", {"rate": "often", "faults": []}, "rate must be a number"),
        ("PATCH", "/_sim/symbols/BNBBTC", {"status": "BREAK"}, "unknown keys"),
        ("PATCH", "/_sim/symbols/BNBBTC", {"fields": ["BREAK"]}, "'fields' must be"),
        ("PATCH", "/_sim/symbols/BNBBTC", {"fields": {"symbol": "X"}}, "cannot rename"),
        ("PATCH", "/_sim/symbols/BNBBTC", {"filters": [{"minQty": "1"}]}, "filterType"),
        ("PATCH", "/_sim/symbols/BNBBTC", {"remove_filters": "LOT_SIZE"}, "must be a list"),
        ("PUT", "/_sim/symbols/BNBBTC", {"symbol": "ETHBTC"}, "as in the path"),
        ("PUT", "/_sim/symbols/BNBBTC", {"symbol": "BNBBTC", "filters": {}}, "'filters' must"),
        ("PUT", "/_sim/exchange-info", {"timezone": "UTC"}, "'symbols' list"),
        (
            "PUT",
            "/_sim/exchange-info",
            {"symbols": [{"symbol": "AB"}, {"symbol": "AB"}]},
            "duplicate symbols: AB",
        ),
        ("GET", "/_sim/requests?since=yesterday", None, "since must be"),
    ],
)
def test_bad_control_input_is_a_400_json_error_and_changes_nothing(
    sim: Client, method: str, path: str, body: Any, error: str
) -> None:
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)

    response = sim.request(method, path, data=data, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert error in response.json()["error"]
    assert sim.get("/_sim/state").json()["version"] == 0
    assert sim.get("/_sim/faults").json() == {"faults": []}


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_cli_announces_its_url_serves_and_exits_cleanly_on_signal(
    session: requests.Session, stop_signal: signal.Signals
) -> None:
    command = [sys.executable, "-m", "binance_sim", "--port", "0"]
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
            assert ready, "the sim printed nothing"
            line = process.stdout.readline()
            assert line.startswith("binance_sim listening on http://127.0.0.1:"), line
            url = line.removeprefix("binance_sim listening on ").strip()

            response = session.get(url + "/api/v3/ping", timeout=TIMEOUT)
            assert (response.status_code, response.content) == (200, b"{}")

            process.send_signal(stop_signal)
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert process.returncode == 0, stderr
    assert stdout == ""
    assert "Traceback" not in stderr


def test_cli_refuses_a_port_out_of_range_instead_of_wrapping_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "binance_sim", "--port", "99999"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert "port must be in 0..65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_with_a_missing_fixture_exits_2_with_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.json"

    assert main(["--fixture", str(missing)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert str(missing) in captured.err
    assert "No such file" in captured.err


def test_cli_with_a_fixture_that_is_not_exchange_info_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_exchange_info = tmp_path / "error.json"
    not_exchange_info.write_bytes((FIXTURES / "restricted_location_2022-12-07.json").read_bytes())

    assert main(["--fixture", str(not_exchange_info)]) == 2

    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert "'symbols' list" in captured.err
