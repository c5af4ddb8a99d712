"""The realtime listeners against the sim over real sockets: a pushed contract change
reaches the API within a second or so with slow polling, and dropped, shut-down or silent
connections lose no change and duplicate no version."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api import create_app, schemas
from binance_sim.server import SimServer
from binance_sim.state import Market
from core.config import Settings, replace_section
from poller.listener import MarketListener, Signals, SpotSilences, stream_path
from poller.retry import WeightBudget
from poller.triggers import ImmediatePolls
from tests.api_client import AUTH, ok, q, ts
from tests.realtime_fakes import RecordingSink, Stalling
from tests.signed_sim import control as signed_control
from tests.signed_sim import register_key, sim_settings
from tests.sim_streams import (
    TIMEOUT,
    listener_connected,
    polling,
    realtime_settings,
    set_cadence,
    stream_fault,
    wait_until,
)

INTERVAL = 30.0  # no slot poll comes during a test: a prompt change is the listener's


def api(settings: Settings, engine: Engine) -> FlaskClient:
    return create_app(settings, engine).test_client()


def status(client: FlaskClient, market: str, symbol: str) -> str | None:
    answer = client.get(f"/v1/symbols/{symbol}?market={market}")
    return answer.json["status"] if answer.status_code == 200 and answer.json else None


def metric_samples(client: FlaskClient) -> dict[tuple[str, tuple[str, ...]], float]:
    """Each sample of /metrics by name and label values (in their names' order)."""
    return {
        (sample.name, tuple(v for _, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }


def shows(client: FlaskClient, symbol: str, expected: str) -> bool:
    return status(client, "usdm", symbol) == expected


def patch_status(sim: SimServer, market: str, symbol: str, new: str) -> None:
    response = requests.patch(
        f"{sim.url}/_sim/markets/{market}/symbols/{symbol}", json={"status": new}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text


def versions(engine: Engine, table: str, symbol: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(f"SELECT status FROM {table} WHERE symbol = :s ORDER BY valid_from"),
                {"s": symbol},
            ).scalars()
        )


def balance(engine: Engine, asset: str) -> str | None:
    """The asset's free balance now, as versioned (None: not held)."""
    with engine.connect() as conn:
        free = conn.execute(
            text("SELECT free FROM balance_versions WHERE asset = :a AND valid_to IS NULL"),
            {"a": asset},
        ).scalar_one_or_none()
    return None if free is None else format(free.normalize(), "f")


def signal_rows(engine: Engine, stream: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, symbol, event_at, polled, observed_at, confirmed"
                " FROM stream_signals WHERE stream = :s ORDER BY id"
            ),
            {"s": stream},
        ).mappings()
        return [dict(r) for r in rows]


def test_a_contract_change_is_in_the_api_within_a_second_and_a_half_of_its_event(
    engine: Engine, sim: SimServer
) -> None:
    # COIN-M's streams are nowhere to be reached: its listener's health says so.
    settings = realtime_settings(sim, INTERVAL, coinm_stream_url="ws://127.0.0.1:9/coinm")
    client = api(settings, engine)
    with polling(settings, engine):
        wait_until(lambda: status(client, "usdm", "BTCUSDT") == "TRADING")
        wait_until(lambda: listener_connected(engine, "usdm"))
        patch_status(sim, "usdm", "BTCUSDT", "SETTLING")
        seen_after = wait_until(lambda: status(client, "usdm", "BTCUSDT") == "SETTLING", 5)
        ready = client.get("/readyz")
        # The signal is settled just after the poll's own commit.
        signalled = (
            "exmeta_stream_signals_total",
            ("contract_info", "confirmed", "usdm_exchange_info"),  # kind, outcome, stream
        )
        wait_until(lambda: metric_samples(client).get(signalled) == 1)
        metrics = metric_samples(client)
    assert seen_after <= 1.5
    assert ready.status_code == 200
    assert ready.json is not None
    assert [r for r in ready.json["reasons"] if r.startswith("realtime")] == [
        "realtime: the coinm listener of r0 is not connected (0 reconnection(s) so far);"
        " changes wait for the slot polls"
    ]
    assert metrics[("exmeta_stream_listener_connected", ("usdm", "r0"))] == 1
    assert metrics[("exmeta_stream_listener_connected", ("coinm", "r0"))] == 0

    assert versions(engine, "usdm_symbol_versions", "BTCUSDT") == ["TRADING", "SETTLING"]
    [signal] = [s for s in signal_rows(engine, "usdm_exchange_info") if s["symbol"] == "BTCUSDT"]
    assert signal["kind"] == "contract_info"
    assert signal["polled"]
    assert signal["confirmed"]
    assert signal["event_at"] is not None
    assert signal["observed_at"] is not None
    assert signal["event_at"] <= signal["observed_at"]


def test_dropped_shut_down_and_silent_connections_lose_no_change_and_duplicate_no_version(
    engine: Engine, sim: SimServer
) -> None:
    # Our pings every 0.2 s, dead after 0.5 s without a pong: the stall is noticed quickly.
    settings = realtime_settings(sim, INTERVAL, ping_interval_seconds=0.2, ping_timeout_seconds=0.5)
    client = api(settings, engine)
    expected = ["TRADING"]
    with polling(settings, engine):
        wait_until(lambda: status(client, "usdm", "ETHUSDT") == "TRADING")
        wait_until(lambda: listener_connected(engine, "usdm"))
        for reconnects, (fault, new) in enumerate(
            [("drop", "SETTLING"), ("shutdown", "TRADING"), ("stall", "CLOSE")], start=1
        ):
            # The change comes as the connection goes: its event is lost with it, and
            # only the poll that follows a reconnection can see it.
            stream_fault(sim, fault, market="usdm", seconds=2)
            patch_status(sim, "usdm", "ETHUSDT", new)
            expected.append(new)
            wait_until(partial(shows, client, "ETHUSDT", new), INTERVAL / 3)
            wait_until(partial(listener_connected, engine, "usdm", reconnects))
        # Binance closes every connection after 24 h: here after half a second, cleanly,
        # and the listener is straight back each time; the polls that follow find nothing new.
        lifetime = requests.put(
            f"{sim.url}/_sim/streams/lifetime", json={"seconds": 0.5}, timeout=TIMEOUT
        )
        assert lifetime.status_code == 200
        wait_until(partial(listener_connected, engine, "usdm", 6))
    assert versions(engine, "usdm_symbol_versions", "ETHUSDT") == expected
    reconnections = [
        s for s in signal_rows(engine, "usdm_exchange_info") if s["kind"] == "reconnected"
    ]
    assert len(reconnections) >= 6
    assert all(s["confirmed"] for s in reconnections[:3])
    assert not [s for s in signal_rows(engine, "usdm_exchange_info") if s["symbol"] == "ETHUSDT"]


def test_a_spot_symbol_gone_silent_is_polled_at_once_and_the_suspicion_confirmed(
    engine: Engine, sim: SimServer
) -> None:
    set_cadence(sim, "ETHBTC", 0.05)
    settings = realtime_settings(sim, INTERVAL, spot_symbols=("ETHBTC",))
    client = api(settings, engine)
    with polling(settings, engine):
        wait_until(lambda: status(client, "spot", "ETHBTC") == "TRADING")
        wait_until(lambda: listener_connected(engine, "spot"))
        time.sleep(0.5)  # its cadence learnt
        requests.patch(
            f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "BREAK"}}, timeout=TIMEOUT
        ).raise_for_status()
        seen_after = wait_until(lambda: status(client, "spot", "ETHBTC") == "BREAK", 5)
        wait_until(lambda: bool(signal_rows(engine, "exchange_info")[-1]["observed_at"]))
        answer = ok(client.get("/v1/symbols/ETHBTC"), schemas.SymbolAsOf)
        requests.patch(
            f"{sim.url}/_sim/symbols/ETHBTC",
            json={"fields": {"status": "TRADING"}},
            timeout=TIMEOUT,
        ).raise_for_status()
        back_after = wait_until(lambda: status(client, "spot", "ETHBTC") == "TRADING", 5)
    assert seen_after <= 1.5
    assert back_after <= 1.5  # its trades resumed: a signal too
    assert versions(engine, "symbol_versions", "ETHBTC") == ["TRADING", "BREAK", "TRADING"]
    seen = [(s["kind"], s["symbol"], s["confirmed"]) for s in signal_rows(engine, "exchange_info")]
    assert seen == [("silence", "ETHBTC", True), ("resumed", "ETHBTC", True)]
    suspicions = [s for s in signal_rows(engine, "exchange_info") if s["kind"] == "silence"]
    # The answer's evidence says when the change began as well as when a poll saw it.
    change = answer["evidence"]["change"]
    assert change["signal"] == "silence"
    assert change["seen_at"] == answer["valid_from"]
    assert change["since"] == ts(suspicions[0]["event_at"])
    assert change["since"] < change["seen_at"]
    assert change["says"] == (
        f"changed between {change['since']} and {change['seen_at']} (market stream went"
        f" silent at {change['since']}, poll confirmed at {change['seen_at']})"
    )
    # Other symbols' answers, and the same symbol before the change, have none.
    assert "change" not in ok(client.get("/v1/symbols/LTCBTC"), schemas.SymbolAsOf)["evidence"]
    before = client.get(f"/v1/symbols/ETHBTC?as_of={q(suspicions[0]['event_at'])}")
    evidence_before = ok(before, schemas.SymbolAsOf)["evidence"]
    assert "change" not in evidence_before
    # Tighter than the polls: the last one before the change came well before the silence.
    assert evidence_before["observed_before"] < change["since"]


