"""``GET /metrics``: Prometheus text exposition, read from the database at scrape time.

The polls happen in other processes (the pollers), so in-memory counters here would count
nothing; a custom collector turns the totals the writer keeps (core.stats) into metric
families instead. Counters are therefore as durable as the log itself, identical on every
API replica, and agree with ``/v1/observations``; a scrape costs the same however long
the log.
Each app has its own ``CollectorRegistry`` (not prometheus_client's global one), so two
apps in one process (tests, ``exmeta up``) never register the same names twice.
The route is outside the OpenAPI document: it serves Prometheus text, not JSON.

Scrapers carry no bearer token, so the private streams (the account's) show only what
says whether they are healthy, never what dates or counts the account's changes (a
balance version opens whenever the account trades): their polls by outcome only for
``error`` and ``stale``, no duration histogram (a poll that writes versions takes
longer), no version counts of their tables; requests, retries, back-off, errors, the
used weight and the time since their last success stay, as they follow the schedule and
the exchange, not the account.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from itertools import accumulate

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api.state import AppState
from core import history, signals, stats
from core.models import SUCCESS_OUTCOMES
from core.streams import PRIVATE_STREAMS, PRIVATE_TABLES
from core.weight_plan import WeightPlan

METRICS_URL = "/metrics"


class ObservationCollector(Collector):
    """Metric families read from the observation log, the version tables and the clock."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        with state.reading() as conn:
            counts = stats.poll_counts(conn)
            histograms = stats.duration_histograms(conn)
            weights = stats.last_used_weights(conn, state.streams)
            versions = stats.versions_written(conn)
            last = history.last_successes(conn, state.streams)
            rejected = stats.server_time_rejections(conn)
            drift = stats.schema_changes(conn)
            plans = state.weight_plans(conn)
            fresh = signals.LISTENER_FRESH_HEARTBEATS * state.settings.poller.heartbeat_seconds
            listening = signals.listeners(conn, fresh)
            signalled = signals.signal_counts(conn)
        now = state.clock()
        yield from _poll_families(counts)

        since = GaugeMetricFamily(
            "exmeta_seconds_since_last_success",
            "Seconds since the stream's last successful poll (+Inf: none yet)",
            labels=["stream"],
        )
        for stream, at in last.items():
            since.add_metric([stream], math.inf if at is None else (now - at).total_seconds())
        yield since

        used = GaugeMetricFamily(
            "exmeta_used_weight",
            "X-MBX-USED-WEIGHT-1M reported with the stream's latest poll that had one",
            labels=["stream"],
        )
        for stream, weight in sorted(weights.items()):
            used.add_metric([stream], weight)
        yield used

        written = CounterMetricFamily(
            "exmeta_versions_written", "Version rows written, by table", labels=["table"]
        )
        for table, n in versions.items():
            if table not in PRIVATE_TABLES:
                written.add_metric([table], n)
        yield written
        yield _duration_family(histograms)

        yield _per_stream_counter(
            "exmeta_server_time_rejected",
            "Observations whose serverTime disagreed with the database clock beyond the"
            " tolerance and so did not date them",
            rejected,
        )
        yield _per_stream_counter(
            "exmeta_schema_changes",
            "Field paths or filter types of the stream's documents that Binance started or"
            " stopped sending, or whose JSON types changed (entity `schema` of the feed)",
            drift,
        )
        yield from weight_plan_families(plans)
        yield from listener_families(listening, signalled)


def listener_families(
    listening: list[signals.Listener], signalled: list[signals.SignalCount]
) -> Iterator[Metric]:
    """The realtime listeners' health and what they set off (core.signals); the account's
    signals are left out, since when its balances move is when the account trades."""
    connected = GaugeMetricFamily(
        "exmeta_stream_listener_connected",
        "1 while the replica's WebSocket listener of the market is connected",
        labels=["market", "replica"],
    )
    silent = GaugeMetricFamily(
        "exmeta_stream_listener_silence_seconds",
        "Seconds since the listener's last message from Binance (+Inf: none yet)",
        labels=["market", "replica"],
    )
    reconnects = CounterMetricFamily(
        "exmeta_stream_listener_reconnects",
        "Times the listener connected again after losing its connection",
        labels=["market", "replica"],
    )
    for lsn in listening:
        labels = [lsn.market, lsn.replica_id]
        connected.add_metric(labels, 1 if lsn.connected else 0)
        silent.add_metric(labels, math.inf if lsn.silent_seconds is None else lsn.silent_seconds)
        reconnects.add_metric(labels, lsn.reconnects)
    counted = CounterMetricFamily(
        "exmeta_stream_signals",
        "Pushed events, suspicions and reconnections, by what the poll they asked for found"
        " (unpolled: over [realtime] suspicion_weight_share)",
        labels=["stream", "kind", "outcome"],
    )
    for c in signalled:
        if c.stream not in PRIVATE_STREAMS:
            counted.add_metric([c.stream, c.kind, c.outcome], c.signals)
    yield from (connected, silent, reconnects, counted)


