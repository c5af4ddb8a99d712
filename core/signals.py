"""What the realtime listeners saw (``stream_signals``) and their health (``stream_listeners``).

A signal only ever asks for a poll; the poll writes the versions. Once that poll is
recorded, ``settle`` ties the signal to it and says whether it confirmed the change: a
version of the signal's subject (a symbol, an asset) opened after the signal's own time
and by that poll's instant. Evidence then reads the signal back (``change_window``) to
say when a change began as well as when a poll saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, text

from core.history import ChangeWindow, change_since_sql
from core.models import VERSIONED_TABLES

# The versioned table holding the subject (symbol or asset) a stream's signals name.
SUBJECT_TABLES: Final = {
    "exchange_info": "symbol_versions",
    "usdm_exchange_info": "usdm_symbol_versions",
    "coinm_exchange_info": "coinm_symbol_versions",
    "account": "balance_versions",
}


def record(
    conn: Connection,
    stream: str,
    replica_id: str,
    kind: str,
    *,
    symbol: str | None,
    event_at: datetime | None,
    polled: bool,
) -> int:
    """Keep what a listener saw; its id, for ``settle``."""
    signal_id: int = conn.execute(
        text(
            "INSERT INTO stream_signals (stream, replica_id, kind, symbol, event_at, polled)"
            " VALUES (:stream, :replica, :kind, :symbol, :event_at, :polled) RETURNING id"
        ),
        {
            "stream": stream,
            "replica": replica_id,
            "kind": kind,
            "symbol": symbol,
            "event_at": event_at,
            "polled": polled,
        },
    ).scalar_one()
    return signal_id


def settle(
    conn: Connection,
    stream: str,
    up_to_id: int,
    observation_id: int,
    observed_at: datetime,
    changed: bool,
) -> int:
    """Tie the polled, unsettled signals of ``stream`` up to ``up_to_id`` to the poll that
    answered them; returns how many.

    A signal naming a subject is confirmed when a version of it opened after the signal's
    time (its event's, else when it came) and by the poll's instant: a slot poll that saw
    the change just before the triggered one confirms it too. One naming none (a
    reconnection) is confirmed when the poll changed anything.
    """
    table = SUBJECT_TABLES[stream]
    key = VERSIONED_TABLES[table].__key__[0]
    # The table and column names come from the models, never from input.
    found = (
        f"EXISTS (SELECT 1 FROM {table} v WHERE v.{key} = s.symbol"
        " AND v.valid_from >= coalesce(s.event_at, s.received_at) AND v.valid_from <= :at)"
    )
    return conn.execute(
        text(
            "UPDATE stream_signals s SET observation_id = :obs, observed_at = :at,"
            f" confirmed = CASE WHEN s.symbol IS NULL THEN :changed ELSE {found} END"
            " WHERE s.stream = :stream AND s.id <= :up_to AND s.polled"
            " AND s.observation_id IS NULL"
        ),
        {"obs": observation_id, "at": observed_at, "changed": changed, "stream": stream}
        | {"up_to": up_to_id},
    ).rowcount


def change_window(
    conn: Connection, stream: str, subject: str, valid_from: datetime
) -> ChangeWindow | None:
    """When the change that opened ``subject``'s version at ``valid_from`` began, if a
    listener saw it coming: the earliest confirmed signal's time, up to that version."""
    row = conn.execute(
        text(f"SELECT * FROM {change_since_sql(':stream', ':subject', ':valid_from')} AS c"),
        {"stream": stream, "subject": subject, "valid_from": valid_from},
    ).one_or_none()
    return None if row is None else ChangeWindow(row[1], valid_from, row[0])


@dataclass(frozen=True)
class Listener:
    """A replica's listener of one market as last written, ages on the database clock."""

    replica_id: str
    market: str
    connected: bool
    silent_seconds: float | None  # since its last message (None: never had one)
    reconnects: int


def beat(
    conn: Connection,
    replica_id: str,
    market: str,
    *,
    connected: bool,
    connected_ago: float | None,
    message_ago: float | None,
    reconnects: int,
) -> None:
    """Write a listener's state; its times are given as ages, so that the row holds the
    database clock's times, never the replica's."""
    conn.execute(
        text(
            "INSERT INTO stream_listeners AS l (replica_id, market, connected, connected_at,"
            " last_message_at, reconnects, updated_at) VALUES (:replica, :market, :connected,"
            " clock_timestamp() - make_interval(secs => :connected_ago),"
            " clock_timestamp() - make_interval(secs => :message_ago),"
            " :reconnects, clock_timestamp())"
            " ON CONFLICT (replica_id, market) DO UPDATE SET connected = excluded.connected,"
            " connected_at = excluded.connected_at, last_message_at = excluded.last_message_at,"
            " reconnects = excluded.reconnects, updated_at = excluded.updated_at"
        ),
        {
            "replica": replica_id,
            "market": market,
            "connected": connected,
            "connected_ago": connected_ago,
            "message_ago": message_ago,
            "reconnects": reconnects,
        },
    )


def listeners(conn: Connection, fresh_seconds: float) -> list[Listener]:
    """The listeners written within ``fresh_seconds`` (a stopped replica's are not)."""
    rows = conn.execute(
        text(
            "SELECT replica_id, market, connected,"
            " extract(epoch FROM clock_timestamp() - last_message_at)::float8, reconnects"
            " FROM stream_listeners"
            " WHERE updated_at > clock_timestamp() - make_interval(secs => :fresh)"
            " ORDER BY market, replica_id"
        ),
        {"fresh": fresh_seconds},
    ).all()
    return [Listener(*row) for row in rows]


# A listener row older than this many of its replica's heartbeats is a stopped replica's.
LISTENER_FRESH_HEARTBEATS: Final = 3


@dataclass(frozen=True)
class SignalCount:
    stream: str
    kind: str
    outcome: str  # confirmed, unconfirmed, pending (poll asked, not settled), unpolled
    signals: int


def signal_counts(conn: Connection) -> list[SignalCount]:
    """Signals by stream, kind and what their polls found, for /metrics."""
    rows = conn.execute(
        text(
            "SELECT stream, kind, CASE WHEN NOT polled THEN 'unpolled'"
            " WHEN observation_id IS NULL THEN 'pending'"
            " WHEN confirmed THEN 'confirmed' ELSE 'unconfirmed' END AS outcome, count(*)"
            " FROM stream_signals GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
    ).all()
    return [SignalCount(*row) for row in rows]


def listener_notes(listening: list[Listener], enabled: bool) -> list[str]:
    """Why the realtime listeners do not help right now, for /readyz: notes, not reasons
    to be unready, since the slot polls keep the data as fresh as without them."""
    if not enabled:
        return []
    if not listening:
        return ["realtime: no listener has reported (is a poller with [realtime] enabled running?)"]
    return [
        f"realtime: the {lsn.market} listener of {lsn.replica_id} is not connected"
        f" ({lsn.reconnects} reconnection(s) so far); changes wait for the slot polls"
        for lsn in listening
        if not lsn.connected
    ]
