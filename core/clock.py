"""The one clock: what every part means by "now".

Always UTC-aware, and always injected (a ``clock`` argument defaulting to ``utc_now``),
so tests and the replays of recorded polls can set the time instead of waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, UTC-aware: the default of every injected clock."""
    return datetime.now(UTC)
