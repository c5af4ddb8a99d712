"""A poll that finds nothing new: one ``unchanged`` observation, nothing else written, and
few round trips to the database (its cost is mostly theirs: bench/usdm_poll.py, P11)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, event, text

from binance_sim.server import SimServer
from core.bodies import blank_server_time
from core.ingest import Group, Snapshot, StreamWriter
from core.leases import Lease
from core.streams import market
from poller.parse import parse_exchange_info
from poller.runner import Replica, build_poller
from tests.builders import at, exchange_info, poller_settings, record_body, symbol

USDM = market("usdm")
USDM_TABLES = (USDM.symbols, USDM.filters, USDM.rate_limits, USDM.exchange_filters)


def written(engine: Engine) -> dict[str, Any]:
    """Everything a poll could have written, counted."""
    with engine.connect() as conn:
        counts: dict[str, Any] = {
            table: tuple(conn.execute(text(f"SELECT count(*), count(valid_to) FROM {table}")).one())
            for table in (*USDM_TABLES, "schema_versions")
        }
        counts["raw_bodies"] = conn.execute(text("SELECT count(*) FROM raw_bodies")).scalar_one()
        counts["observations"] = conn.execute(
            text("SELECT outcome, count(*) FROM observations GROUP BY 1 ORDER BY 1")
        ).all()
    return counts


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """The SQL statements sent to ``engine`` inside the block, in order, each with whether
    it went alone (autocommit: no BEGIN and COMMIT round trips around it)."""
    sent: list[tuple[str, bool]] = []

    def record(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        sent.append((" ".join(statement.split())[:70], cursor.connection.autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_no_change_usdm_poll_writes_one_unchanged_observation_in_few_statements(
    engine: Engine, sim: SimServer
) -> None:
    settings = poller_settings(sim.url)
    poller = build_poller(settings, engine, "r0")
    job = next(s.job for s in poller.jobs if s.job.stream == USDM.exchange_info)
    replica = Replica(engine, "r0", settings.poller.lease_seconds, 10)

    def poll() -> str:
        lease = replica.acquire(job.stream, 0)  # interval 0: the next slot is due at once
        assert isinstance(lease, Lease)
        return job.run(lease).outcome

    assert poll() == "changed"
    assert poll() == "unchanged"  # the weight budget now knows the limit: a steady poll
    before = written(engine)
    with statements(engine) as sent:
        assert poll() == "unchanged"
    after = written(engine)

    assert after.pop("observations") == [("changed", 1), ("unchanged", 2)]
    assert before.pop("observations") == [("changed", 1), ("unchanged", 1)]
    assert after == before  # no version opened or closed, no body stored
    with engine.connect() as conn:
        head = conn.execute(
            text(
                "SELECT h.last_observation_id = max(o.id), h.state_observation_id = min(o.id),"
                " h.last_applied_at = max(o.observed_at)"
                " FROM stream_heads h JOIN observations o USING (stream)"
                " WHERE h.stream = :s GROUP BY h.stream, h.last_observation_id,"
                " h.state_observation_id, h.last_applied_at"
            ),
            {"s": USDM.exchange_info},
        ).one()
        counted = conn.execute(
            text("SELECT sum(polls) FROM poll_totals WHERE stream = :s AND outcome = 'unchanged'"),
            {"s": USDM.exchange_info},
        ).scalar_one()
    # The head moved on to the last poll; its state is still the first poll's.
    assert tuple(head) == (True, True, True)
    assert counted == 2  # what /metrics reads
    # The lease (1), the shared weight budget around the request (1), then the write: lock
    # and read the stream head with the database clock and whether the lease is still in
    # force (1), the observation with its count and the head advanced to it (1). The
    # first two go alone; the write's two are one transaction.
    listed = "\n".join(f"{alone!s:5} {statement}" for statement, alone in sent)
    assert [alone for _, alone in sent] == [True, True, False, False], listed
    assert "stream_leases" in sent[0][0], listed


def test_a_restarted_writer_builds_its_state_on_its_first_poll_so_a_change_builds_only_its_own(
    engine: Engine,
) -> None:
    names = [f"S{n}USDT" for n in range(20)]
    built: list[tuple[str, tuple[Any, ...]]] = []

    def counted(table: str, key: tuple[Any, ...], build: Callable[[], Any]) -> Callable[[], Any]:
        def build_counted() -> Any:
            built.append((table, key))
            return build()

        return build_counted

    def parse(body: bytes) -> Snapshot:
        snapshot = parse_exchange_info(body)
        for kind in snapshot:
            for key, group in kind.groups.items():
                kind.groups[key] = Group(group.digest, counted(kind.table, key, group.build))
        return snapshot

    def body(status_of_s3: str) -> bytes:
        document = exchange_info(
            *(symbol(n, status=status_of_s3 if n == "S3USDT" else "TRADING") for n in names)
        )
        return blank_server_time(orjson.dumps(document))[0]

    record_body(engine, "exchange_info", body("TRADING"), at("2024-01-01T00:00:00"), parse)
    restarted = StreamWriter(engine, "exchange_info")  # a replica started again: holds nothing
    first = record_body(
        engine, "exchange_info", body("TRADING"), at("2024-01-01T00:00:10"), parse, writer=restarted
    )
    assert first.outcome == "unchanged"
    assert (first.opened, first.closed) == ({}, {})
    built.clear()
    change = record_body(
        engine, "exchange_info", body("BREAK"), at("2024-01-01T00:00:20"), parse, writer=restarted
    )
    assert (change.outcome, change.opened) == ("changed", {"symbol_versions": 1})
    # A status moved: the symbol's own fields are built again, its filters are not.
    assert built == [("symbol_versions", ("S3USDT",))]
