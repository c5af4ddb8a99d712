"""binance_sim's WebSocket streams: market data that stops in BREAK, contractInfo on
contract changes, and the connection faults the listeners must survive."""

import time
from typing import Any

import orjson
import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from binance_sim.server import SimServer
from binance_sim.state import Market
from binance_sim.streams import SUBSCRIBE_METHOD
from poller.signing import hmac_signature
from tests.signed_sim import API_KEY, API_SECRET, register_key
from tests.signed_sim import control as signed_control
from tests.sim_streams import TIMEOUT, closing, first, messages, set_cadence, stream_fault


def trades_of(events: list[object], symbol: str) -> int:
    return sum(1 for e in events if isinstance(e, dict) and e.get("s") == symbol)


def patch(sim: SimServer, market: str, symbol: str, **body: object) -> None:
    response = requests.patch(
        f"{sim.url}/_sim/markets/{market}/symbols/{symbol}", json=body, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text


def test_a_symbol_trades_at_its_cadence_stops_in_break_and_goes_on_in_halt(
    sim: SimServer,
) -> None:
    set_cadence(sim, "ETHBTC", 0.05)
    with connect(f"{sim.stream_url()}/ws/ethbtc@trade") as ws:
        assert trades_of(messages(ws, 0.5), "ETHBTC") >= 5
        patch(sim, "spot", "ETHBTC", status="HALT")
        messages(ws, 0.1)
        assert trades_of(messages(ws, 0.5), "ETHBTC") >= 5
        patch(sim, "spot", "ETHBTC", status="BREAK")
        messages(ws, 0.1)
        assert trades_of(messages(ws, 0.5), "ETHBTC") == 0
        patch(sim, "spot", "ETHBTC", status="TRADING")
        assert first(ws, 1.0, e="trade", s="ETHBTC")["p"]


def test_the_mini_ticker_array_lists_only_the_symbols_that_traded(sim: SimServer) -> None:
    patch(sim, "spot", "LTCBTC", status="BREAK")
    with connect(f"{sim.stream_url()}/stream?streams=!miniTicker@arr") as ws:
        # The first array may still hold its trades of the second before the BREAK.
        arrays = [m["data"] for m in messages(ws, 3.5)][1:]
    assert arrays, "no second miniTicker array in 3.5 s"
    listed = {t["s"] for array in arrays for t in array}
    assert "ETHBTC" in listed
    assert "LTCBTC" not in listed
    assert all(t["e"] == "24hrMiniTicker" for array in arrays for t in array)


@pytest.mark.parametrize(("market", "status"), [("usdm", "SETTLING"), ("coinm", "DELIVERED")])
def test_a_contract_change_is_pushed_on_contract_info(
    sim: SimServer, market: str, status: str
) -> None:
    symbol = "BTCUSDT" if market == "usdm" else "BTCUSD_PERP"
    with connect(f"{sim.stream_url(Market(market))}/ws/!contractInfo") as ws:
        assert messages(ws, 0.2) == []  # nothing changed, nothing pushed
        before = sim.state.server_time_ms()
        patch(sim, market, symbol, status=status)
        event = first(ws, 2.0, e="contractInfo", s=symbol)
    assert event["cs"] == status
    assert event["E"] >= before
    assert {"ps", "ct", "dt", "ot", "bks"} <= set(event)


def test_a_dropped_connection_ends_without_a_close_frame(sim: SimServer) -> None:
    with connect(f"{sim.stream_url()}/ws/ethbtc@trade") as ws:
        stream_fault(sim, "drop")
        closed = closing(ws)
    assert closed.rcvd is None


def test_server_shutdown_is_announced_then_the_connection_closes(sim: SimServer) -> None:
    with connect(f"{sim.stream_url(Market.USDM)}/stream?streams=!contractInfo") as ws:
        stream_fault(sim, "shutdown", market="usdm")
        event = first(ws, TIMEOUT, e="serverShutdown")
        closed = closing(ws)
    assert event["E"] > 0
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001


def test_a_stalled_server_answers_no_ping(sim: SimServer) -> None:
    with connect(f"{sim.stream_url()}/ws/ethbtc@trade") as ws:
        first(ws, TIMEOUT, e="trade")
        stream_fault(sim, "stall", seconds=5)
        time.sleep(0.2)
        pong = ws.ping()
        assert not pong.wait(1.0)


def test_connections_close_at_their_lifetime(sim: SimServer) -> None:
    requests.put(f"{sim.url}/_sim/streams/lifetime", json={"seconds": 0.3}, timeout=TIMEOUT)
    with connect(f"{sim.stream_url()}/ws/ethbtc@trade") as ws:
        started = time.monotonic()
        closing(ws)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cadences/ETHBTC", {"seconds": 0}),
        ("/cadences/ETHBTC", {"seconds": "1"}),
        ("/lifetime", {"seconds": -1}),
        ("/faults", {"kind": "explode"}),
        ("/faults", {"kind": "drop", "market": "moon"}),
        ("/faults", {"kind": "drop", "extra": 1}),
    ],
)
def test_bad_stream_controls_are_a_400(sim: SimServer, path: str, body: object) -> None:
    method = "POST" if path == "/faults" else "PUT"
    response = requests.request(method, f"{sim.url}/_sim/streams{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "error" in response.json()


def test_the_control_api_says_where_the_streams_are(sim: SimServer) -> None:
    answer = requests.get(f"{sim.url}/_sim/streams", timeout=TIMEOUT).json()
    assert answer["urls"]["usdm"] == sim.stream_url(Market.USDM)


def subscribe(ws: ClientConnection, secret: str = API_SECRET) -> dict[str, Any]:
    params = {"apiKey": API_KEY, "timestamp": str(int(time.time() * 1000))}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    params["signature"] = hmac_signature(secret, payload)
    ws.send(orjson.dumps({"id": 1, "method": SUBSCRIBE_METHOD, "params": params}).decode())
    answer: dict[str, Any] = orjson.loads(ws.recv(timeout=TIMEOUT))
    return answer


def test_a_balance_change_is_pushed_on_the_user_data_stream(sim: SimServer) -> None:
    register_key(sim)
    with connect(sim.ws_api_url()) as ws:
        assert subscribe(ws) == {"id": 1, "status": 200, "result": {"subscriptionId": 0}}
        before = sim.state.server_time_ms()
        signed_control(
            sim, "PATCH", "/account", {"balances": {"BTC": {"free": "7.5", "locked": "0.5"}}}
        )
        message = orjson.loads(ws.recv(timeout=TIMEOUT))
    assert message["subscriptionId"] == 0
    event = message["event"]
    assert event["e"] == "outboundAccountPosition"
    assert event["E"] >= before
    assert event["B"] == [{"a": "BTC", "f": "7.5", "l": "0.5"}]


def test_a_badly_signed_subscription_is_refused_and_gets_no_event(sim: SimServer) -> None:
    register_key(sim)
    with connect(sim.ws_api_url()) as ws:
        answer = subscribe(ws, secret="not-the-secret")
        signed_control(
            sim, "PATCH", "/account", {"balances": {"BTC": {"free": "1", "locked": "0"}}}
        )
        assert messages(ws, 0.3) == []
    assert answer["status"] == 400
    assert answer["error"]["code"] == -1022
