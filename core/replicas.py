"""The replica registry: which pollers exist, since when, last seen when, holding what.

Each ``exmeta poll`` keeps one row fresh (a heartbeat on the database clock) so that an
operator can tell a live replica from a dead one without shell access to every host.
The leases a replica holds are read from ``stream_leases`` at query time rather than
copied into its row: the lease table is the authority, and a copy could disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    replica_id: str
    version: str
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    seconds_since_seen: float  # by the database clock, when listed
    leases: tuple[str, ...]  # streams whose unexpired lease it holds now


# A replica not seen for this long is gone (stopped, or dead): its row is deleted when
# another registers, so that `exmeta replicas --all` lists a week, not every run ever.
PRUNE_AFTER_DAYS = 7


def register(conn: Connection, replica_id: str, version: str) -> None:
    """Start (or restart, same id) this replica's row: started and seen now, not stopped.

    Rows of replicas not seen for ``PRUNE_AFTER_DAYS`` go at the same time: a laptop that
    runs `exmeta up` ten times a day registers a new ``host:pid`` each time.
    """
    conn.execute(
        text(
            "DELETE FROM replicas"
            " WHERE last_seen_at < clock_timestamp() - make_interval(days => :days)"
        ),
        {"days": PRUNE_AFTER_DAYS},
    )
    conn.execute(
        text(
            "INSERT INTO replicas (replica_id, version, started_at, last_seen_at)"
            " VALUES (:r, :v, clock_timestamp(), clock_timestamp())"
            " ON CONFLICT (replica_id) DO UPDATE SET version = excluded.version,"
            " started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,"
            " stopped_at = NULL"
        ),
        {"r": replica_id, "v": version},
    )


def heartbeat(conn: Connection, replica_id: str, version: str) -> None:
    """Seen now; re-creates the row if it was lost (e.g. the database was restored)."""
    conn.execute(
        text(
            "INSERT INTO replicas (replica_id, version, started_at, last_seen_at)"
            " VALUES (:r, :v, clock_timestamp(), clock_timestamp())"
            " ON CONFLICT (replica_id) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
            " stopped_at = NULL"
        ),
        {"r": replica_id, "v": version},
    )


def mark_stopped(conn: Connection, replica_id: str) -> None:
    conn.execute(
        text(
            "UPDATE replicas SET stopped_at = clock_timestamp(), last_seen_at = clock_timestamp()"
            " WHERE replica_id = :r"
        ),
        {"r": replica_id},
    )


def list_replicas(conn: Connection) -> list[ReplicaInfo]:
    """Every replica ever registered, most recently seen first."""
    rows = conn.execute(
        text(
            "SELECT r.replica_id, r.version, r.started_at, r.last_seen_at, r.stopped_at,"
            " extract(epoch FROM clock_timestamp() - r.last_seen_at)::float8 AS since,"
            " coalesce(array_agg(l.stream ORDER BY l.stream)"
            "  FILTER (WHERE l.stream IS NOT NULL), '{}') AS leases"
            " FROM replicas r LEFT JOIN stream_leases l"
            "  ON l.holder = r.replica_id AND l.expires_at > clock_timestamp()"
            " GROUP BY r.replica_id ORDER BY r.last_seen_at DESC, r.replica_id"
        )
    )
    return [
        ReplicaInfo(
            r.replica_id,
            r.version,
            r.started_at,
            r.last_seen_at,
            r.stopped_at,
            r.since,
            tuple(r.leases),
        )
        for r in rows
    ]
