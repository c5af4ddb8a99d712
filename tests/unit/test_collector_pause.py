"""The writer holds Python's cycle collector off while it works, and only then."""

import gc
import threading

from core.ingest import _CollectorPause


def test_the_collector_resumes_when_the_last_of_overlapping_writers_is_done() -> None:
    pause = _CollectorPause()
    first, second = pause(), pause()
    assert gc.isenabled()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second writer is still at work
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    pause = _CollectorPause()
    gc.disable()
    try:
        with pause():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_writers_in_threads_leave_the_collector_on() -> None:
    pause = _CollectorPause()

    def write() -> None:
        for _ in range(2000):
            with pause():
                assert not gc.isenabled()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.isenabled()
