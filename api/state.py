"""What every request needs from the application: settings, engine, clock, streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from flask import current_app
from sqlalchemy import Connection, Engine

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
