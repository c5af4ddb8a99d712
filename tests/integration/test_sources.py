"""One source per history: observations name their source, another source is refused,
and an explicit move to a new source is a gap between two histories, never a delisting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import Engine, text

from api import create_app
from binance_sim.server import SimServer
from core import changes as feed
from core.config import Settings
from core.history import Gap, evidence, gaps, symbol_as_of
from core.ingest import SourceMismatchError, claim_sources
from core.sources import source_of
from core.timeparse import format_instant
from core.verify import verify_history
from poller.runner import Poller, ScheduledJob
from tests.builders import at, exchange_info, exchange_info_poll, record_exchange_info, symbol
from tests.e2e.processes import Replicas, exmeta_env, free_port, run_exmeta, scalar, wait_for

LONG_INTERVAL = 3600.0  # so long that only the move to a new source can make a gap


def observation_count(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM observations") or 0)


def sim_symbols(sim: SimServer) -> list[str]:
    return [s["symbol"] for s in orjson.loads(sim.state.exchange_info_body())["symbols"]]


@pytest.fixture
def other_sim() -> Iterator[SimServer]:
    """A second Binance look-alike on another port: another source."""
    with SimServer() as server:
        yield server


def test_observations_record_their_source_never_credentials(
    engine: Engine, api_engine: Engine, sim: SimServer
) -> None:
    port = sim.url.rsplit(":", 1)[1]
    job = exchange_info_poll(engine, f"http://alice:s3cret@127.0.0.1:{port}")

    assert job.run().outcome == "changed"

    with engine.connect() as conn:
        sources = conn.execute(text("SELECT DISTINCT source FROM observations")).scalars().all()
        head = conn.execute(
            text("SELECT source FROM stream_heads WHERE stream = 'exchange_info'")
        ).scalar_one()
        stored = conn.execute(
            text("SELECT string_agg(o::text, ' ') FROM observations o")
        ).scalar_one()
    assert sources == [f"http://127.0.0.1:{port}"]
    assert head == f"http://127.0.0.1:{port}"
    assert "s3cret" not in stored
    assert "alice" not in stored
    answer = create_app(Settings(), api_engine).test_client().get("/v1/observations")
    assert answer.json is not None
    assert [o["source"] for o in answer.json["observations"]] == [f"http://127.0.0.1:{port}"]


def test_poll_of_another_source_is_refused_in_one_line_and_writes_nothing(
    engine: Engine, sim: SimServer, other_sim: SimServer, database_url: str, tmp_path: Path
) -> None:
    exchange_info_poll(engine, sim.url).run()
    before = observation_count(engine)

    result = run_exmeta(exmeta_env(database_url, other_sim.url, 0.5), tmp_path, "poll")

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert source_of(sim.url) in lines[0]
    assert source_of(other_sim.url) in lines[0]
    assert "--new-source" in lines[0]
    assert observation_count(engine) == before
    assert scalar(engine, "SELECT source FROM stream_heads WHERE stream = 'exchange_info'") == (
        source_of(sim.url)
    )
    assert other_sim.state.requests() == []  # refused before asking it anything


def test_up_of_another_source_is_refused_with_exit_2(
    engine: Engine, sim: SimServer, other_sim: SimServer, database_url: str, tmp_path: Path
) -> None:
    exchange_info_poll(engine, sim.url).run()
    before = observation_count(engine)
    env = exmeta_env(database_url, other_sim.url, 0.5, API__PORT=str(free_port()))

    result = run_exmeta(env, tmp_path, "up")

    assert result.returncode == 2, result.stderr
    refusal = result.stderr.strip().splitlines()[-1]
    assert source_of(sim.url) in refusal
    assert source_of(other_sim.url) in refusal
    assert observation_count(engine) == before


def test_new_source_is_a_gap_between_two_histories_not_a_delisting(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    other_sim: SimServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    names = sim_symbols(sim)
    gone, halted = names[0], names[1]
    other_sim.state.remove_symbol(gone)  # the new source lacks one symbol ...
    other_sim.state.patch_symbol(halted, fields={"status": "HALT"})  # ... and differs on one
    old = exchange_info_poll(engine, sim.url)
    assert old.run().outcome == "changed"
    assert old.run().outcome == "unchanged"
    start = datetime.now(UTC) - timedelta(minutes=1)

    with Replicas(tmp_path) as replicas:
        replicas.start("b", exmeta_env(database_url, other_sim.url, 0.5), "--new-source")
        assert wait_for(
            lambda: scalar(
                engine,
                "SELECT count(*) FROM observations WHERE stream = 'exchange_info'"
                " AND outcome = 'changed' AND source = :s",
                s=source_of(other_sim.url),
            ),
            30,
        ), replicas.log("b")
        assert replicas.stop() == {"b": 0}

    with engine.connect() as conn:
        last_old, switched, first_new = conn.execute(
            text(
                "SELECT (SELECT max(observed_at) FROM observations WHERE stream = 'exchange_info'"
                "        AND outcome IN ('changed', 'unchanged') AND source = :a),"
                "       (SELECT observed_at FROM observations WHERE stream = 'exchange_info'"
                "        AND outcome = 'switched' AND source = :b),"
                "       (SELECT min(observed_at) FROM observations WHERE stream = 'exchange_info'"
                "        AND outcome IN ('changed', 'unchanged') AND source = :b)"
            ),
            {"a": source_of(sim.url), "b": source_of(other_sim.url)},
        ).one()
        now = datetime.now(UTC)
        assert last_old < switched < first_new

        # As of the old source's last poll, its answer; in between, nothing and a gap;
        # after, the new source's.
        assert symbol_as_of(conn, gone, last_old) is not None
        old_rules = symbol_as_of(conn, halted, last_old)
        assert old_rules is not None
        assert old_rules.symbol.fields["status"] == "TRADING"
        assert symbol_as_of(conn, halted, switched) is None
        inside = evidence(conn, "exchange_info", switched, LONG_INTERVAL, now)
        assert (inside.gap, inside.gap_from, inside.gap_to) == (True, last_old, first_new)
        assert symbol_as_of(conn, gone, first_new) is None
        new_rules = symbol_as_of(conn, halted, first_new)
        assert new_rules is not None
        assert new_rules.symbol.fields["status"] == "HALT"
        assert not evidence(conn, "exchange_info", first_new, LONG_INTERVAL, now).gap
        assert gaps(conn, "exchange_info", start, now, LONG_INTERVAL, now) == [
            Gap("exchange_info", last_old, first_new)
        ]

        # The feed tells of no delisting (nor listing) of what either source held.
        page = feed.changes(
            conn, last_old, now + timedelta(seconds=1), streams=("exchange_info",), limit=10_000
        )
        assert [c for c in page.changes if c.field == feed.LISTED] == []
        assert [c for c in page.changes if c.key == halted] == []

        assert verify_history(conn) == []

    # The diff does not compare two sources' states: that would be every symbol removed.
    client = create_app(Settings(), api_engine).test_client()
    across = client.get(f"/v1/diff?from={quote(format_instant(last_old) or '')}")
    assert across.status_code == 409, across.json
    assert across.json is not None
    assert across.json["error"]["code"] == "different_sources"
    later = first_new + timedelta(milliseconds=1)
    within = client.get(f"/v1/diff?from={quote(format_instant(later) or '')}")
    assert within.status_code == 200, within.json


def test_a_replica_still_polling_the_old_source_writes_nothing_and_stops(
    engine: Engine, sim: SimServer, other_sim: SimServer
) -> None:
    old = exchange_info_poll(engine, sim.url)
    assert old.run().outcome == "changed"
    switches = claim_sources(
        engine, {"exchange_info": source_of(other_sim.url)}, "other", new_source=True
    )
    assert [(s.old, s.new) for s in switches] == [(source_of(sim.url), source_of(other_sim.url))]
    before = observation_count(engine)

    with pytest.raises(SourceMismatchError):
        old.run()
    poller = Poller([ScheduledJob(old, 0.1)])
    thread = threading.Thread(target=poller.run)
    thread.start()
    stopped = poller.stop.wait(10)
    poller.shutdown(1)
    thread.join(5)

    assert stopped
    assert poller.refused is not None
    assert observation_count(engine) == before


def test_a_running_poll_process_stops_with_exit_2_once_its_stream_moved(
    engine: Engine, sim: SimServer, database_url: str, tmp_path: Path
) -> None:
    elsewhere = "https://testnet.binance.vision:443"
    with Replicas(tmp_path) as replicas:
        replicas.start("a", exmeta_env(database_url, sim.url, 0.2))
        assert replicas.logged("a", "exchange_info poll changed", 30), replicas.log("a")
        claim_sources(engine, {"exchange_info": elsewhere}, "other", new_source=True)
        assert replicas["a"].wait(30) == 2, replicas.log("a")
    last = replicas.log("a").strip().splitlines()[-1]
    assert last.startswith("exmeta: error:")
    assert source_of(sim.url) in last
    assert elsewhere in last
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM observations WHERE stream = 'exchange_info'"
            " AND id > (SELECT id FROM observations WHERE outcome = 'switched')",
        )
        == 0
    )


def test_a_history_from_before_sources_is_adopted_by_the_first_poller(engine: Engine) -> None:
    source = "https://api.binance.com:443"
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), at("2025-01-01T00:00:00"))

    assert claim_sources(engine, {"exchange_info": source}, "r1") == []

    assert scalar(engine, "SELECT source FROM stream_heads WHERE stream = 'exchange_info'") == (
        source
    )
    assert scalar(engine, "SELECT count(*) FROM symbol_versions WHERE valid_to IS NULL") == 1


def test_claims_are_refused_without_the_flag_and_repeat_as_no_ops_with_it(
    engine: Engine,
) -> None:
    a, b = "https://api.binance.com:443", "https://testnet.binance.vision:443"
    assert claim_sources(engine, {"exchange_info": a}, "r1") == []
    with pytest.raises(SourceMismatchError, match="testnet"):
        claim_sources(engine, {"exchange_info": b}, "r2")
    assert observation_count(engine) == 0

    assert len(claim_sources(engine, {"exchange_info": b}, "r2", new_source=True)) == 1
    assert claim_sources(engine, {"exchange_info": b}, "r2", new_source=True) == []
    assert scalar(engine, "SELECT count(*) FROM observations WHERE outcome = 'switched'") == 1


def test_poll_that_cannot_check_its_sources_says_so_in_one_line(
    sim: SimServer, tmp_path: Path
) -> None:
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/exmeta"

    result = run_exmeta(exmeta_env(nowhere, sim.url, 1), tmp_path, "poll", timeout=30)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot check the streams' sources" in result.stderr.strip().splitlines()[-1]
    assert sim.state.requests() == []


def test_replicas_starting_together_agree_on_one_source(engine: Engine) -> None:
    record_exchange_info(engine, exchange_info(symbol("BTCUSDT")), at("2025-01-01T00:00:00"))
    outcomes: dict[str, str] = {}

    def claim(source: str) -> None:
        try:
            claim_sources(engine, {"exchange_info": source}, source)
            outcomes[source] = "claimed"
        except SourceMismatchError:
            outcomes[source] = "refused"

    sources = ("https://api.binance.com:443", "https://testnet.binance.vision:443")
    threads = [threading.Thread(target=claim, args=(s,)) for s in sources]
    with engine.connect() as blocker:
        blocker.execute(
            text("SELECT 1 FROM stream_heads WHERE stream = 'exchange_info' FOR UPDATE")
        )
        for thread in threads:
            thread.start()
        # Both claims read the head while it is held: neither may decide before the other.
        assert wait_for(
            lambda: (
                scalar(
                    engine, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )
                == 2
            ),
            10,
        )
        blocker.rollback()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes.values()) == ["claimed", "refused"]
    [winner] = [s for s, outcome in outcomes.items() if outcome == "claimed"]
    assert scalar(engine, "SELECT source FROM stream_heads WHERE stream = 'exchange_info'") == (
        winner
    )
