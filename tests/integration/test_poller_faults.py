"""The poller against each way Binance fails, read back from the sim's request log."""

import threading
import time
from itertools import pairwise
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from binance_sim.server import SimServer
from binance_sim.state import SimState
from core.ingest import StreamWriter
from poller.binance import BinanceClient, Deadline
from poller.job import StreamJob
from poller.retry import RateGate, RetryingClient, RetryPolicy, WeightBudget
from poller.runner import Poller, ScheduledJob
from tests.builders import client_for, exchange_info_job, poller_settings
from tests.sim_client import add_fault, sim_log
from tests.slow_http import SlowHeadServer

VERSION_TABLES = (
    "symbol_versions",
    "symbol_filter_versions",
    "rate_limit_versions",
    "exchange_filter_versions",
)


def job_for(engine: Engine, sim: SimServer, **binance: Any) -> StreamJob:
    return exchange_info_job(
        client_for(sim.url, **binance), StreamWriter(engine, "exchange_info"), "test"
    )


def clear_log(sim: SimServer) -> None:
    requests.delete(f"{sim.url}/_sim/requests", timeout=5).raise_for_status()


def version_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in VERSION_TABLES
        }


def last_observation(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT outcome, http_status, error_class, error_code, attempts, backoff_ms,"
                " duration_ms FROM observations ORDER BY id DESC LIMIT 1"
            )
        ).mappings()
        return dict(row.one())


def test_5xx_burst_is_retried_with_growing_backoff_and_recorded_once(
    engine: Engine, sim: SimServer
) -> None:
    add_fault(sim, kind="status", status=503, count=2)

    recorded = job_for(engine, sim, max_attempts=3, backoff_base_seconds=0.2).run()

    assert recorded.outcome == "changed"
    log = sim_log(sim)
    assert [r["status"] for r in log] == [503, 503, 200]
    spacing = [b["received_at"] - a["received_at"] for a, b in pairwise(log)]
    # Equal jitter: retry n waits between half and all of 0.2 * 2^(n-1) seconds.
    assert spacing[0] >= 0.1
    assert spacing[1] >= 0.2
    assert spacing[1] >= spacing[0]
    observation = last_observation(engine)
    assert observation["attempts"] == 3
    assert 300 <= observation["backoff_ms"] <= 600
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM observations")).scalar_one() == 1


@pytest.mark.parametrize(
    ("fault", "requests_sent", "http_status", "error_class", "error_code"),
    [
        ({"kind": "status", "status": 502, "count": 5}, 3, 502, "http_status", -1000),
        ({"kind": "truncated", "count": 5}, 3, 200, "truncated", None),
        ({"kind": "reset", "count": 5}, 3, 200, "connection_reset", None),
        ({"kind": "invalid_json"}, 1, 200, "invalid_payload", None),
        ({"kind": "geo_block", "status": 200}, 1, 200, "binance_error", 0),
        ({"kind": "error_body"}, 1, 200, "binance_error", -1001),
        ({"kind": "status", "status": 400}, 1, 400, "http_status", -1000),
    ],
)
def test_a_failed_response_is_an_error_observation_and_writes_no_version(
    engine: Engine,
    sim: SimServer,
    fault: dict[str, object],
    requests_sent: int,
    http_status: int,
    error_class: str,
    error_code: int | None,
) -> None:
    job = job_for(engine, sim, max_attempts=3)
    assert job.run().outcome == "changed"
    before = version_counts(engine)
    requests.patch(  # a change the failed response must not be allowed to record
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    clear_log(sim)
    add_fault(sim, **fault)

    assert job.run().outcome == "error"

    assert len(sim_log(sim)) == requests_sent  # bounded: at most max_attempts, 4xx never again
    assert version_counts(engine) == before
    observation = last_observation(engine)
    assert (
        observation["outcome"],
        observation["http_status"],
        observation["error_class"],
        observation["error_code"],
        observation["attempts"],
    ) == ("error", http_status, error_class, error_code, requests_sent)
    requests.delete(f"{sim.url}/_sim/faults", timeout=5).raise_for_status()
    assert job.run().opened == {"symbol_versions": 1}  # the change, seen once the fault is gone


def test_a_slow_answer_ends_at_the_deadline_and_no_retry_runs_past_it(
    engine: Engine, sim: SimServer
) -> None:
    add_fault(sim, kind="slow", delay_seconds=1.5, count=3)

    recorded = job_for(engine, sim, timeout_seconds=0.4, max_attempts=3).run()

    assert recorded.outcome == "error"
    observation = last_observation(engine)
    assert (observation["error_class"], observation["attempts"]) == ("timeout", 1)
    assert observation["duration_ms"] < 1500  # we did not wait for the slow answer


def test_a_trickled_body_ends_at_its_deadline_as_an_error_that_closes_nothing(
    engine: Engine, sim: SimServer
) -> None:
    """400 bytes every 0.25 s: every read returns within any read timeout, yet the 20 kB
    document would take 12 s. The poll's 1 s deadline ends it, status known, body not."""
    job = job_for(engine, sim, timeout_seconds=1.0, max_attempts=3)
    assert job.run().outcome == "changed"
    before = version_counts(engine)
    sim.state.remove_symbol("ETHBTC")  # a delisting the cut body must not record
    add_fault(sim, kind="trickle", chunk_bytes=400, delay_seconds=0.25, count=3)

    started = time.monotonic()
    assert job.run().outcome == "error"

    assert time.monotonic() - started < 5
    assert version_counts(engine) == before
    observation = last_observation(engine)
    assert (
        observation["http_status"],
        observation["error_class"],
        observation["attempts"],
    ) == (200, "timeout", 1)
    assert 1000 <= observation["duration_ms"] < 2000


def test_headers_sent_a_byte_at_a_time_end_at_the_deadline_too() -> None:
    """~450 bytes of status line and headers at one byte every 50 ms: 20 s, each read
    quick. The deadline bounds the whole response, not only its body."""
    with SlowHeadServer(delay=0.05) as server:
        client = BinanceClient(poller_settings(server.url).binance)
        started = time.monotonic()
        response = client.get("/api/v3/exchangeInfo", deadline=Deadline(1.0))
        took = time.monotonic() - started
        client.close()

    assert (response.status, response.error_class, response.body) == (200, "timeout", None)
    assert response.error_message == (
        "the 1 s deadline passed with the response incomplete (HTTP 200)"
    )
    assert took < 3


@pytest.mark.parametrize(
    ("fault", "status", "error_class", "pause"),
    [("rate_limit", 429, "rate_limited", 3), ("ip_ban", 418, "ip_banned", 2)],
)
def test_after_429_or_418_nothing_is_sent_until_retry_after_has_passed(
    engine: Engine, sim: SimServer, fault: str, status: int, error_class: str, pause: int
) -> None:
    stop = threading.Event()
    client = client_for(sim.url, stop=stop, max_attempts=3)
    job = exchange_info_job(client, StreamWriter(engine, "exchange_info"), "test")
    poller = Poller([ScheduledJob(job, 0.2)], stop)
    add_fault(sim, kind=fault, retry_after=pause)

    poller.start()
    time.sleep(pause + 1.2)
    assert poller.shutdown(grace_seconds=2)

    log = sim_log(sim)
    assert [r["status"] for r in log[:1]] == [status]
    assert 418 not in [r["status"] for r in log[1:]]  # the sim never had to ban us
    assert len(log) >= 3  # polling resumed
    assert log[1]["received_at"] - log[0]["received_at"] >= pause
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT http_status, error_class, error_code, attempts FROM observations"
                " ORDER BY id"
            )
        ).all()
    assert tuple(rows[0]) == (status, error_class, -1003, 1)
    paused = [r for r in rows if r.error_class == "rate_limited_pause"]
    assert len(paused) >= pause * 3  # every tick of the pause is on record, none sent
    assert {(r.http_status, r.attempts) for r in paused} == {(None, 0)}
    assert rows[-1].error_class is None


