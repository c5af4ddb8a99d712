"""The operator's commands: `migrate`, `verify`, `compact` and `replicas`.

Unlike the read commands (exmeta.reads), these do not go through the API: they act with
the operator's database login, which the API's read-only role is not. `migrate` changes
the schema, `verify --repair` and `compact` write; `verify` reads every version of every table, an
operator's job that no route offers; `replicas --alive` is the poller container's health
check, run where only the poller's login is configured, and that login need not be able
to act as the API's role (GET /v1/replicas answers the same list to API clients).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from core.config import MAX_DETAIL_HOURS
from exmeta.database import database, engine, migrate, read
from exmeta.errors import CliError
from exmeta.settings import configured


def migrate_schema(args: argparse.Namespace) -> int:
    """Bring the database (the embedded one by default) to the newest schema."""
    settings = configured(args)
    with database(settings) as url:
        migrate(settings, url)
    print("database schema is up to date")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Check the whole history; 0 sound, 1 findings, 2 cannot check (config, database).

    ``--repair`` first undoes observations dated ahead of the database clock (core.repair).
    """
    from core.repair import repair_streams_ahead
    from core.verify import verify_history

    settings = configured(args)
    tolerance = settings.poller.server_time_tolerance()
    if args.repair:
        with (
            database(settings) as url,
            engine(settings, url, "verify") as built,
            built.begin() as conn,
        ):
            repaired = repair_streams_ahead(conn, tolerance)
        for done in repaired:
            print(f"repaired {done}")
        if not repaired:
            print("nothing to repair")
    findings = read(settings, "verify", lambda conn: verify_history(conn, tolerance))
    if not findings:
        print("history verified: no findings")
        return 0
    print(f"history verified: {len(findings)} finding(s)")
    for finding in findings:
        print(f"  {finding}")
    return 1


def compact(args: argparse.Namespace) -> int:
    """Fold unchanged polls older than the detail window into runs now (core.obslog), as
    every poller does each ``compaction_interval_seconds``; 0 done, 2 cannot."""
    from core.obslog import compact as fold_old_polls

    settings = configured(args)
    hours = settings.poller.observation_detail_hours if args.hours is None else args.hours
    if not 0 <= hours <= MAX_DETAIL_HOURS:  # NaN too
        raise CliError(
            f"--older-than-hours must be 0 to {MAX_DETAIL_HOURS} (a century), got {hours:g}", 2
        )
    if hours == 0 and args.hours is None:
        print("[poller] observation_detail_hours is 0: every poll keeps its detail, none folded")
        return 0
    with database(settings) as url, engine(settings, url, "compact") as built:
        folded = fold_old_polls(built, timedelta(hours=hours))
    for stream, polls in folded.items():
        print(f"folded {polls} unchanged polls of {stream}")
    if not folded:
        print(f"nothing to fold: no unchanged poll older than {hours:g} h keeps its detail")
    return 0


def replicas(args: argparse.Namespace) -> int:
    """List the live poller replicas (``--all``: stopped ones too): running, or silent
    (no heartbeat for 3 beats). ``--alive ID``: exit 0 if that replica is running, else
    1, a container's health check."""
    from core.replicas import ReplicaInfo, list_replicas

    settings = configured(args)
    registered = read(settings, "replicas", list_replicas)
    silent_after = 3 * settings.poller.heartbeat_seconds

    def state(r: ReplicaInfo) -> str:
        if r.stopped_at is not None:
            return "stopped"
        return "silent" if r.seconds_since_seen > silent_after else "running"

    if args.alive is not None:
        states = [state(r) for r in registered if r.replica_id == args.alive]
        print(f"{args.alive}: {states[0] if states else 'not registered'}")
        return 0 if states == ["running"] else 1
    found = [r for r in registered if args.all or r.stopped_at is None]
    if not found:
        if registered:
            print(f"no live replica ({len(registered)} stopped: exmeta replicas --all)")
        else:
            print("no replica has registered")
        return 0
    print(f"{'replica':<32} {'state':<8} {'version':<10} {'started':<26} {'last seen':>10}  leases")
    for r in found:
        print(
            f"{r.replica_id:<32} {state(r):<8} {r.version:<10}"
            f" {r.started_at.isoformat(timespec='seconds'):<26}"
            f" {r.seconds_since_seen:>8.1f}s  {', '.join(r.leases) or '-'}"
        )
    return 0