def _per_stream_counter(name: str, documentation: str, counts: dict[str, int]) -> Metric:
    counter = CounterMetricFamily(name, documentation, labels=["stream"])
    for stream, n in counts.items():
        counter.add_metric([stream], n)
    return counter


def _poll_families(counts: list[stats.PollCount]) -> Iterator[Metric]:
    """The per-stream poll counters; the private streams' successes are left out, since
    when an account poll ``changed`` is when the account traded."""
    polls = CounterMetricFamily(
        "exmeta_polls", "Polls recorded, by stream and outcome", labels=["stream", "outcome"]
    )
    errors = CounterMetricFamily(
        "exmeta_poll_errors",
        "Failed polls, by stream and short error class",
        labels=["stream", "error_class"],
    )
    sent = CounterMetricFamily(
        "exmeta_binance_requests",
        "Requests sent to Binance, retries included",
        labels=["stream"],
    )
    retries = CounterMetricFamily(
        "exmeta_retries", "Requests that were retries of a failed one", labels=["stream"]
    )
    backoff = CounterMetricFamily(
        "exmeta_backoff_seconds",
        "Time spent backing off before retries and for the weight budget",
        labels=["stream"],
    )
    by_outcome: dict[tuple[str, str], int] = {}
    by_error: dict[tuple[str, str], int] = {}
    per_stream: dict[str, list[int]] = {}
    for c in counts:
        key = (c.stream, c.outcome)
        by_outcome[key] = by_outcome.get(key, 0) + c.polls
        if c.error_class is not None:
            ekey = (c.stream, c.error_class)
            by_error[ekey] = by_error.get(ekey, 0) + c.polls
        totals = per_stream.setdefault(c.stream, [0, 0, 0])
        totals[0] += c.requests
        totals[1] += c.retries
        totals[2] += c.backoff_ms
    for (stream, outcome), n in sorted(by_outcome.items()):
        if stream not in PRIVATE_STREAMS or outcome not in SUCCESS_OUTCOMES:
            polls.add_metric([stream, outcome], n)
    for (stream, error_class), n in sorted(by_error.items()):
        errors.add_metric([stream, error_class], n)
    for stream, (n_sent, n_retries, backoff_ms) in sorted(per_stream.items()):
        sent.add_metric([stream], n_sent)
        retries.add_metric([stream], n_retries)
        backoff.add_metric([stream], backoff_ms / 1000)
    yield from (polls, errors, sent, retries, backoff)


def _duration_family(histograms: list[stats.DurationHistogram]) -> Metric:
    """Poll durations of the public streams (a private poll that writes takes longer)."""
    duration = HistogramMetricFamily(
        "exmeta_poll_duration_seconds",
        "Duration of a poll: every attempt and back-off, until recorded",
        labels=["stream"],
    )
    for h in histograms:
        if h.stream in PRIVATE_STREAMS:
            continue
        cumulative = list(accumulate(h.bucket_counts))
        buckets = [
            (f"{b / 1000:g}", n)
            for b, n in zip(stats.DURATION_BOUNDS_MS, cumulative[:-1], strict=True)
        ]
        buckets.append(("+Inf", h.count))
        duration.add_metric([h.stream], buckets, h.sum_ms / 1000)
    return duration


def weight_plan_families(plans: Mapping[str, WeightPlan]) -> Iterator[Metric]:
    """What each market's weight budget allows against what its streams' intervals need
    (core.weight_plan): Binance counts weight per API, so each market has its own."""
    budget = GaugeMetricFamily(
        "exmeta_weight_budget_per_minute",
        "Request weight per minute the market's budget allows: weight_budget x its limit",
        labels=["market"],
    )
    needed = GaugeMetricFamily(
        "exmeta_weight_needed_per_minute",
        "Request weight per minute the configured intervals of the market's streams need",
        labels=["market"],
    )
    effective = GaugeMetricFamily(
        "exmeta_effective_interval_seconds",
        "Average seconds between polls the budget allows (the configured interval if it suffices)",
        labels=["stream"],
    )
    for market, plan in plans.items():
        budget.add_metric([market], plan.budget_per_minute)
        needed.add_metric([market], plan.needed_per_minute)
        for stream, seconds in plan.effective_intervals.items():
            effective.add_metric([stream], seconds)
    yield from (budget, needed, effective)


def register_metrics(app: Flask, state: AppState) -> None:
    registry = CollectorRegistry()
    registry.register(ObservationCollector(state))

    def metrics() -> Response:
        # A database that does not answer raises here and becomes the API's usual 503.
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(METRICS_URL, "metrics", metrics)