def test_one_jobs_429_pauses_every_job_of_the_replica(engine: Engine, sim: SimServer) -> None:
    client = client_for(sim.url)  # one per replica, shared by its jobs
    first, second = (
        exchange_info_job(client, StreamWriter(engine, "exchange_info"), replica)
        for replica in ("first", "second")
    )
    add_fault(sim, kind="rate_limit", retry_after=30)

    assert first.run().outcome == "error"
    assert second.run().outcome == "error"

    assert [r["status"] for r in sim_log(sim)] == [429]  # the second job sent nothing
    assert last_observation(engine)["error_class"] == "rate_limited_pause"


class SharedClock:
    """One clock for the sim and the poller, moved by the poller's waits: minutes in no time."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_used_weight_above_the_budget_delays_the_next_request_to_the_next_minute(
    engine: Engine,
) -> None:
    clock = SharedClock(60 * 28_000_000 + 10.0)  # 10 s into a minute
    settings = poller_settings("http://unused")
    with SimServer(SimState.from_file(clock=clock)) as sim:
        client = RetryingClient(
            BinanceClient(poller_settings(sim.url).binance),
            RetryPolicy.from_settings(settings),
            RateGate(),
            WeightBudget(0.01, clock=clock),  # 60 of 6000: three exchangeInfo calls
            wait=clock.wait,
        )
        responses = [client.get("/api/v3/exchangeInfo") for _ in range(5)]
        log = sim_log(sim)

    assert [r.used_weight for r in responses] == [20, 40, 60, 80, 20]
    assert clock.waits == [pytest.approx(50.5)]  # once over budget, to the next minute
    assert responses[4].backoff_ms == 50_500
    assert int(log[4]["received_at"] // 60) == int(log[3]["received_at"] // 60) + 1


def test_the_weight_budget_follows_the_exchange_limit(engine: Engine, sim: SimServer) -> None:
    document = requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=5).json()
    document["rateLimits"][0]["limit"] = 1200
    requests.put(f"{sim.url}/_sim/exchange-info", json=document, timeout=5).raise_for_status()
    job = job_for(engine, sim)
    assert job.client.budget.limit == 6000  # until the exchange says otherwise

    job.run()

    assert job.client.budget.limit == 1200


def test_a_stop_cuts_a_backoff_short(engine: Engine, sim: SimServer) -> None:
    stop = threading.Event()
    job = exchange_info_job(
        client_for(
            sim.url,
            stop=stop,
            max_attempts=3,
            backoff_base_seconds=20,
            backoff_cap_seconds=40,
            timeout_seconds=60,  # the back-off fits in the deadline: only the stop cuts it
        ),
        StreamWriter(engine, "exchange_info"),
        "test",
    )
    add_fault(sim, kind="status", status=500, count=3)
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    assert job.run().outcome == "error"

    assert time.monotonic() - started < 5  # not the 10-20 s back-off
    assert len(sim_log(sim)) == 1
