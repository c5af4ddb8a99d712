"""Stand-ins for the unit tests of the realtime listeners' pure parts."""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.client import ClientConnection

from poller.listener import SpotSilences
from poller.triggers import ImmediatePolls


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingSink:
    """Keeps each signal, and asks ``immediate`` (if given) as the real sink does."""

    immediate: ImmediatePolls | None = None
    signals: list[tuple[str, str, str | None, int | None]] = field(default_factory=list)
    polled: int = 0

    def signal(
        self, stream: str, kind: str, symbol: str | None = None, event_ms: int | None = None
    ) -> None:
        self.signals.append((stream, kind, symbol, event_ms))
        if self.immediate is not None and self.immediate.allow(stream):
            self.polled += 1
            self.immediate.ask(stream)
            # The loop starts the poll at once: the next suspicion needs a poll of its own.
            self.immediate.claim(stream)


class Stalling:
    """A listener's handler that holds up the listener's thread once, when told, in the
    middle of handing an event over (as a busy machine or interpreter would)."""

    def __init__(self, handler: SpotSilences) -> None:
        self.handler = handler
        self.streams = handler.streams
        self._stall = 0.0
        self.stalled = threading.Event()

    def stall_once(self, seconds: float) -> None:
        self._stall = seconds

    def opened(self, connection: ClientConnection) -> None:
        self.handler.opened(connection)

    def connected(self, first: bool, now: float) -> None:
        self.handler.connected(first, now)

    def event(self, event: dict[str, Any], now: float) -> None:
        self.handler.event(event, now)
        if self._stall:
            time.sleep(self._stall)
            self._stall = 0.0
            self.stalled.set()

    def tick(self, now: float) -> None:
        self.handler.tick(now)
