"""What every request needs from the application: settings, engine, clock, streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from flask import current_app
from sqlalchemy import Connection, Engine

from api.answers import AnswerCache
from core import history
from core.config import Settings

EXTENSION = "exmeta"
EVIDENCE_STREAM = "exchange_info"  # the stream behind symbols, rate limits and exchangeInfo


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    clock: Callable[[], datetime]
    streams: tuple[str, ...]
    answers: AnswerCache = field(init=False)

    def __post_init__(self) -> None:
        # frozen: set once, here; the cache itself is what changes.
        object.__setattr__(self, "answers", AnswerCache(self.settings.api.answer_cache_entries))

    def generation(self) -> int | None:
        """The evidence stream's current generation of versions (see api.answers)."""
        return self.answers.generation(self._read_generation)

    def _read_generation(self) -> int | None:
        with self.engine.connect() as conn:
            return history.versions_generation(conn, EVIDENCE_STREAM)

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

    def evidence(self, conn: Connection, at: datetime, now: datetime) -> history.Evidence:
        return history.evidence(conn, EVIDENCE_STREAM, at, self.interval(EVIDENCE_STREAM), now)


def app_state() -> AppState:
    return cast(AppState, current_app.extensions[EXTENSION])
