"""How a long-running command (`poll`, `up`) hears that it should stop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("exmeta")


def stop_on_signals(stop: threading.Event, *, announce: bool = True) -> None:
    """SIGTERM and SIGINT set ``stop``; ``announce=False`` under `exmeta up`, which has
    said it already."""

    setting = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal setting
        log.log(
            logging.INFO if announce else logging.DEBUG,
            "received %s, stopping",
            signal.Signals(signum).name,
        )
        # A second signal (SIGINT and SIGTERM sent together) runs its handler inside the
        # first one's, possibly inside Event.set, whose lock is not reentrant: setting it
        # again there would wait forever.
        if setting:
            return
        setting = True
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
