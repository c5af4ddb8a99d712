"""Replicas share one IP's standing with Binance through the database.

Each test runs two replicas in this process: two ``RetryingClient`` instances, each with
its own gate, budget and ``SharedBudget``, on one database and one sim. Replica A polls
exchangeInfo and replica B the system status, as two replicas holding different leases
do, so the sim's request log tells their requests apart by path.
"""

import time
import uuid

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

import migrations
from binance_sim.server import SimServer
from binance_sim.state import EXCHANGE_INFO_PATH, SYSTEM_STATUS_PATH
from core.config import DatabaseSettings
from core.db import create_db_engine
from core.ingest import StreamWriter
from core.request_budget import Standing
from poller.binance import BinanceClient
from poller.retry import RateGate, RetryingClient, RetryPolicy, SharedBudget, WeightBudget
from tests.builders import client_for, poller_settings, system_status_job
from tests.conftest import DatabaseServer
from tests.sim_client import add_fault, sim_log
from tests.weight_minutes import seconds_to_next_minute, start_well_inside_a_minute


def replica(engine: Engine, sim: SimServer, name: str) -> RetryingClient:
    return client_for(sim.url, shared=SharedBudget(engine, name))


def standing_row(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT used_weight, weight_window = date_trunc('minute', clock_timestamp())"
                " AS this_minute, paused_until > clock_timestamp() AS paused, pause_reason"
                " FROM request_budget"
            )
        ).mappings()
        return dict(row.one())


@pytest.mark.parametrize(
    ("fault", "status", "error_class"),
    [("rate_limit", 429, "rate_limited"), ("ip_ban", 418, "ip_banned")],
)
def test_a_429_or_418_seen_by_one_replica_pauses_the_others_until_retry_after(
    engine: Engine, sim: SimServer, fault: str, status: int, error_class: str
) -> None:
    a = replica(engine, sim, "a")
    b_job = system_status_job(replica(engine, sim, "b"), StreamWriter(engine, "system_status"), "b")
    add_fault(sim, kind=fault, retry_after=2)

    assert a.get(EXCHANGE_INFO_PATH).error_class == error_class
    paused = b_job.run()
    during = [b_job.run() for _ in range(3)]
    time.sleep(2.2)
    resumed = b_job.run()

    log = sim_log(sim)
    assert [(r["path"], r["status"]) for r in log] == [
        (EXCHANGE_INFO_PATH, status),
        (SYSTEM_STATUS_PATH, 200),
    ]
    assert log[1]["received_at"] - log[0]["received_at"] >= 2
    assert [r.outcome for r in (paused, *during, resumed)] == ["error"] * 4 + ["changed"]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT error_class, attempts, error_message FROM observations"
                " WHERE stream = 'system_status' ORDER BY id"
            )
        ).all()
    assert [(r.error_class, r.attempts) for r in rows] == [("rate_limited_pause", 0)] * 4 + [
        (None, 1)
    ]
    assert f"HTTP {status} seen by a" in rows[0].error_message


def test_a_pause_is_shared_even_when_it_is_news_to_a_replica_with_requests_in_flight(
    engine: Engine, sim: SimServer
) -> None:
    a, b = replica(engine, sim, "a"), replica(engine, sim, "b")
    assert b.get(SYSTEM_STATUS_PATH).ok  # B has been talking to Binance already
    add_fault(sim, kind="rate_limit", retry_after=30)

    assert a.get(EXCHANGE_INFO_PATH).status == 429
    later = b.get(SYSTEM_STATUS_PATH)

    assert (later.error_class, later.attempts) == ("rate_limited_pause", 0)
    assert [r["path"] for r in sim_log(sim)] == [SYSTEM_STATUS_PATH, EXCHANGE_INFO_PATH]
    assert standing_row(engine)["paused"] is True
    assert b.gate.remaining() > 25  # learnt once: B's next polls need no database round trip


class RacedBudget(SharedBudget):
    """A shared budget during whose round trip another job of the replica is told of a 429."""

    gate: RateGate

    def check(self, budget: float) -> Standing | None:
        standing = super().check(budget)
        self.gate.close_for(30, "HTTP 429")
        return standing


