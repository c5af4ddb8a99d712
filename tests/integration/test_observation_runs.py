"""Folding old unchanged polls into runs (core.obslog): every answer stays as it was."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from core import obslog
from core.config import Settings
from core.repair import repair_streams_ahead
from poller.runner import build_poller
from tests.builders import exchange_info, record_exchange_info, symbol
from tests.e2e.processes import exmeta_env, run_exmeta
from tests.poll_runs import (
    T0,
    answers,
    changes_view,
    client,
    folded_ids,
    folded_instants,
    log,
    q,
    record_story,
)

FOLD_ALL = timedelta(hours=1)  # the story is in 2025: every poll is older than that
DETAIL = ("requested_at", "duration_ms", "used_weight", "attempts", "backoff_ms")


def test_every_answer_about_poll_instants_is_the_same_after_folding(
    engine: Engine, api_engine: Engine
) -> None:
    story = record_story(engine)
    api = client(api_engine)
    before = answers(api, story)
    view_before = changes_view(engine)

    folded = obslog.compact(engine, FOLD_ALL)

    assert folded["exchange_info"] > 50  # most of the story's polls are unchanged ones
    after = answers(api, story)
    assert [k for k in before if before[k] != after[k]] == []
    assert changes_view(engine) == view_before


def test_the_log_lists_every_folded_poll_without_its_detail(
    engine: Engine, api_engine: Engine
) -> None:
    record_story(engine)
    api = client(api_engine)
    before = log(api)

    obslog.compact(engine, FOLD_ALL)

    after = log(api)
    folded = folded_ids(engine)
    assert folded
    expected = [
        {**row, **dict.fromkeys(DETAIL)} if row["id"] in folded else row
        for row in before["observations"]
    ]
    assert after["observations"] == expected
    assert after["gaps"] == before["gaps"]


def test_the_log_filters_folded_polls_like_detail_rows(engine: Engine, api_engine: Engine) -> None:
    record_story(engine)
    api = client(api_engine)
    queries = (
        {"stream": "exchange_info"},
        {"stream": "system_status", "limit": "3"},
        {"outcome": "unchanged"},
        {"outcome": "error"},
        {"limit": "7"},
        # From inside a run of each stream: the runs already running count too.
        {"from": q(T0 + timedelta(seconds=30.5)), "limit": "4"},
        {"from": q(T0 + timedelta(seconds=30.5)), "to": q(T0 + timedelta(seconds=50))},
    )
    before = [[r["id"] for r in log(api, **q)["observations"]] for q in queries]

    obslog.compact(engine, FOLD_ALL)

    assert [[r["id"] for r in log(api, **q)["observations"]] for q in queries] == before


def test_polls_within_the_detail_window_keep_their_detail(engine: Engine) -> None:
    record_story(engine)

    assert obslog.compact(engine, timedelta(days=365 * 100)) == {}

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM observation_runs")).scalar_one() == 0


def test_what_folding_keeps_out_of_runs(engine: Engine) -> None:
    """Changed polls, errors and each stream's head observation stay detail rows."""
    record_story(engine)

    obslog.compact(engine, FOLD_ALL)

    with engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT o.outcome, o.id = h.last_observation_id FROM observations o"
                " JOIN stream_heads h USING (stream) ORDER BY o.id"
            )
        ).all()
    assert {(outcome, head) for outcome, head in left if outcome == "unchanged"} == {
        ("unchanged", True)
    }
    assert {outcome for outcome, _ in left} == {"changed", "unchanged", "error"}


def test_folding_again_folds_nothing_new(engine: Engine, api_engine: Engine) -> None:
    story = record_story(engine)
    obslog.compact(engine, FOLD_ALL)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT * FROM observation_runs ORDER BY 1, 2")).all()
    answered = answers(client(api_engine), story)

    assert obslog.compact(engine, FOLD_ALL) == {}

    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM observation_runs ORDER BY 1, 2")).all() == runs
    assert answers(client(api_engine), story) == answered


