"""What every request needs from the application: settings, engine, clock, streams."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from flask import current_app
from sqlalchemy import Connection, Engine

from api.answers import AnswerCache
from core import history
from core.clock import Clock
from core.config import Settings
from core.streams import DEFAULT_MARKET, MARKETS, RATE_LIMIT_TABLES, market, stream
from core.weight_plan import WeightPlan, plan_for

EXTENSION = "exmeta"


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    clock: Clock
    streams: tuple[str, ...]
    answers: AnswerCache = field(init=False)

    def __post_init__(self) -> None:
        # frozen: set once, here; the cache itself is what changes.
        object.__setattr__(self, "answers", AnswerCache(self.settings.api.answer_cache_entries))

    def generation(self, market_name: str = DEFAULT_MARKET) -> int | None:
        """The current generation of the market's versions (see api.answers)."""
        stream = market(market_name).exchange_info
        return self.answers.generation(lambda: self._read_generation(stream), stream)

    def _read_generation(self, stream: str) -> int | None:
        with self.answering() as conn:
            return history.versions_generation(conn, stream)

    def interval(self, stream: str) -> float:
        return self.settings.stream_intervals()[stream]

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection whose statements all see one snapshot.

        An answer is rules *and* their evidence: read under READ COMMITTED, a poll
        committing between the two queries could pair new rules with old evidence.
        """
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @contextmanager
    def answering(self) -> Iterator[Connection]:
        """A connection for an answer read in one statement, which sees one snapshot by
        itself: no transaction, so no BEGIN and no ROLLBACK round trips around it."""
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def weight_plans(self, conn: Connection) -> dict[str, WeightPlan]:
        """Each market's weight plan (core.weight_plan) for the streams of it this
        deployment polls, under the market's own REQUEST_WEIGHT limit as versioned."""
        polled = {stream(s).market for s in self.streams}
        return {
            m: plan_for(
                self.settings,
                self.streams,
                history.request_weight_limit(conn, RATE_LIMIT_TABLES[m]),
                m,
            )
            for m in MARKETS
            if m in polled
        }

    def evidence(
        self, conn: Connection, at: datetime, now: datetime, market_name: str = DEFAULT_MARKET
    ) -> history.Evidence:
        """The evidence of an answer about the market's symbols, rate limits or exchangeInfo:
        the observations of its exchangeInfo stream around ``at``."""
        stream = market(market_name).exchange_info
        return history.evidence(conn, stream, at, self.interval(stream), now)


def app_state() -> AppState:
    return cast(AppState, current_app.extensions[EXTENSION])