def test_a_balance_event_polls_the_account_at_once_and_dates_the_balance_change(
    engine: Engine, sim: SimServer
) -> None:
    register_key(sim)
    keyed = sim_settings(sim)
    settings = replace_section(
        realtime_settings(sim, INTERVAL, spot_api_url=sim.ws_api_url()),
        "binance",
        api_key=keyed.binance.api_key,
        api_secret=keyed.binance.api_secret,
    )
    settings = replace_section(settings, "poller", account_interval=INTERVAL)
    settings = replace_section(settings, "api", token=keyed.api.token)
    with polling(settings, engine):
        wait_until(lambda: balance(engine, "BTC") is not None)
        wait_until(lambda: listener_connected(engine, "account"))
        signed_control(
            sim, "PATCH", "/account", {"balances": {"BTC": {"free": "7.5", "locked": "0"}}}
        )
        seen_after = wait_until(lambda: balance(engine, "BTC") == "7.5", 5)
        wait_until(lambda: bool(signal_rows(engine, "account")[-1]["observed_at"]))
    assert seen_after <= 1.5
    [signal] = signal_rows(engine, "account")
    assert (signal["kind"], signal["symbol"], signal["confirmed"]) == (
        "account_update",
        "BTC",
        True,
    )
    assert signal["event_at"] <= signal["observed_at"]
    # The balance's evidence says when it began to move, from the event's own time.
    client = api(settings, engine)
    answer = client.get("/v1/account/balances?asset=BTC", headers=AUTH)
    body = ok(answer, schemas.BalancesAsOf)
    change = body["evidence"]["change"]
    assert change["signal"] == "account_update"
    assert change["since"] == ts(signal["event_at"])
    assert change["seen_at"] == body["balances"][0]["valid_from"]
    assert "(account event at " in change["says"]


