"""Liveness and readiness, for load balancers and orchestrators.

``/healthz`` never touches the database: a slow database must not get a live process
restarted. ``/readyz`` answers 503 (with reasons, never a 500) when the database does
not answer, an enabled stream's data is older than the gap rule allows, or its newest
data is dated ahead of the database clock (a frozen stream), so traffic goes to a
replica whose answers are current.

Its ``database`` says whether the API reads from a primary or a hot standby, and how far
behind that standby is (core.replication). A standby is held to the same freshness rule
as a primary: when it lags, or the primary is down, its answers about the past stay right
but "now" is older than the gap rule allows, which is what not ready means.

A weight budget that starves the intervals is also a reason, but one that leaves the API
ready (200); so is a realtime listener that is not connected (core.signals): the slot
polls still keep the data fresh, only later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.params import NoQuery
from api.render import json_response
from api.schemas import ErrorResponse, Health, Readiness, operation_id
from api.state import app_state
from core import history, signals
from core.config import Settings
from core.failures import Failure, failures_since_success
from core.replication import Replication, replication
from core.streams import DEFAULT_MARKET
from core.timeparse import format_instant
from core.verify import streams_ahead
from core.weight_plan import WeightPlan

log = logging.getLogger(__name__)

HEALTH = Tag(name="health", description="liveness and readiness probes")

probes = APIBlueprint(
    "health", __name__, abp_responses={400: ErrorResponse}, operation_id_callback=operation_id
)


def staleness(
    last_successes: Mapping[str, datetime | None],
    intervals: Mapping[str, float],
    now: datetime,
    failures: Mapping[str, Failure] | None = None,
) -> list[str]:
    """Why the data is not fresh: one reason per stream without a recent success, with
    the stream's newest failed poll since (``failures``), which says why."""
    reasons = []
    for stream, last in last_successes.items():
        limit = timedelta(seconds=history.GAP_FACTOR * intervals[stream])
        if last is None:
            reason = f"{stream}: no successful observation yet"
        elif now - last > limit:
            reason = (
                f"{stream}: last success {format_instant(last)} is older than"
                f" {limit.total_seconds():g} s"
            )
        else:
            continue
        failure = (failures or {}).get(stream)
        if failure is not None:
            reason += f"; last poll {format_instant(failure.observed_at)}: {failure}"
        reasons.append(reason)
    return reasons


def _plan_note(market: str, plan: WeightPlan) -> str:
    """A starved plan as a reason: spot's as before markets existed, another's named."""
    return plan.describe() if market == DEFAULT_MARKET else f"{market}: {plan.describe()}"


def _not_ready(reason: str) -> Response:
    return json_response({"status": "not_ready", "reasons": [reason], "last_successes": {}}, 503)


@probes.get("/healthz", tags=[HEALTH], responses={200: Health})
def healthz(query: NoQuery) -> Response:
    """The process is alive (the database is not consulted)"""
    return json_response({"status": "ok"})


@probes.get("/readyz", tags=[HEALTH], responses={200: Readiness, 503: Readiness})
def readyz(query: NoQuery) -> Response:
    """The database answers and every enabled stream was observed recently"""
    state = app_state()
    try:
        with state.engine.connect() as conn:
            last = history.last_successes(conn, state.streams)
            failures = failures_since_success(conn, last)
            ahead = streams_ahead(conn, state.settings.poller.server_time_tolerance())
            database = replication(conn)
            plans = state.weight_plans(conn)
            listening = signals.listeners(conn, _listener_freshness(state.settings))
    except (OperationalError, PoolTimeoutError):
        log.warning("readiness: the database is not answering", exc_info=True)
        return _not_ready("database unreachable")
    except SQLAlchemyError as exc:  # e.g. migrations not applied: answering, but not usable
        log.error("readiness: the database answered with an error", exc_info=True)
        return _not_ready(f"database error ({type(exc).__name__})")
    reasons = staleness(last, state.settings.stream_intervals(), state.clock(), failures)
    # A success dated ahead looks fresh, yet every poll after it is stale (core.dating).
    reasons += [f"{a.stream}: {a}; run exmeta verify --repair" for a in ahead if a.stream in last]
    # A weight budget too small for the intervals slows polling down but leaves every
    # answer sound: said among the reasons, it does not make the API not ready.
    notes = [_plan_note(market, plan) for market, plan in plans.items() if plan.starved]
    notes += signals.listener_notes(listening, state.settings.realtime.enabled)
    body = {
        "status": "not_ready" if reasons else "ready",
        "reasons": reasons + notes,
        "last_successes": {stream: format_instant(at) for stream, at in last.items()},
        "database": _database(database),
    }
    return json_response(body, 503 if reasons else 200)


def _listener_freshness(settings: Settings) -> float:
    return signals.LISTENER_FRESH_HEARTBEATS * settings.poller.heartbeat_seconds


def _database(found: Replication) -> dict[str, object]:
    return {
        "role": "standby" if found.standby else "primary",
        "replay_lag_seconds": found.replay_lag_seconds,
        "replay_pending_bytes": found.replay_pending_bytes,
        "last_replayed_at": format_instant(found.last_replayed_at),
        "replay_paused": found.replay_paused,
    }
