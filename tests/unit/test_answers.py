"""The per-worker cache of single-symbol answers (api.answers): pure logic, fake clock."""

from __future__ import annotations

from api.answers import AnswerCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_generation_is_read_again_only_after_the_recheck_interval() -> None:
    clock, reads = Clock(), [7, 8]
    cache = AnswerCache(10, recheck_seconds=0.1, clock=clock)
    assert cache.generation(lambda: reads.pop(0)) == 7
    clock.now = 0.05
    assert cache.generation(lambda: reads.pop(0)) == 7  # not read: one reading per interval
    assert reads == [8]
    clock.now = 0.2
    assert cache.generation(lambda: reads.pop(0)) == 8


def test_of_two_racing_looks_the_one_started_first_never_wins() -> None:
    clock = Clock()
    cache = AnswerCache(10, recheck_seconds=0.1, clock=clock)

    def slow_look() -> int:
        # While this look waits for the database, another thread looks later and finishes.
        clock.now = 1.0
        assert cache.generation(lambda: 9) == 9
        return 8  # this older snapshot's reading arrives late

    assert cache.generation(slow_look) == 9
    assert cache.generation(lambda: 7) == 9  # the newer look was just made: not read again


def test_a_lower_generation_at_a_newer_look_is_the_current_one() -> None:
    # A failover to a standby that has replayed less: its past is what it can answer.
    clock = Clock()
    cache = AnswerCache(10, recheck_seconds=0.1, clock=clock)
    cache.put("a", 9, b"from further on")
    assert cache.generation(lambda: 9) == 9
    clock.now = 1.0
    assert cache.generation(lambda: 8) == 8
    assert cache.get("a", 8) is None
    clock.now = 2.0
    assert cache.generation(lambda: None) is None  # no stream head at all there


def test_an_answer_is_served_only_under_the_generation_it_was_read_in() -> None:
    cache = AnswerCache(10)
    cache.put(("BTCUSDT", 1), 5, b"old")
    assert cache.get(("BTCUSDT", 1), 5) == b"old"
    assert cache.get(("BTCUSDT", 1), 6) is None
    assert cache.get(("BTCUSDT", 1), None) is None
    assert cache.get(("ETHUSDT", 1), 5) is None


def test_the_least_recently_used_answer_goes_first() -> None:
    cache = AnswerCache(2)
    cache.put("a", 1, b"A")
    cache.put("b", 1, b"B")
    assert cache.get("a", 1) == b"A"  # "b" is now the least recently used
    cache.put("c", 1, b"C")
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (b"A", None, b"C")
    assert len(cache) == 2


def test_zero_entries_or_no_generation_keeps_nothing() -> None:
    off = AnswerCache(0)
    off.put("a", 1, b"A")
    assert (len(off), off.get("a", 1)) == (0, None)
    on = AnswerCache(5)
    on.put("a", None, b"A")
    assert len(on) == 0
