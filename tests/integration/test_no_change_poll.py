"""A poll that finds nothing new: one ``unchanged`` observation, nothing else written, and
few round trips to the database (its cost is mostly theirs: bench/usdm_poll.py, P11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text

from binance_sim.server import SimServer
from core.streams import market
from poller.runner import Replica, build_poller
from tests.builders import poller_settings

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
        assert lease is not None
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
