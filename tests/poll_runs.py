"""A short-interval poll history with every kind of run boundary, and what the API answers
about it: the observation-log tests compare these answers before and after folding."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from api import create_app
from core.config import Settings
from core.timeparse import format_instant
from tests.builders import (
    at,
    exchange_info,
    record_exchange_info,
    record_failure,
    record_stream,
    symbol,
)

T0 = at("2025-03-01T12:00:00")
NOW = T0 + timedelta(hours=2)
INTERVAL = 1.0  # seconds: the short interval that folding is for


@dataclass(frozen=True)
class Story:
    successes: list[datetime]  # every successful exchange_info poll's instant, in order


def _jittered(second: float, k: int) -> datetime:
    """A poll instant off the whole second by a few ms and µs, as real ones are."""
    return T0 + timedelta(seconds=second, microseconds=(k * 7919) % 900_000 // 7)


def record_story(engine: Engine) -> Story:
    """exchange_info polled about every second: a change, unchanged polls with an error
    among them, another change, polls by a second replica, a 60 s silence, more polls;
    system_status polled in between, so the ids of one stream's polls are not consecutive."""
    first = exchange_info(symbol("BTCUSDT"))
    second = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
    successes: list[datetime] = []
    plan: list[tuple[float, dict[str, Any] | None, str]] = [
        *((s, first, "a") for s in range(21)),
        (21.5, None, "a"),  # an error between two unchanged polls
        *((s, first, "a") for s in range(22, 41)),
        *((s, second, "a") for s in range(41, 61)),
        *((s, second, "b") for s in range(61, 66)),  # another replica took over
        *((s, second, "b") for s in range(126, 141)),  # after a 60 s silence
    ]
    for k, (second_, document, replica) in enumerate(plan):
        when = _jittered(second_, k)
        if document is None:
            record_failure(engine, when)
            continue
        record_exchange_info(engine, document, when, replica_id=replica)
        successes.append(when)
        if k % 3 == 0:
            status = {"status": 0, "msg": "normal"}
            record_stream(engine, "system_status", status, when + timedelta(milliseconds=300))
    return Story(successes)


def probes(story: Story) -> list[datetime]:
    """Instants at, just around and between every poll, and before and after them all."""
    found = {story.successes[0] - timedelta(seconds=5), story.successes[-1] + timedelta(seconds=5)}
    tick = timedelta(microseconds=1)
    for a, b in zip(story.successes, story.successes[1:], strict=False):
        found |= {a - tick, a, a + tick, a + (b - a) / 2}
    found |= {story.successes[-1] - tick, story.successes[-1], story.successes[-1] + tick}
    return sorted(found)


def client(engine: Engine) -> FlaskClient:
    settings = Settings()
    fast = dataclasses.replace(settings.poller, exchange_info_interval=INTERVAL)
    app = create_app(dataclasses.replace(settings, poller=fast), engine, clock=lambda: NOW)
    return app.test_client()


def q(value: datetime) -> str:
    return quote(format_instant(value) or "")


def answers(api: FlaskClient, story: Story) -> dict[str, Any]:
    """Every answer that reads poll instants: evidence, documents, log, gaps, feed, metrics."""
    found: dict[str, Any] = {}
    for t in probes(story):
        symbol_answer = api.get(f"/v1/symbols/BTCUSDT?as_of={q(t)}")
        document = api.get(f"/v1/exchange-info?as_of={q(t)}")
        found[f"symbol {t}"] = (symbol_answer.status_code, symbol_answer.json)
        found[f"document {t}"] = (
            document.status_code,
            document.headers.get("X-Exmeta-Observation-Id"),
            document.headers.get("X-Exmeta-Observed-At"),
            document.data,
        )
    window = f"from={q(T0 - timedelta(minutes=1))}&to={q(NOW)}"
    found["changes"] = api.get(f"/v1/changes?{window}").json
    found["metrics"] = api.get("/metrics").data
    found["readyz"] = api.get("/readyz").json
    return found


def log(api: FlaskClient, **query: str) -> dict[str, Any]:
    asked = {"from": q(T0 - timedelta(minutes=1)), "to": q(NOW), "limit": "1000", **query}
    response = api.get("/v1/observations?" + "&".join(f"{k}={v}" for k, v in asked.items()))
    assert response.status_code == 200, response.json
    assert response.json is not None
    return dict(response.json)


def changes_view(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM changes ORDER BY changed_at, entity, key, field")
        ).all()
    return [tuple(r) for r in rows]


def _folded(engine: Engine, column: str) -> set[Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT p.{column} FROM observation_runs r CROSS JOIN LATERAL"
                " observation_run_polls(r.first_id, r.first_at, r.id_steps, r.gaps_us) p"
            )
        ).scalars()
        return set(rows)


def folded_ids(engine: Engine) -> set[int]:
    return _folded(engine, "id")


def folded_instants(engine: Engine) -> set[datetime]:
    return _folded(engine, "observed_at")