def test_a_listener_asks_for_its_poll_before_it_records_the_signal(engine: Engine) -> None:
    immediate = ImmediatePolls(share=0.2)
    immediate.register("exchange_info", "spot", 20, WeightBudget(0.25, limit=6000))
    sink = Signals(engine, "r0", immediate)
    signalling = threading.Thread(
        target=sink.signal, args=("exchange_info", "silence", "ETHBTC", 1_700_000_000_000)
    )
    with engine.connect() as locker:
        # The signal's record waits behind this lock, as behind a slow commit.
        locker.execute(text("LOCK TABLE stream_signals IN SHARE MODE"))
        signalling.start()
        wait_until(lambda: immediate.take_asked() == ["exchange_info"])
        assert signalling.is_alive()
        urgent, ticket = immediate.claim("exchange_info")
        assert urgent
        assert immediate.answered("exchange_info", ticket, timeout=0) is None
        locker.rollback()
        signalling.join(TIMEOUT)
        # Recorded once the lock went: the poll that started before now ties it to itself.
        [signal] = signal_rows(engine, "exchange_info")
        assert signal["polled"]
        with engine.connect() as conn:
            recorded_id = conn.execute(text("SELECT id FROM stream_signals")).scalar_one()
    assert immediate.answered("exchange_info", ticket, timeout=0) == recorded_id


