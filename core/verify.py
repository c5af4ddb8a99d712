"""Checks that the recorded history is what the write path promises (issue 4, `exmeta verify`).

Every check is a query over the tables as they are, trusting none of the constraints
that should make a finding impossible: a constraint can be dropped by hand, a migration
can be wrong, a restore can be partial, and a history that is only as good as its
constraints cannot vouch for itself. Each finding names the table, the entity key and the
rows involved, so that someone with psql can go straight to them.

Versions of one key are compared with their neighbour in ``valid_from`` order: if any two
versions of a key overlap, some adjacent pair does (the later one starts before the
earlier one ends), so a window over neighbours finds every overlap without a self-join.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from core.config import PollerSettings
from core.models import SUCCESS_OUTCOMES, VERSIONED_TABLES


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation: which check, where (table and key), and the rows that show it."""

    check: str
    table: str
    key: str
    rows: str

    def __str__(self) -> str:
        where = f"{self.table} {self.key}" if self.key else self.table
        return f"{self.check}: {where}: {self.rows}"


def verify_history(
    conn: Connection, server_time_tolerance: timedelta | None = None
) -> list[Finding]:
    """Every finding over every versioned table and the observation log; [] if sound.

    ``server_time_tolerance``: ``[poller] server_time_tolerance_seconds`` (default if None).
    """
    tolerance = (
        PollerSettings().server_time_tolerance()
        if server_time_tolerance is None
        else server_time_tolerance
    )
    findings: list[Finding] = []
    for table, model in VERSIONED_TABLES.items():
        key = model.__key__
        findings += _empty_ranges(conn, table, key)
        findings += _neighbour_findings(conn, table, key)
        findings += _unbacked_versions(conn, table, key)
        findings += _versions_across_switches(conn, table, key)
    findings += _observations_out_of_order(conn)
    findings += _runs_not_alone(conn)
    findings += [
        Finding(
            "ahead of the clock",
            "stream_heads",
            f"stream={s.stream}",
            f"{s}; every later poll is recorded stale until then (exmeta verify --repair)",
        )
        for s in streams_ahead(conn, tolerance)
    ]
    return findings


@dataclass(frozen=True, slots=True)
class StreamAhead:
    """A stream whose newest applied observation is dated after the database clock."""

    stream: str
    newest_at: datetime  # of its head and its newest successful observation, the later
    database_now: datetime

    def __str__(self) -> str:
        return (
            f"newest applied observation at {_fmt(self.newest_at)} is"
            f" {(self.newest_at - self.database_now).total_seconds():.0f} s ahead of the"
            f" database clock ({_fmt(self.database_now)})"
        )


def streams_ahead(conn: Connection, tolerance: timedelta) -> list[StreamAhead]:
    """Streams dated ahead of the database clock beyond ``tolerance``: frozen ones.

    An observation applied with a time in the future makes every real poll after it
    ``stale`` (it is no newer) until the clock catches up (core.dating). Written before
    serverTime was checked, or by hand; the write path no longer dates one so. One
    index-backed look per stream, cheap enough for every ``/readyz``.
    """
    rows = conn.execute(
        text(
            "SELECT h.stream, greatest(h.last_applied_at, o.newest) AS newest_at,"
            " now() AS database_now FROM stream_heads h CROSS JOIN LATERAL"
            " (SELECT max(observed_at) AS newest FROM observations"
            "  WHERE stream = h.stream AND outcome = ANY(:ok)) o"
            " WHERE greatest(h.last_applied_at, o.newest) > now() + :tolerance"
            " ORDER BY h.stream"
        ),
        {"ok": list(SUCCESS_OUTCOMES), "tolerance": tolerance},
    )
    return [StreamAhead(r.stream, r.newest_at, r.database_now) for r in rows]


def _fmt(value: Any) -> str:
    if value is None:
        return "∞"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _version(row: Any, prefix: str = "") -> str:
    """``[from, to) opened by N closed by M`` for one version row."""
    closed = row._mapping[f"{prefix}closed_by"]
    return (
        f"[{_fmt(row._mapping[f'{prefix}valid_from'])}, {_fmt(row._mapping[f'{prefix}valid_to'])})"
        f" opened by observation {row._mapping[f'{prefix}opened_by']}"
        + (f" closed by observation {closed}" if closed is not None else "")
    )


def _key_text(row: Any, key: Sequence[str]) -> str:
    return " ".join(f"{col}={row._mapping[col]}" for col in key)


def _empty_ranges(conn: Connection, table: str, key: Sequence[str]) -> list[Finding]:
    cols = ", ".join(key)
    rows = conn.execute(
        text(
            f"SELECT {cols}, valid_from, valid_to, opened_by, closed_by FROM {table}"
            f" WHERE valid_to <= valid_from ORDER BY {cols}, valid_from"
        )
    )
    return [Finding("empty range", table, _key_text(r, key), _version(r)) for r in rows]


