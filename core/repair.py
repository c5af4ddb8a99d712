"""`exmeta verify --repair`: undo observations applied with a time ahead of the clock.

Before serverTime was checked against the database clock (core.dating), one response
dated years ahead was applied as it came, and every real poll after it was ``stale``:
the stream froze until the wall clock caught up. Such an observation cannot be re-dated
after the fact (the polls that followed were never applied, and re-dating its versions
could cross theirs), so it is undone, in one transaction under the stream's write lock:

- the versions it opened are deleted and the versions it closed are open again, so the
  history is what it was after the last sound observation, with no overlap;
- it stays in the log as an ``error`` with ``error_class`` ``future_server_time``, dated
  by the database clock when it was recorded, the time it claimed kept in ``server_time``
  (as the write path records a serverTime it does not trust);
- the stream head goes back to the last sound observation, so the next real poll applies,
  and its generation moves to a value no write has used (api.answers, core.ingest keep
  what they read under the old one, and it is no longer true).

What the undone observations saw is seen again by the next poll, dated then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from core import obslog
from core.models import SUCCESS_OUTCOMES, VERSIONED_TABLES
from core.verify import streams_ahead

ERROR_CLASS = "future_server_time"
MESSAGE = (
    "applied with a time ahead of the database clock (now in server_time);"
    " undone by exmeta verify --repair"
)


@dataclass(frozen=True, slots=True)
class Repaired:
    stream: str
    observations: list[int]  # undone, now errors
    versions_deleted: int
    versions_reopened: int
    head_at: datetime | None  # the stream's newest applied time after the repair

    def __str__(self) -> str:
        head = self.head_at.isoformat().replace("+00:00", "Z") if self.head_at else "none"
        ids = ", ".join(map(str, self.observations)) or "none"
        return (
            f"{self.stream}: undid observation(s) {ids}: deleted {self.versions_deleted}"
            f" version(s), reopened {self.versions_reopened}; newest applied now {head}"
        )


def repair_streams_ahead(conn: Connection, tolerance: timedelta) -> list[Repaired]:
    """Undo every stream's observations dated beyond ``tolerance`` after the database clock.

    Run in the caller's transaction: all of it commits, or none.
    """
    return [_repair(conn, ahead.stream, tolerance) for ahead in streams_ahead(conn, tolerance)]


def _repair(conn: Connection, stream: str, tolerance: timedelta) -> Repaired:
    conn.execute(text("SELECT 1 FROM stream_heads WHERE stream = :s FOR UPDATE"), {"s": stream})
    ok = list(SUCCESS_OUTCOMES)
    future = conn.execute(
        text(
            "SELECT id, observed_at FROM observations WHERE stream = :s"
            " AND outcome = ANY(:ok) AND observed_at > now() + :tolerance ORDER BY id"
        ),
        {"s": stream, "ok": ok, "tolerance": tolerance},
    ).all()
    ids = [r.id for r in future]
    deleted = reopened = 0
    if ids:
        since = min(r.observed_at for r in future)  # lets the range indexes find them
        for table in VERSIONED_TABLES:
            deleted += conn.execute(
                text(f"DELETE FROM {table} WHERE valid_from >= :since AND opened_by = ANY(:ids)"),
                {"since": since, "ids": ids},
            ).rowcount
            reopened += conn.execute(
                text(
                    f"UPDATE {table} SET valid_to = NULL, closed_by = NULL"
                    " WHERE valid_to >= :since AND closed_by = ANY(:ids)"
                ),
                {"since": since, "ids": ids},
            ).rowcount
        conn.execute(
            text(
                "UPDATE observations SET outcome = 'error', error_class = :error_class,"
                " error_message = :message, server_time = observed_at,"
                " observed_at = recorded_at WHERE id = ANY(:ids)"
            ),
            {"error_class": ERROR_CLASS, "message": MESSAGE, "ids": ids},
        )
    # The newest success left, folded ones included (core.obslog): a stream frozen for
    # longer than the detail window has its last sound poll in a run.
    sound = conn.execute(
        text(
            "SELECT id, observed_at, body_sha256 FROM"
            f" {obslog.last_success(':s', obslog.NEWEST)} AS b"
        ),
        {"s": stream},
    ).one_or_none()
    conn.execute(
        text(
            "UPDATE stream_heads SET last_applied_at = :at, last_observation_id = :obs,"
            " last_body_sha256 = :sha,"
            " state_observation_id = nextval(pg_get_serial_sequence('observations', 'id'))"
            " WHERE stream = :s"
        ),
        {
            "s": stream,
            "at": sound.observed_at if sound else None,
            "obs": sound.id if sound else None,
            "sha": sound.body_sha256 if sound else None,
        },
    )
    return Repaired(stream, ids, deleted, reopened, sound.observed_at if sound else None)
