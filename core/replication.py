"""Whether the database a reader reaches is a streaming standby, and how far behind it is.

The API may read from a hot standby (README, "Reading from a standby"): every answer is
read in one snapshot of what the standby has replayed, so it is a consistent answer of a
moment ago. How long ago is what this module tells, from the standby's own functions,
which any role may call:

- ``replay_lag_seconds``: 0 when the standby has replayed all the WAL it received, else
  the age (on the standby's clock) of the last transaction it replayed. Plain
  ``now() - pg_last_xact_replay_timestamp()`` would look large whenever the primary is
  idle (nothing committed, nothing to replay); comparing the received and replayed
  positions first says "caught up" then. What it cannot see is WAL the primary has not
  sent (a slow network, a primary that is down): the age of ``last_replayed_at``, and
  the per-stream freshness that ``/readyz`` checks, show that.
- ``replay_pending_bytes``: WAL received and not yet replayed.
- ``replay_paused``: replay was paused (``pg_wal_replay_pause()``): the lag will grow.

The standby's view of ``pg_stat_wal_receiver`` would say more (is it streaming, since
when), but it shows its details only to ``pg_read_all_stats``, which the API's role is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

_STATUS = text(
    "SELECT pg_is_in_recovery() AS standby,"
    " CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() END AS replayed_at,"
    " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused,"
    " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS pending,"
    " CASE WHEN NOT pg_is_in_recovery() THEN NULL"
    "  WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
    "  ELSE greatest(0, extract(epoch FROM"
    "   clock_timestamp() - pg_last_xact_replay_timestamp()))::float8 END AS lag"
)


@dataclass(frozen=True, slots=True)
class Replication:
    """The reader's database: a primary (every other field None) or a standby."""

    standby: bool
    replay_lag_seconds: float | None = None
    replay_pending_bytes: int | None = None
    last_replayed_at: datetime | None = None
    replay_paused: bool | None = None


def replication(conn: Connection) -> Replication:
    row = conn.execute(_STATUS).one()
    if not row.standby:
        return Replication(standby=False)
    return Replication(
        standby=True,
        replay_lag_seconds=row.lag,
        replay_pending_bytes=None if row.pending is None else max(0, row.pending),
        last_replayed_at=row.replayed_at,
        replay_paused=row.paused,
    )
