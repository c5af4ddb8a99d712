"""Stand-ins for the unit tests of the realtime listeners' pure parts."""

from dataclasses import dataclass, field

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
