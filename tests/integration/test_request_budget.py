"""The shared standing's row: how reports from many replicas merge (core.request_budget)."""

from sqlalchemy import Engine, text

from core.request_budget import OPEN, Report, Standing, standing
from tests.weight_minutes import start_well_inside_a_minute

BUDGET = 100.0


def report(engine: Engine, news: Report) -> Standing:
    with engine.begin() as conn:
        return standing(conn, BUDGET, news)


def read(engine: Engine) -> Standing:
    with engine.begin() as conn:
        return standing(conn, BUDGET)


def used(engine: Engine) -> tuple[int, int]:
    """The recorded weight, and how many minutes before this one it was counted in."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT used_weight, extract(epoch FROM date_trunc('minute', clock_timestamp())"
                " - weight_window)::int / 60 AS minutes_ago FROM request_budget"
            )
        ).one()
    return row.used_weight, row.minutes_ago


def test_no_row_yet_is_an_open_road(engine: Engine) -> None:
    assert read(engine) == OPEN


def test_the_first_report_creates_the_row_with_a_real_window_and_no_pause(engine: Engine) -> None:
    start_well_inside_a_minute(engine)

    assert report(engine, Report(used_weight=20)) == OPEN
    assert used(engine) == (20, 0)
    assert read(engine) == OPEN
    with engine.connect() as conn:
        never_paused = conn.execute(
            text("SELECT paused_until < clock_timestamp() FROM request_budget")
        ).scalar_one()
    assert never_paused


def test_within_a_window_the_highest_count_stands_whatever_the_order(engine: Engine) -> None:
    start_well_inside_a_minute(engine)
    report(engine, Report(used_weight=80))
    report(engine, Report(used_weight=60))  # told earlier, reported later by a slower replica

    assert used(engine) == (80, 0)
    assert read(engine).wait_seconds == 0  # 80 is within the budget of 100


def test_a_newer_window_replaces_an_older_one_and_never_the_reverse(engine: Engine) -> None:
    start_well_inside_a_minute(engine)
    report(engine, Report(used_weight=500, age_seconds=60))  # last minute's count
    assert used(engine) == (500, 1)
    assert read(engine).wait_seconds == 0  # that minute is over

    report(engine, Report(used_weight=30))
    report(engine, Report(used_weight=900, age_seconds=60))  # news from the old minute: too late
    assert used(engine) == (30, 0)


def test_above_the_budget_the_wait_runs_to_the_next_window(engine: Engine) -> None:
    start_well_inside_a_minute(engine)
    with engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT extract(epoch FROM date_trunc('minute', clock_timestamp())"
                " + interval '1 minute' - clock_timestamp())::float8"
            )
        ).scalar_one()

    waiting = report(engine, Report(used_weight=101))

    assert 0 < waiting.wait_seconds <= left
    assert waiting.paused_seconds == 0


def test_a_longer_pause_is_never_shortened_by_a_later_shorter_one(engine: Engine) -> None:
    report(engine, Report(pause_seconds=120, pause_reason="HTTP 418 seen by a"))
    after = report(engine, Report(pause_seconds=5, pause_reason="HTTP 429 seen by b"))

    assert 115 < after.paused_seconds <= 120
    assert after.pause_reason == "HTTP 418 seen by a"
    assert read(engine).pause_reason == "HTTP 418 seen by a"


def test_a_pause_over_is_no_pause(engine: Engine) -> None:
    report(engine, Report(used_weight=20, pause_seconds=0.01, pause_reason="HTTP 429 seen by a"))
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.05)"))

    assert read(engine).paused_seconds == 0
