"""The signed streams end to end: poller -> real loopback HTTP -> sim -> PostgreSQL -> as of."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from core import history
from core.config import Settings, replace_section
from core.ingest import StreamWriter
from poller.binance import BinanceClient
from poller.runner import retrying_client
from poller.signed_client import ServerClock
from poller.signed_jobs import signed_jobs
from tests.builders import sim_urls, system_status_job
from tests.signed_sim import (
    ED25519_VECTORS,
    control,
    jobs_by_stream,
    logged_requests,
    query_value,
    register_key,
    sim_settings,
)


def between(a: datetime, b: datetime) -> datetime:
    return a + (b - a) / 2


def test_each_account_change_is_one_version_and_as_of_answers_the_earlier_state(
    engine: Engine, sim: SimServer
) -> None:
    register_key(sim)
    account = jobs_by_stream(sim_settings(sim), engine)["account"]
    first = account.run()
    assert (first.outcome, first.opened) == (
        "changed",
        {"account_versions": 1, "balance_versions": 2},
    )

    control(sim, "PATCH", "/account", {"fields": {"updateTime": 1700000000000}})
    touched = account.run()
    assert (touched.outcome, touched.opened, touched.closed) == ("unchanged", {}, {})

    rates = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0", "seller": "0"}
    events = [
        ({"fields": {"commissionRates": rates, "makerCommission": 10}}, "account_versions", 1),
        ({"fields": {"permissions": ["SPOT", "MARGIN"]}}, "account_versions", 1),
        ({"balances": {"BTC": {"free": "1.50000000", "locked": "0.1"}}}, "balance_versions", 1),
        ({"balances": {"LTC": {"free": "0.00000000", "locked": "0"}}}, "balance_versions", 0),
    ]
    times = [first.observed_at]
    for patch, table, opened in events:
        control(sim, "PATCH", "/account", patch)
        recorded = account.run()
        assert recorded.outcome == "changed"
        assert recorded.opened == ({table: opened} if opened else {})
        assert recorded.closed == {table: 1}
        times.append(recorded.observed_at)

    with engine.connect() as conn:
        before_rates = history.account_as_of(conn, between(times[0], times[1]))
        after_rates = history.account_as_of(conn, between(times[1], times[2]))
        after_permissions = history.account_as_of(conn, times[2] + timedelta(microseconds=1))
        balances = [
            {v.fields["asset"]: v.fields["free"] for v in history.balances_as_of(conn, at)}
            for at in (between(times[2], times[3]), between(times[3], times[4]), times[4])
        ]
    assert before_rates is not None
    assert after_rates is not None
    assert after_permissions is not None
    assert before_rates.fields["commission_rate_maker"] == Decimal("0.0015")
    assert before_rates.fields["maker_commission"] == 15
    assert "updateTime" not in before_rates.raw
    assert after_rates.fields["commission_rate_maker"] == Decimal("0.001")
    assert after_rates.fields["permissions"] == ["SPOT"]
    assert after_permissions.fields["permissions"] == ["SPOT", "MARGIN"]
    assert balances[0] == {"BTC": Decimal("4723846.89208129"), "LTC": Decimal("4763368.68006011")}
    assert balances[1] == {"BTC": Decimal("1.5"), "LTC": Decimal("4763368.68006011")}
    assert balances[2] == {"BTC": Decimal("1.5")}  # LTC went to zero: its version is closed


def test_commission_change_is_one_version_per_symbol(engine: Engine, sim: SimServer) -> None:
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=("BTCUSDT", "ETHBTC"))
    job = jobs_by_stream(settings, engine)["account_commission"]
    first = job.run()
    assert first.opened == {"commission_versions": 2}
    assert job.run().outcome == "unchanged"

    new = {
        "standardCommission": {
            "maker": "0.00050000",
            "taker": "0.00070000",
            "buyer": "0",
            "seller": "0",
        },
        "taxCommission": {"maker": "0", "taker": "0", "buyer": "0", "seller": "0"},
        "discount": {
            "enabledForAccount": False,
            "enabledForSymbol": False,
            "discountAsset": "BNB",
            "discount": "0.25",
        },
    }
    control(sim, "PUT", "/commission/BTCUSDT", new)
    changed = job.run()
    assert (changed.opened, changed.closed) == (
        {"commission_versions": 1},
        {"commission_versions": 1},
    )
    with engine.connect() as conn:
        before = history.commission_as_of(
            conn, "BTCUSDT", between(first.observed_at, changed.observed_at)
        )
        after = history.commission_as_of(conn, "BTCUSDT", None)
        other = history.commission_as_of(conn, "ETHBTC", None)
    assert before is not None
    assert after is not None
    assert other is not None
    assert before.fields["standard_maker"] == Decimal("0.0000001")
    assert before.fields["special_maker"] == Decimal("0.01")
    assert after.fields["standard_maker"] == Decimal("0.0005")
    assert after.fields["special_maker"] is None  # the new answer has no specialCommission
    assert after.fields["discount"] == Decimal("0.25")
    assert other.valid_from == first.observed_at


def test_maintenance_window_is_one_version_each_way(engine: Engine, sim: SimServer) -> None:
    """The status endpoint is unsigned: it is polled without any key configured."""
    settings = replace_section(Settings(), "binance", **sim_urls(sim.url))
    status = system_status_job(
        retrying_client(settings, threading.Event()), StreamWriter(engine, "system_status"), "test"
    )
    recorded = [status.run()]
    for body in ({"status": 1, "msg": "system_maintenance"}, {"status": 0, "msg": "normal"}):
        assert status.run().outcome == "unchanged"
        control(sim, "PUT", "/system-status", body)
        recorded.append(status.run())
    # The first poll also records the body's shape: its two paths (core.schema).
    shape = {"schema_versions": 2}
    assert [r.opened for r in recorded] == [
        {"system_status_versions": 1, **shape},
        {"system_status_versions": 1},
        {"system_status_versions": 1},
    ]
    with engine.connect() as conn:
        answers = [
            history.system_status_as_of(conn, at)
            for at in (
                between(recorded[0].observed_at, recorded[1].observed_at),
                between(recorded[1].observed_at, recorded[2].observed_at),
                recorded[2].observed_at,
            )
        ]
    assert [(a.fields["status"], a.fields["message"]) for a in answers if a] == [
        (0, "normal"),
        (1, "system_maintenance"),
        (0, "normal"),
    ]


def test_newly_announced_delisting_is_one_version(engine: Engine, sim: SimServer) -> None:
    register_key(sim)
    job = jobs_by_stream(sim_settings(sim), engine)["delistings"]
    empty = job.run()
    assert (empty.outcome, empty.opened) == ("unchanged", {})
    effective = 1767225600000  # 2026-01-01T00:00:00Z
    schedule = [{"delistTime": effective, "symbols": ["ETHBTC"]}]
    control(sim, "PUT", "/delist-schedule", {"schedule": schedule})
    announced = job.run()
    # The first entry also shows the schedule's shape: [], [].delistTime, [].symbols[, []].
    assert announced.opened == {"delisting_versions": 1, "schema_versions": 4}
    schedule.append({"delistTime": effective + 86_400_000, "symbols": ["BNBBTC"]})
    control(sim, "PUT", "/delist-schedule", {"schedule": schedule})
    second = job.run()
    assert (second.opened, second.closed) == ({"delisting_versions": 1}, {})
    with engine.connect() as conn:
        before = history.delistings_as_of(conn, between(empty.observed_at, announced.observed_at))
        between_them = history.delistings_as_of(
            conn, between(announced.observed_at, second.observed_at)
        )
    assert before == []
    assert [(d.fields["symbol"], d.valid_from) for d in between_them] == [
        ("ETHBTC", announced.observed_at)
    ]
    assert int(between_them[0].fields["delist_time"].timestamp() * 1000) == effective


@pytest.mark.parametrize("offset_ms", [3000, -3000], ids=["sim-ahead", "sim-behind"])
def test_signed_polls_survive_a_clock_step_with_one_1021_at_most(
    engine: Engine, sim: SimServer, offset_ms: int
) -> None:
    register_key(sim)
    # recvWindow 2 s: a 3 s step is outside it either way (ahead: too old; behind: future).
    account = jobs_by_stream(sim_settings(sim, binance={"recv_window_ms": 2000}), engine)["account"]
    control(sim, "PUT", "/clock", {"offset_ms": offset_ms})
    requests_before = len(logged_requests(sim))
    assert account.run().outcome == "changed"
    assert account.run().outcome == "unchanged"
    log = logged_requests(sim)[requests_before:]
    assert [(r["path"], r["status"]) for r in log] == [
        ("/api/v3/account", 400),
        ("/api/v3/time", 200),
        ("/api/v3/account", 200),
        ("/api/v3/account", 200),
    ]
    stamps = [int(query_value(r, "timestamp")) for r in log if r["path"] == "/api/v3/account"]
    signatures = {query_value(r, "signature") for r in log if r["path"] == "/api/v3/account"}
    assert len(signatures) == 3  # every attempt is signed afresh
    assert abs(stamps[1] - stamps[0] - offset_ms) < 1000  # the retry's timestamp is new


def test_retried_signed_requests_are_signed_afresh(engine: Engine, sim: SimServer) -> None:
    register_key(sim)
    account = jobs_by_stream(sim_settings(sim), engine)["account"]
    fault = {"kind": "status", "status": 503, "endpoint": "/api/v3/account", "count": 2}
    control(sim, "POST", "/faults", fault)
    before = len(logged_requests(sim, "/api/v3/account"))
    assert account.run().outcome == "changed"
    log = logged_requests(sim, "/api/v3/account")[before:]
    assert [r["status"] for r in log] == [503, 503, 200]
    stamps = [int(query_value(r, "timestamp")) for r in log]
    assert len(set(stamps)) == 3  # a new timestamp each time...
    assert stamps == sorted(stamps)
    assert len({query_value(r, "signature") for r in log}) == 3  # and a new signature


def test_ed25519_key_signs_the_account_poll(engine: Engine, sim: SimServer, tmp_path: Path) -> None:
    register_key(sim, ed25519=True)
    pem = tmp_path / "exmeta-ed25519.pem"
    pem.write_text(ED25519_VECTORS["privateKeyPem"])
    settings = sim_settings(sim, binance={"key_type": "ed25519", "private_key_path": str(pem)})
    assert jobs_by_stream(settings, engine)["account"].run().outcome == "changed"
    signature = query_value(logged_requests(sim, "/api/v3/account")[-1], "signature")
    assert len(signature) == 88  # 64 bytes, base64: an Ed25519 signature, not an HMAC


def test_the_clock_offset_is_measured_again_once_due(sim: SimServer) -> None:
    ticks = [0.0]
    settings = replace_section(Settings(), "binance", **sim_urls(sim.url))
    clock = ServerClock(BinanceClient(settings.binance), 60, monotonic=lambda: ticks[0])
    control(sim, "PUT", "/clock", {"offset_ms": 7000})
    clock.now_ms()
    assert abs(clock.offset_ms - 7000) < 500
    control(sim, "PUT", "/clock", {"offset_ms": -2000})
    clock.now_ms()
    assert abs(clock.offset_ms - 7000) < 500  # not due yet: no request
    ticks[0] = 61.0
    clock.now_ms()
    assert abs(clock.offset_ms + 2000) < 500
    assert len(logged_requests(sim, "/api/v3/time")) == 2


def test_a_failed_commission_call_fails_the_observation_and_closes_nothing(
    engine: Engine, sim: SimServer
) -> None:
    register_key(sim)
    job = jobs_by_stream(sim_settings(sim, commission_symbols=("BTCUSDT", "ETHBTC")), engine)[
        "account_commission"
    ]
    assert job.run().opened == {"commission_versions": 2}
    fault = {"kind": "status", "status": 503, "endpoint": "/api/v3/account/commission"}
    control(sim, "POST", "/faults", fault)
    assert job.run().outcome == "unchanged"  # one 503 is retried, re-signed, and passes
    control(sim, "POST", "/faults", {**fault, "count": 3})  # every attempt fails
    failed = job.run()
    assert (failed.outcome, failed.closed) == ("error", {})
    with engine.connect() as conn:
        assert history.commission_as_of(conn, "BTCUSDT", None) is not None


def test_the_commission_calls_of_a_poll_share_its_deadline(engine: Engine, sim: SimServer) -> None:
    """Two symbols, each answered 0.6 s late, under a 1 s deadline: the second call has
    0.4 s left and is cut there, rather than getting a deadline of its own."""
    register_key(sim)
    settings = sim_settings(
        sim, binance={"timeout_seconds": 1.0}, commission_symbols=("BTCUSDT", "ETHBTC")
    )
    job = jobs_by_stream(settings, engine)["account_commission"]
    assert job.run().opened == {"commission_versions": 2}
    slow = {"kind": "slow", "delay_seconds": 0.6, "endpoint": "/api/v3/account/commission"}
    control(sim, "POST", "/faults", {**slow, "count": 2})

    started = time.monotonic()
    cut = job.run()

    assert time.monotonic() - started < 1.5
    assert (cut.outcome, cut.closed) == ("error", {})
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT error_class, attempts FROM observations ORDER BY id DESC LIMIT 1")
        ).one() == ("timeout", 2)


def test_without_a_key_the_signed_streams_are_off_with_one_log_line(
    engine: Engine, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace_section(Settings(), "binance", **sim_urls(sim.url))
    with caplog.at_level(logging.INFO, logger="poller"):
        jobs = signed_jobs(settings, engine, retrying_client(settings, threading.Event()), "test")
    assert jobs == []
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "account, delistings, wallet_networks, margin_pairs, margin_isolated_pairs and"
        " margin_delistings streams are off: no API key configured"
        " (set EXMETA_BINANCE__API_KEY and EXMETA_BINANCE__API_SECRET)"
    ]
    assert logged_requests(sim) == []  # not even the key check