def _neighbour_findings(conn: Connection, table: str, key: Sequence[str]) -> list[Finding]:
    """Overlaps, gaps and unchanged neighbours, from each version and the next of its key.

    A gap (one version ends before the next begins) is legitimate only when the key was
    absent from the successful observation that closed the version: then that
    observation opened no version of the key. Equal content matters only between
    versions that touch; a key that disappears and comes back unchanged is two versions.
    """
    cols = ", ".join(key)
    same_key = " AND ".join(f"o.{c} = v.{c}" for c in key)
    rows = conn.execute(
        text(
            f"WITH v AS (SELECT {cols}, valid_from, valid_to, opened_by, closed_by,"
            " content_hash, raw,"
            " lead(valid_from) OVER w AS next_valid_from,"
            " lead(valid_to) OVER w AS next_valid_to,"
            " lead(opened_by) OVER w AS next_opened_by,"
            " lead(closed_by) OVER w AS next_closed_by,"
            " lead(content_hash) OVER w AS next_content_hash,"
            " lead(raw) OVER w AS next_raw"
            f" FROM {table} WINDOW w AS (PARTITION BY {cols}"
            " ORDER BY valid_from, valid_to NULLS LAST))"
            f" SELECT v.*, CASE"
            "  WHEN valid_to IS NULL OR valid_to > next_valid_from THEN 'overlap'"
            "  WHEN valid_to = next_valid_from THEN 'unchanged neighbour'"
            "  ELSE 'gap' END AS problem"
            " FROM v WHERE next_valid_from IS NOT NULL AND ("
            "  valid_to IS NULL OR valid_to > next_valid_from"
            "  OR (valid_to = next_valid_from"
            "      AND (content_hash = next_content_hash OR raw = next_raw)"
            # Prepended history (core.ingest.Prepending) ends at the first observation on
            # record, which was written before it: an entity the same on both sides is
            # two versions there. The one place a closer predates its opener.
            "      AND NOT (closed_by < opened_by AND closed_by = next_opened_by"
            "               AND EXISTS (SELECT FROM observations i"
            "                           WHERE i.id = v.opened_by AND i.origin IS NOT NULL)))"
            "  OR (valid_to < next_valid_from AND (closed_by IS NULL"
            f"      OR EXISTS (SELECT 1 FROM {table} o WHERE {same_key}"
            "                 AND o.opened_by = v.closed_by))))"
            f" ORDER BY {cols}, valid_from"
        )
    )
    findings = []
    for r in rows:
        problem = r._mapping["problem"]
        joint = {
            "overlap": "overlaps",
            "unchanged neighbour": "has the same content as the next version",
            "gap": "leaves a gap before",
        }[problem]
        tail = "" if problem == "unchanged neighbour" else " " + _version(r, "next_")
        if problem == "gap":
            tail += " although the key was present when it closed"
        findings.append(Finding(problem, table, _key_text(r, key), f"{_version(r)} {joint}{tail}"))
    return findings


def _unbacked_versions(conn: Connection, table: str, key: Sequence[str]) -> list[Finding]:
    """Versions whose bounds are not the time of a ``changed`` observation that set them.

    Only a successful observation that changed something may open or close a version,
    and it does so at its own ``observed_at``; anything else was written by hand or by
    a bug, and an ``as of`` answer built on it has no evidence. A ``switched`` observation
    (the stream's history moved to another source, core.ingest) may close versions, never
    open one.
    """
    cols = ", ".join(f"v.{c}" for c in key)
    rows = conn.execute(
        text(
            f"SELECT {cols}, v.valid_from, v.valid_to, v.opened_by, v.closed_by,"
            " op.outcome AS opened_outcome, cl.outcome AS closed_outcome,"
            " op.observed_at AS opened_at, cl.observed_at AS closed_at"
            f" FROM {table} v"
            " LEFT JOIN observations op ON op.id = v.opened_by"
            " LEFT JOIN observations cl ON cl.id = v.closed_by"
            " WHERE op.id IS NULL OR op.outcome <> 'changed' OR op.observed_at <> v.valid_from"
            "  OR (v.valid_to IS NULL) <> (v.closed_by IS NULL)"
            "  OR (v.closed_by IS NOT NULL AND (cl.id IS NULL"
            "      OR cl.outcome NOT IN ('changed', 'switched')"
            "      OR cl.observed_at IS DISTINCT FROM v.valid_to))"
            f" ORDER BY {cols}, v.valid_from"
        )
    )
    findings = []
    for r in rows:
        m = r._mapping
        reasons = []
        if m["opened_outcome"] is None:
            reasons.append(f"opening observation {m['opened_by']} does not exist")
        elif m["opened_outcome"] != "changed":
            reasons.append(f"opened by a '{m['opened_outcome']}' observation")
        elif m["opened_at"] != m["valid_from"]:
            reasons.append(
                f"valid_from is not its opening observation's time {_fmt(m['opened_at'])}"
            )
        if (m["valid_to"] is None) != (m["closed_by"] is None):
            reasons.append("valid_to and closed_by disagree on whether it is closed")
        elif m["closed_by"] is not None:
            if m["closed_outcome"] is None:
                reasons.append(f"closing observation {m['closed_by']} does not exist")
            elif m["closed_outcome"] not in ("changed", "switched"):
                reasons.append(f"closed by a '{m['closed_outcome']}' observation")
            elif m["closed_at"] != m["valid_to"]:
                reasons.append(
                    f"valid_to is not its closing observation's time {_fmt(m['closed_at'])}"
                )
        findings.append(
            Finding(
                "unbacked version",
                table,
                _key_text(r, key),
                f"{_version(r)}: {'; '.join(reasons)}",
            )
        )
    return findings