def test_two_replicas_folding_at_once_fold_each_poll_once(
    engine: Engine, api_engine: Engine
) -> None:
    story = record_story(engine)
    expected = answers(client(api_engine), story)
    with engine.connect() as conn:
        unchanged = conn.execute(
            text("SELECT count(*) FROM observations WHERE outcome = 'unchanged'")
        ).scalar_one()
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def replica() -> None:
        start.wait()
        results.append(obslog.compact(engine, FOLD_ALL))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    with engine.connect() as conn:
        in_runs = conn.execute(text("SELECT sum(polls) FROM observation_runs")).scalar_one()
        overlaps = conn.execute(
            text(
                "SELECT count(*) FROM observation_runs a JOIN observation_runs b"
                " ON a.stream = b.stream AND a.first_at < b.first_at AND b.first_at <= a.last_at"
            )
        ).scalar_one()
        left = conn.execute(
            text("SELECT count(*) FROM observations WHERE outcome = 'unchanged'")
        ).scalar_one()
    assert sum(sum(r.values()) for r in results) == in_runs == unchanged - left
    assert overlaps == 0
    assert answers(client(api_engine), story) == expected


def test_a_poller_folds_on_its_schedule_from_one_interval_after_it_starts(engine: Engine) -> None:
    record_story(engine)
    poller = build_poller(Settings(), engine, "r0")
    assert poller.compaction is not None
    assert poller.compaction.interval == Settings().poller.compaction_interval_seconds

    poller.compaction()  # the replica's start: nothing folded yet
    assert folded_ids(engine) == set()
    poller.compaction()  # one interval later: the story is older than the 48 h window

    assert folded_ids(engine)


def test_a_poller_told_to_keep_every_polls_detail_never_folds(engine: Engine) -> None:
    settings = Settings()
    keep_all = dataclasses.replace(
        settings, poller=dataclasses.replace(settings.poller, observation_detail_hours=0)
    )

    assert build_poller(keep_all, engine, "r0").compaction is None


def test_repair_goes_back_to_the_last_sound_poll_when_it_was_folded(engine: Engine) -> None:
    story = record_story(engine)
    ahead = datetime.now(UTC) + timedelta(days=3650)
    retick = exchange_info(symbol("BTCUSDT", tick_size="0.10000000"))
    record_exchange_info(engine, retick, ahead)  # dated by a glitching serverTime, as of old
    obslog.compact(engine, FOLD_ALL)  # the story's last poll is no longer the head's: folded
    assert story.successes[-1] in folded_instants(engine)

    with engine.begin() as conn:
        [repaired] = repair_streams_ahead(conn, timedelta(seconds=5))

    assert repaired.head_at == story.successes[-1]
    with engine.connect() as conn:
        head = conn.execute(
            text("SELECT last_applied_at FROM stream_heads WHERE stream = 'exchange_info'")
        ).scalar_one()
    assert head == story.successes[-1]


def test_exmeta_compact_folds_now_and_then_finds_nothing_left(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    record_story(engine)
    env = exmeta_env(database_url, "http://127.0.0.1:9", 10)
    with engine.connect() as conn:
        unchanged = conn.execute(
            text(
                "SELECT count(*) FROM observations WHERE outcome = 'unchanged'"
                " AND stream = 'exchange_info'"
            )
        ).scalar_one()

    first = run_exmeta(env, tmp_path, "compact")  # the story is older than 48 h
    again = run_exmeta(env, tmp_path, "compact")
    refused = run_exmeta(env, tmp_path, "compact", "--older-than-hours", "-1")

    assert first.returncode == 0, first.stderr
    # All but the head's own: the stream's newest poll keeps its row.
    assert f"folded {unchanged - 1} unchanged polls of exchange_info\n" in first.stdout
    assert (again.returncode, again.stdout) == (
        0,
        "nothing to fold: no unchanged poll older than 48 h keeps its detail\n",
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "exmeta: error: --older-than-hours must be 0 to 876000 (a century), got -1"
    ]


def test_a_replica_asked_to_stop_folds_no_further(engine: Engine) -> None:
    record_story(engine)
    stop = threading.Event()
    stop.set()

    assert obslog.compact(engine, FOLD_ALL, stop) == {}
    assert folded_ids(engine) == set()
