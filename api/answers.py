"""Single-symbol answers about past instants, kept per worker process.

An answer about an instant ``t`` that a successful observation already follows
(``observed_after`` is set) depends only on the versions in force at ``t``: its evidence
can no longer change, because any later write comes from an observation newer than the
stream's last applied one (older ones are recorded ``stale``). Its versions change only
when a write changes the stream's versions, and each such write moves the stream head's
``state_observation_id`` (the "generation" here) in the same transaction. So a kept answer
is served while the generation it was read under is still the current one.

The current generation is read at most every ``RECHECK_SECONDS`` per worker, not per
request: after a change, an answer kept before it may be served for up to that long, as
if the request had been answered a moment earlier. With polls a second or more apart,
that is well inside the time Binance's own change takes to reach us. Answers about now,
about an instant nothing has been observed after yet, and 404s are never kept.

The current generation is the one the database said at the newest look, even when it is
lower than an earlier one: the API may read from a hot standby, and after a failover (a
multi-host URL, a proxy, a standby restarted) the next server may have replayed less. Its
answers are then those of its own past, and a kept answer from further on must not be
served: it would cite observations that server does not hold. Only a look started
before another and finished after it is ignored (it is the older of the two).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from core.history import Evidence

RECHECK_SECONDS = 0.1


def keepable(found: Evidence) -> bool:
    """Whether an answer with this evidence depends on nothing but the versions."""
    return found.observed_after is not None


@dataclass(slots=True)
class _Look:
    """The newest look at one stream's generation."""

    generation: int | None = None
    checked_at: float = float("-inf")
    newest: int = 0  # the number of the look it came from


class AnswerCache:
    """A bounded least-recently-used map of answer bodies tagged with their generation.

    Each market's answers are tagged with its own exchangeInfo stream's generation (the
    key of an answer names its market): a USD-M change leaves spot's answers standing.
    """

    def __init__(
        self,
        entries: int,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = entries
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._bodies: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._streams: defaultdict[str, _Look] = defaultdict(_Look)
        self._looks = itertools.count(1)  # next() is atomic under the GIL

    def generation(self, read: Callable[[], int | None], stream: str = "") -> int | None:
        """The current generation of ``stream``, from ``read`` if the last look is older
        than the recheck.

        The common case takes no lock: under the GIL an attribute read is atomic, and a
        lock taken by every request of a worker's threads convoys them (a thread holding
        it when its time slice ends makes the others queue behind it).
        """
        last = self._streams[stream]
        if self._clock() - last.checked_at < self.recheck_seconds:
            return last.generation
        look = self.start_look()
        return self.saw(stream, look, read())  # read outside the lock: see saw

    def start_look(self) -> int:
        """The number of a look at a generation about to be read: by ``generation``, or
        by an answer whose own statement reads it (core.history.symbol_answer)."""
        return next(self._looks)  # atomic under the GIL

    def saw(self, stream: str, look: int, found: int | None) -> int | None:
        """Record what look number ``look`` found, unless a look started later has
        already been recorded; the current generation after it.

        The read happens outside the lock: a slow database must not hold up cache hits.
        """
        last = self._streams[stream]
        with self._lock:
            if look > last.newest:
                last.newest = look
                last.generation = found
                last.checked_at = self._clock()
            return last.generation

    def get(self, key: Hashable, generation: int | None) -> bytes | None:
        """The body kept for ``key`` if read under ``generation``; lock-free, like the
        generation's common case (each OrderedDict call is atomic under the GIL)."""
        if generation is None:
            return None
        kept = self._bodies.get(key)
        if kept is None or kept[0] != generation:
            return None
        # Evicted by another thread meanwhile? The body is still the right one.
        with contextlib.suppress(KeyError):
            self._bodies.move_to_end(key)
        return kept[1]

    def put(self, key: Hashable, generation: int | None, body: bytes) -> None:
        if self.entries <= 0 or generation is None:
            return
        with self._lock:
            self._bodies[key] = (generation, body)
            self._bodies.move_to_end(key)
            while len(self._bodies) > self.entries:
                self._bodies.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        """Whether a body is kept for ``key``, whatever its generation."""
        return key in self._bodies

    def __len__(self) -> int:
        return len(self._bodies)
