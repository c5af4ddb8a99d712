"""What the poller's log says of each poll: a cause a person can act on, what changed, a
summary instead of a line per unchanged poll, and never ``None``."""

import logging
import re
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import requests
from sqlalchemy import Engine

from api import create_app
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import StreamWriter
from poller.job import StreamJob
from tests.builders import client_for, exchange_info_job
from tests.tls_server import SelfSignedServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIM_HINT = "offline or firewalled? `exmeta sim` serves a Binance look-alike"


@pytest.fixture
def poll_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "None" in m]


def job_for(engine: Engine, base_url: str, **binance: object) -> StreamJob:
    client = client_for(base_url, **binance)
    return exchange_info_job(client, StreamWriter(engine, "exchange_info"), "test")


def said(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """What a person reads at ``level``: the poller's lines."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and r.name.startswith(("poller", "core"))
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_one_line_naming_the_url_the_cause_and_the_sim(
    engine: Engine, poll_log: pytest.LogCaptureFixture
) -> None:
    port = closed_port()

    recorded = job_for(engine, f"http://127.0.0.1:{port}", max_attempts=3).run()

    assert recorded.outcome == "error"
    [line] = said(poll_log)
    assert line.startswith("exchange_info poll error in ")
    assert line.endswith(
        f"(3 attempts): cannot reach http://127.0.0.1:{port}: connection to 127.0.0.1 refused;"
        f' {SIM_HINT} (README, "Offline, against the Binance look-alike")'
    )
    # Nothing else at INFO or above, from any library: no urllib3 repr.
    assert [r.getMessage() for r in poll_log.records if r.levelno >= logging.INFO] == [line]
    retries = [m for m in said(poll_log, logging.DEBUG) if m.startswith("attempt ")]
    assert len(retries) == 2
    assert all("connection to 127.0.0.1 refused" in m for m in retries)


def test_an_unresolvable_host_is_named_as_a_dns_failure(
    engine: Engine, poll_log: pytest.LogCaptureFixture
) -> None:
    job_for(engine, "http://binance.invalid", max_attempts=1).run()

    [line] = said(poll_log)
    assert ": cannot reach http://binance.invalid:80: DNS: cannot resolve binance.invalid (" in line
    assert SIM_HINT in line


def test_tls_to_a_port_that_speaks_plain_http_is_named_as_a_tls_failure(
    engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture
) -> None:
    https = sim.url.replace("http://", "https://")

    job_for(engine, https, max_attempts=1).run()

    [line] = said(poll_log)
    assert f": cannot reach {https}: TLS handshake with 127.0.0.1 failed (" in line
    assert SIM_HINT in line


def test_a_certificate_the_client_does_not_trust_is_named_as_a_tls_failure(
    engine: Engine, tmp_path: Path, poll_log: pytest.LogCaptureFixture
) -> None:
    with SelfSignedServer(tmp_path) as server:
        job_for(engine, server.url, max_attempts=1).run()

    [line] = said(poll_log)
    assert f": cannot reach {server.url}: TLS: the certificate of 127.0.0.1 is not trusted (" in (
        line
    )
    assert SIM_HINT in line


def test_a_server_that_never_answers_is_named_as_a_timeout(
    engine: Engine, poll_log: pytest.LogCaptureFixture
) -> None:
    # Connections complete in the kernel's backlog; nothing is ever read or answered.
    with closing(socket.create_server(("127.0.0.1", 0))) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        job_for(engine, url, timeout_seconds=0.5, max_attempts=1).run()

    [line] = said(poll_log)
    assert line.endswith(
        f": cannot reach {url}: the 0.5 s deadline passed before the status line came;"
        f' {SIM_HINT} (README, "Offline, against the Binance look-alike")'
    )


@pytest.mark.parametrize("status", [451, 200])
def test_the_geo_block_says_binance_refuses_this_location(
    engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture, status: int
) -> None:
    notice = orjson.loads((FIXTURES / "restricted_location_2022-12-07.json").read_bytes())
    requests.post(
        f"{sim.url}/_sim/faults", json={"kind": "geo_block", "status": status}, timeout=5
    ).raise_for_status()

    job_for(engine, sim.url, max_attempts=1).run()

    [line] = said(poll_log)
    assert f"(HTTP {status}, weight used this minute 20)" in line
    assert line.endswith(
        f": Binance refuses requests from this location at {sim.url} ({notice['msg']});"
        " poll from a location Binance serves; to try exmeta, `exmeta sim` serves a Binance"
        ' look-alike (README, "Offline, against the Binance look-alike")'
    )


def test_readyz_gives_the_last_failure_of_a_stream_that_never_succeeded(
    engine: Engine, api_engine: Engine, poll_log: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    job_for(engine, f"http://127.0.0.1:{port}", max_attempts=1).run()
    client = create_app(Settings(), api_engine, streams=("exchange_info",)).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    [reason] = response.json["reasons"]
    assert reason.startswith("exchange_info: no successful observation yet; last poll 20")
    assert reason.endswith(
        f"Z: connection: connection to 127.0.0.1 refused (http://127.0.0.1:{port})"
    )


def test_readyz_gives_the_failure_that_made_a_stream_stale(
    engine: Engine, api_engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture
) -> None:
    job_for(engine, sim.url).run()
    requests.post(
        f"{sim.url}/_sim/faults", json={"kind": "geo_block", "status": 451}, timeout=5
    ).raise_for_status()
    job_for(engine, sim.url, max_attempts=1).run()
    later = datetime.now(UTC) + timedelta(minutes=5)  # the success is older than 3 intervals
    client = create_app(
        Settings(), api_engine, clock=lambda: later, streams=("exchange_info",)
    ).test_client()

    [reason] = client.get("/readyz").json["reasons"]

    assert "is older than 30 s; last poll " in reason
    assert reason.endswith(
        "Z: http_status, code 0: Service unavailable from a restricted location according to"
        " 'b. Eligibility' in https://www.binance.com/en/terms. Please contact customer service"
        f" if you believe you received this message in error. ({sim.url})"
    )


def test_a_change_names_what_changed_and_unchanged_polls_are_summed_up_once_a_minute(
    engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture
) -> None:
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    now = [start]
    client = client_for(sim.url)
    job = exchange_info_job(client, StreamWriter(engine, "exchange_info"), "test", lambda: now[0])

    def poll_at(second: int) -> str:
        now[0] = start + timedelta(seconds=second)
        return job.run().outcome

    assert poll_at(0) == "changed"
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    assert poll_at(1) == "changed"
    assert [poll_at(s) for s in (30, 59, 60)] == ["unchanged"] * 3

    first, halted, summary = [m for m in said(poll_log) if m.startswith("exchange_info")]
    assert first.startswith("exchange_info poll changed in ")
    assert first.endswith(
        "(HTTP 200, weight used this minute 20): 16 changes to 4 rate_limits, 12 symbols:"
        " ORDERS:DAY:1 listed; ORDERS:SECOND:10 listed; RAW_REQUESTS:MINUTE:5 listed;"
        " REQUEST_WEIGHT:MINUTE:1 listed; ADAUSDT listed; and 11 more"
    )
    # The sim counts weight per clock minute, which may turn between two polls: 20 each.
    assert re.fullmatch(
        r"exchange_info poll changed in \d+ ms \(HTTP 200, weight used this minute (20|40)\):"
        r" ETHBTC status TRADING→HALT",
        halted,
    )
    assert re.fullmatch(
        r"exchange_info: 5 polls in the last 60 s: 2 changed, 3 unchanged;"
        r" weight used this minute (20|40|60|80|100)",
        summary,
    )
    unchanged = [m for m in said(poll_log, logging.DEBUG) if "poll unchanged" in m]
    assert len(unchanged) == 3  # each still has its line, at DEBUG


def test_a_body_the_parser_refuses_says_why(
    engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture
) -> None:
    requests.post(
        f"{sim.url}/_sim/faults", json={"kind": "invalid_json"}, timeout=5
    ).raise_for_status()

    assert job_for(engine, sim.url, max_attempts=1).run().outcome == "error"

    [line] = said(poll_log)
    assert "(HTTP 200, weight used this minute 20): invalid_payload: " in line


def test_a_replicas_first_poll_is_logged_even_unchanged(
    engine: Engine, sim: SimServer, poll_log: pytest.LogCaptureFixture
) -> None:
    job_for(engine, sim.url).run()
    restarted = job_for(engine, sim.url)

    assert [restarted.run().outcome, restarted.run().outcome] == ["unchanged", "unchanged"]

    lines = [m for m in said(poll_log) if m.startswith("exchange_info poll")]
    assert [line.split(" in ")[0] for line in lines] == [
        "exchange_info poll changed",
        "exchange_info poll unchanged",
    ]