def _versions_across_switches(conn: Connection, table: str, key: Sequence[str]) -> list[Finding]:
    """Versions in force across their stream's move to another source.

    The ``switched`` observation closes every version of the stream at its instant, so
    that no answer after it mixes the old source's entities with the new one's.
    """
    cols = ", ".join(f"v.{c}" for c in key)
    rows = conn.execute(
        text(
            f"SELECT {cols}, v.valid_from, v.valid_to, v.opened_by, v.closed_by,"
            " s.id AS switch_id, s.observed_at AS switched_at"
            " FROM observations s JOIN LATERAL"
            f" (SELECT * FROM {table} v WHERE tstzrange(v.valid_from, v.valid_to) @> s.observed_at"
            "  AND EXISTS (SELECT FROM observations op"
            "              WHERE op.id = v.opened_by AND op.stream = s.stream)) v ON TRUE"
            f" WHERE s.outcome = 'switched' ORDER BY {cols}, v.valid_from"
        )
    )
    return [
        Finding(
            "open across a source switch",
            table,
            _key_text(r, key),
            f"{_version(r)} is in force at {_fmt(r.switched_at)}, when observation"
            f" {r.switch_id} moved its stream to another source",
        )
        for r in rows
    ]


def _runs_not_alone(conn: Connection) -> list[Finding]:
    """Folded runs (core.obslog) that share their span with another success or switch of
    their stream, or with another run: readers find "the run at t" with one probe."""
    rows = conn.execute(
        text(
            "SELECT r.stream, r.first_at, r.last_at, 'observation ' || o.id AS other,"
            " o.observed_at AS other_at"
            " FROM observation_runs r JOIN observations o ON o.stream = r.stream"
            " AND o.observed_at BETWEEN r.first_at AND r.last_at"
            " AND o.outcome IN ('changed', 'unchanged', 'switched')"
            " UNION ALL"
            " SELECT r.stream, r.first_at, r.last_at, 'the run from ' || n.first_at, n.first_at"
            " FROM observation_runs r JOIN observation_runs n ON n.stream = r.stream"
            " AND n.first_at > r.first_at AND n.first_at <= r.last_at"
            " ORDER BY 1, 2, 5"
        )
    )
    return [
        Finding(
            "run not alone in its span",
            "observation_runs",
            f"stream={r.stream}",
            f"the run of {_fmt(r.first_at)} to {_fmt(r.last_at)} spans {r.other}",
        )
        for r in rows
    ]


def _observations_out_of_order(conn: Connection) -> list[Finding]:
    """Successful observations of a stream applied with a time not after the previous one.

    Writes of a stream are serialised and an older observation is recorded as ``stale``,
    so in id (commit) order the applied ones must move strictly forward in time, except
    an import's prepended before every observation recorded until then
    (core.ingest.Prepending).
    """
    rows = conn.execute(
        text(
            "WITH s AS (SELECT stream, id, observed_at,"
            " lag(id) OVER w AS prev_id, lag(observed_at) OVER w AS prev_observed_at, origin,"
            " min(observed_at) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            "  AS first_observed_at"
            " FROM observations WHERE outcome = ANY(:ok)"
            " WINDOW w AS (PARTITION BY stream ORDER BY id))"
            " SELECT * FROM s WHERE observed_at <= prev_observed_at"
            " AND (origin IS NULL OR observed_at >= first_observed_at) ORDER BY stream, id"
        ),
        {"ok": list(SUCCESS_OUTCOMES)},
    )
    return [
        Finding(
            "observations out of order",
            "observations",
            f"stream={r.stream}",
            f"observation {r.id} at {_fmt(r.observed_at)} was applied after observation"
            f" {r.prev_id} at {_fmt(r.prev_observed_at)}",
        )
        for r in rows
    ]
