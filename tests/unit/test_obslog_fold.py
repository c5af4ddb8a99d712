"""Which polls fold into which runs (core.obslog.fold), and how a run's steps encode them."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.obslog import RUN_POLLS, Poll, Run, fold, run_row

T0 = datetime.fromisoformat("2025-03-01T12:00:00.000123+00:00")


def poll(
    n: int, *, foldable: bool = True, replica: str = "a", body: bytes = b"x", **at: float
) -> Poll:
    when = T0 + timedelta(seconds=at.get("seconds", n), microseconds=at.get("us", 0))
    return Poll(n * 3, when, foldable, replica, 200, body, "https://api.binance.com:443", None)


def ids(runs: list[Run]) -> list[list[int]]:
    return [[p.id for p in run.polls] for run in runs]


def test_consecutive_unchanged_polls_make_one_run() -> None:
    assert ids(fold([poll(n) for n in range(5)])) == [[0, 3, 6, 9, 12]]


def test_another_success_ends_a_run_and_is_not_folded() -> None:
    polls = [poll(0), poll(1), poll(2, foldable=False), poll(3)]

    assert ids(fold(polls)) == [[0, 3], [9]]


def test_a_run_ends_where_replica_or_body_changes() -> None:
    polls = [poll(0), poll(1, replica="b"), poll(2, replica="b"), poll(3, replica="b", body=b"y")]

    assert ids(fold(polls)) == [[0], [3, 6], [9]]


def test_a_run_ends_at_its_length_limit() -> None:
    runs = fold([poll(n) for n in range(RUN_POLLS + 2)])

    assert [len(r.polls) for r in runs] == [RUN_POLLS, 2]


def test_a_run_ends_where_a_step_would_not_fit_an_int4_of_microseconds() -> None:
    polls = [poll(0), poll(1, seconds=2147), poll(2, seconds=2147 + 2148)]

    assert ids(fold(polls)) == [[0, 3], [6]]


def test_a_run_keeps_each_polls_id_and_instant_exactly_as_steps() -> None:
    polls = [poll(0), poll(1, seconds=1.5, us=7), poll(2, seconds=2.75, us=1)]

    row = run_row(fold(polls)[0])

    assert (row["first_id"], row["first_at"], row["last_at"], row["polls"]) == (
        0,
        polls[0].observed_at,
        polls[2].observed_at,
        3,
    )
    assert row["id_steps"] == [3, 3]
    assert row["gaps_us"] == [1_500_007, 1_249_994]
