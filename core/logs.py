"""How every exmeta log line looks, from every process: the CLI's commands, gunicorn's
master and workers, the sim.

Times are UTC in RFC 3339 with milliseconds and ``Z``, the format of every API answer,
whatever the host's time zone: a line can be set beside an answer, or beside another
host's line, without converting. (``logging``'s default is local time without an
offset.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TextIO

from core.timeparse import format_instant

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UtcFormatter(logging.Formatter):
    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return format_instant(datetime.fromtimestamp(record.created, UTC)) or ""


def utc_handler(stream: TextIO) -> logging.Handler:
    """A handler writing the lines above to ``stream`` (stderr, for every command)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(UtcFormatter())
    return handler