def observation_outcomes(engine: Engine, stream: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT outcome FROM observations WHERE stream = :s ORDER BY id"),
                {"s": stream},
            ).scalars()
        )


def test_a_suspicion_during_a_slow_poll_is_polled_beside_it_and_the_slow_poll_undoes_nothing(
    engine: Engine, sim: SimServer
) -> None:
    set_cadence(sim, "ETHBTC", 0.05)
    settings = realtime_settings(sim, INTERVAL, spot_symbols=("ETHBTC",))
    client = api(settings, engine)
    with polling(settings, engine) as poller:
        wait_until(lambda: status(client, "spot", "ETHBTC") == "TRADING")
        wait_until(lambda: listener_connected(engine, "spot"))
        time.sleep(0.5)  # its cadence learnt
        # serverTime a minute ahead is not trusted: the database clock dates every poll
        # when it is written, so the slow poll's old body is dated after the fast one's.
        sim.state.set_clock_offset_ms(60_000)
        size = len(requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=TIMEOUT).content)
        fault = {"kind": "trickle", "delay_seconds": 0.1, "chunk_bytes": size // 30 + 1}
        requests.post(f"{sim.url}/_sim/faults", json=fault, timeout=TIMEOUT).raise_for_status()
        poller.immediate.ask("exchange_info")  # a poll (as for a reconnection) that dribbles in
        wait_until(lambda: not sim.state.pending_faults())  # its answer, built before the flip
        requests.patch(
            f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "BREAK"}}, timeout=TIMEOUT
        ).raise_for_status()
        seen_after = wait_until(lambda: status(client, "spot", "ETHBTC") == "BREAK", 5)
        assert seen_after <= 1.5  # not after the slow poll's 3 s
        # The slow poll ends after the one that saw the change, and changes nothing.
        wait_until(lambda: "stale" in observation_outcomes(engine, "exchange_info"))
        shown_after_it = status(client, "spot", "ETHBTC")
    assert shown_after_it == "BREAK"
    assert versions(engine, "symbol_versions", "ETHBTC") == ["TRADING", "BREAK"]
    assert observation_outcomes(engine, "exchange_info")[-2:] == ["changed", "stale"]


def test_a_listener_held_up_reads_what_queued_meanwhile_before_it_suspects_a_silence(
    engine: Engine, sim: SimServer
) -> None:
    for symbol in ("ETHBTC", "LTCBTC"):
        set_cadence(sim, symbol, 0.05)
    sink = RecordingSink()
    # A floor of 1 s, a stall of 2.5 s: a listener that looked at its silences before
    # reading what queued would suspect both symbols; one that reads first suspects none,
    # unless the sim itself sends nothing for a second (a loaded CI machine starved it for
    # more than 0.5 s once, with the floor at 0.5 s).
    silences = SpotSilences("exchange_info", sink, ("ETHBTC", "LTCBTC"), factor=5, floor=1.0)
    handler = Stalling(silences)
    settings = realtime_settings(sim).realtime
    stop = threading.Event()
    url = sim.stream_url(Market.SPOT) + stream_path(handler.streams)
    listener = MarketListener("spot", handler, settings, engine, "r0", stop, 5.0, url=url)
    listener.start()
    try:
        wait_until(lambda: all(s in silences.tracks for s in ("ETHBTC", "LTCBTC")))
        time.sleep(0.5)  # their cadences learnt
        handler.stall_once(2.5)  # both symbols' trades queue meanwhile
        wait_until(handler.stalled.is_set)
        time.sleep(0.5)
    finally:
        stop.set()
        assert listener.join(TIMEOUT)
    assert [s for s in sink.signals if s[1] == "silence"] == []