def test_a_429_told_to_another_job_while_the_database_was_asked_stops_the_request(
    engine: Engine, sim: SimServer
) -> None:
    shared = RacedBudget(engine, "a")
    client = client_for(sim.url, shared=shared)
    shared.gate = client.gate

    answer = client.get(SYSTEM_STATUS_PATH)

    assert (answer.error_class, answer.attempts) == ("rate_limited_pause", 0)
    assert sim_log(sim) == []


class AgeingWait:
    """A replica's ``wait`` that records each wait and lets the minute pass in no time.

    ``exmeta poll`` waits on its stop event; this wait instead moves the recorded window a
    minute back, which is all that a minute passing changes in the row. The code path
    that decides to wait, and what to do after, is the production one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE request_budget SET weight_window = weight_window - interval '1 min'")
            )
        return False


def test_used_weight_above_the_budget_seen_by_one_replica_makes_the_others_wait_a_window(
    engine: Engine, sim: SimServer
) -> None:
    start_well_inside_a_minute(engine)
    settings = poller_settings(sim.url)
    a = replica(engine, sim, "a")
    wait = AgeingWait(engine)
    b = RetryingClient(
        BinanceClient(settings.binance),
        RetryPolicy.from_settings(settings),
        RateGate(),
        WeightBudget(settings.poller.weight_budget),
        wait=wait,
        shared=SharedBudget(engine, "b"),
    )
    a.budget.fraction = b.budget.fraction = 50 / 6000  # two exchangeInfo calls go over it

    assert [a.get(EXCHANGE_INFO_PATH).used_weight for _ in range(3)] == [20, 40, 60]
    assert standing_row(engine)["used_weight"] == 60  # above the budget: reported at once
    left = seconds_to_next_minute(engine)
    response = b.get(SYSTEM_STATUS_PATH)

    assert response.ok
    assert len(wait.waits) == 1  # one wait, then the next window's request went out
    assert left - 0.5 < wait.waits[0] <= left + 0.5  # to the next window, plus the margin
    assert response.backoff_ms == int(wait.waits[0] * 1000)
    assert [r["path"] for r in sim_log(sim)] == [EXCHANGE_INFO_PATH] * 3 + [SYSTEM_STATUS_PATH]


def test_used_weight_within_the_budget_holds_nobody_back(engine: Engine, sim: SimServer) -> None:
    start_well_inside_a_minute(engine)
    a, b = replica(engine, sim, "a"), replica(engine, sim, "b")

    assert [a.get(EXCHANGE_INFO_PATH).used_weight for _ in range(3)] == [20, 40, 60]
    assert b.get(SYSTEM_STATUS_PATH).used_weight == 61
    assert a.get(EXCHANGE_INFO_PATH).used_weight == 81  # its check reported 60
    assert b.get(SYSTEM_STATUS_PATH).used_weight == 82  # its check reported 61

    row = standing_row(engine)
    assert (row["used_weight"], row["this_minute"], row["paused"]) == (61, True, False)


def test_without_the_database_a_replica_keeps_its_own_pause_and_tells_the_others_later(
    pg_server: DatabaseServer, sim: SimServer
) -> None:
    name = f"exmeta_late_{uuid.uuid4().hex[:10]}"  # not created yet: unreachable
    url = make_url(pg_server.admin_url).set(database=name).render_as_string(hide_password=False)
    late = create_db_engine(url, DatabaseSettings(connect_timeout_seconds=1))
    try:
        a, b = replica(late, sim, "a"), replica(late, sim, "b")
        assert a.get(EXCHANGE_INFO_PATH).ok  # no answer from the database holds nobody back
        add_fault(sim, kind="rate_limit", retry_after=30)
        assert a.get(EXCHANGE_INFO_PATH).status == 429
        assert a.get(SYSTEM_STATUS_PATH).error_class == "rate_limited_pause"  # its own gate

        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        pg_server.created.append(name)
        migrations.upgrade(late)
        assert a.get(SYSTEM_STATUS_PATH).error_class == "rate_limited_pause"  # and tells
        told = b.get(SYSTEM_STATUS_PATH)
    finally:
        late.dispose()

    assert (told.error_class, told.attempts) == ("rate_limited_pause", 0)
    assert "HTTP 429 seen by a" in (told.error_message or "")
    assert [(r["path"], r["status"]) for r in sim_log(sim)] == [
        (EXCHANGE_INFO_PATH, 200),
        (EXCHANGE_INFO_PATH, 429),
    ]
