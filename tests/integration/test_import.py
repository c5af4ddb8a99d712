"""`exmeta import`: archived exchangeInfo documents written into the history the poller
keeps, answering as the files say, continued by live polling and never rewritten."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

import poller.archive
from api import create_app
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import Recorded, StreamWriter
from core.sources import source_of
from core.streams import stream
from core.verify import verify_history
from exmeta.cli import main
from poller.archive import ArchiveError, plan_import, read_documents, write_documents
from poller.parse import parse_exchange_info
from tests.api_client import ts
from tests.archives import (
    SPREAD,
    FeedChange,
    answers_are_the_files,
    assert_rules_are,
    epoch_ms,
    feed_change,
    feed_changes,
    instant_of,
    load,
    table_contents,
    windows,
)
from tests.builders import client_for, exchange_info_job
from tests.conftest import FIXTURES
from tests.git_archive import commit_file, new_repository
from tests.sim_client import add_fault
from tests.wallet_captures import CAPTURE_2021

ARCHIVE = FIXTURES / "archive"
# Out of order on purpose: a later day first, the directory's five, then the earlier day.
ARCHIVE_ARGS = [
    str(FIXTURES / "2022-11-29_2124.json"),
    str(ARCHIVE),
    str(FIXTURES / "2022-11-28_2124.json"),
]
DAY_MS = 86_400_000
ARCHIVE_FILES = [
    *sorted(ARCHIVE.glob("*.json.gz")),
    FIXTURES / "2022-11-28_2124.json",
    FIXTURES / "2022-11-29_2124.json",
]


@pytest.fixture(scope="module")
def documents() -> list[tuple[datetime, dict[str, Any]]]:
    """The archive as the test reads it, oldest first: each file's instant and symbols."""
    docs = [(instant_of(d["serverTime"]), d) for d in map(load, ARCHIVE_FILES)]
    return sorted(docs, key=lambda d: d[0])


@pytest.fixture
def configured(engine: Engine, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The command's settings: the test database, and the sim as spot's base URL."""
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("EXMETA_BINANCE__BASE_URL", sim.url)
    return engine


def counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("observations", "symbol_versions", "symbol_filter_versions")
        )


def test_imported_archive_answers_as_its_files_and_live_polling_continues_it(
    configured: Engine,
    sim: SimServer,
    documents: list[tuple[datetime, dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert main(["import", *ARCHIVE_ARGS]) == 0
    first = capsys.readouterr().out
    assert "imported 7 of 7 document(s)" in first
    written = counts(configured)
    assert main(["import", *ARCHIVE_ARGS]) == 0
    assert "imported 0 of 7 document(s)" in capsys.readouterr().out
    assert counts(configured) == written  # importing twice changes nothing

    client = create_app(Settings(), configured).test_client()
    assert list(answers_are_the_files(client, documents))  # every answer checked

    # Live polling of the configured source (the sim) continues the imported history.
    job = exchange_info_job(
        client_for(sim.url), StreamWriter(configured, "exchange_info"), "replica-a"
    )
    polled = job.run()
    assert polled.outcome == "changed"
    last_doc = documents[-1][1]
    with configured.connect() as conn:
        outcomes = conn.execute(text("SELECT DISTINCT outcome FROM observations")).scalars()
        assert set(outcomes) == {"changed"}  # no switch to a new history, no stale poll
        sources = conn.execute(text("SELECT DISTINCT source FROM observations")).scalars()
        assert list(sources) == [source_of(sim.url)]
    # The last file still answers up to the poll, and the poll's answer follows it.
    just_before = polled.observed_at - timedelta(microseconds=1)
    for name, symbol in {s["symbol"]: s for s in last_doc["symbols"]}.items():
        answer = client.get(f"/v1/symbols/{name}?as_of={ts(just_before)}").get_json()
        assert_rules_are(answer, symbol, just_before)
        assert answer["evidence"]["observed_after"] == ts(polled.observed_at)
        assert answer["evidence"]["imported"] is True
    served = orjson.loads(requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=5).content)
    for symbol in served["symbols"]:
        answer = client.get(f"/v1/symbols/{symbol['symbol']}").get_json()
        assert_rules_are(answer, symbol, polled.observed_at)
        assert answer["evidence"]["imported"] is False

    # History is prepended, never rewritten: once polled live, an import is refused.
    assert main(["import", *ARCHIVE_ARGS]) == 0  # all on record already: nothing to do
    capsys.readouterr()
    later = tmp_path / "a_day_later.json"
    later.write_bytes(orjson.dumps({**last_doc, "serverTime": last_doc["serverTime"] + DAY_MS}))
    assert main(["import", str(later)]) == 2
    refusal = capsys.readouterr().err
    assert refusal.count("\n") == 1
    assert f"polled live since {polled.observed_at.isoformat()}" in refusal
    assert counts(configured)[0] == written[0] + 1  # the live poll, nothing imported


def observation_log(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT observed_at, outcome, error_class, origin, replica_id"
                    " FROM observations ORDER BY observed_at"
                )
            )
        ]


def open_symbols(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM symbol_versions WHERE valid_to IS NULL")
            ).scalar_one()
        )


def test_error_bodies_are_error_observations_that_close_nothing(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = FIXTURES / "2022-11-28_2124.json"
    assert main(["import", str(day)]) == 0
    listed = open_symbols(configured)
    at = instant_of(load(day)["serverTime"])
    geo_block = FIXTURES / "restricted_location_2022-12-07.json"
    truncated = tmp_path / "bad_gateway.json.gz"
    truncated.write_bytes(gzip.compress(b"<html><h1>502 Bad Gateway</h1>"))
    assert main(["import", str(geo_block), "--at", ts(at + timedelta(hours=1))]) == 0
    assert main(["import", str(truncated), "--at", ts(at + timedelta(hours=2))]) == 0
    assert "1 error(s)" in capsys.readouterr().out
    assert open_symbols(configured) == listed
    log = observation_log(configured)
    assert [(o[1], o[2], o[3], o[4]) for o in log] == [
        ("changed", None, str(day.resolve()), "import"),
        ("error", "binance_error", str(geo_block.resolve()), "import"),
        ("error", "invalid_payload", str(truncated.resolve()), "import"),
    ]
    assert [o[0] for o in log] == [at, at + timedelta(hours=1), at + timedelta(hours=2)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["archive", "--at", "2022-01-01T00:00:00Z"], "--at dates one file, and 5 were given"),
        (["2022-11-28_2124.json", "--at", "yesterday"], "--at: "),
        (["missing.json"], "missing.json: no such file or directory"),
        (["2022-11-28_2124.json", "--source", "ftp://archive"], "--source must start with"),
    ],
)
def test_an_archive_that_cannot_be_dated_or_read_is_refused_in_one_line(
    configured: Engine, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [str(FIXTURES / a) if a.endswith(".json") or a == "archive" else a for a in args]
    assert main(["import", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert counts(configured) == (0, 0, 0)


def test_a_dry_run_writes_nothing_and_says_so(
    configured: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "--dry-run", *ARCHIVE_ARGS]) == 0
    said = capsys.readouterr().out
    assert said.startswith("dry run, nothing written: 7 document(s)")
    assert "7 to write (0 of them errors)" in said
    assert said.endswith("; dated 7 by serverTime\n")
    assert counts(configured) == (0, 0, 0)


def test_an_import_into_a_gap_of_imported_history_is_refused(
    configured: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    days = [FIXTURES / "2022-11-28_2124.json", FIXTURES / "2022-11-29_2124.json"]
    assert main(["import", *map(str, days)]) == 0
    capsys.readouterr()
    before = table_contents(configured)
    first = load(days[0])
    noon = tmp_path / "noon.json"
    noon.write_bytes(orjson.dumps({**first, "serverTime": first["serverTime"] + DAY_MS // 2}))
    assert main(["import", str(noon)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{noon} ({instant_of(first['serverTime'] + DAY_MS // 2).isoformat()}) falls" in err
    assert "within the exchange_info stream's history" in err
    assert table_contents(configured) == before
    # A day before and a day after, none within: refused too, naming one on each side.
    sides = []
    for n, shift in enumerate([-DAY_MS, 2 * DAY_MS]):
        sides.append(tmp_path / f"side_{n}.json")
        sides[-1].write_bytes(orjson.dumps({**first, "serverTime": first["serverTime"] + shift}))
    assert main(["import", *map(str, sides)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{sides[0]} (" in err
    assert f"{sides[1]} (" in err
    assert "lie on either side of the exchange_info stream's history" in err
    assert table_contents(configured) == before


def test_a_git_history_of_one_file_is_imported_commit_by_commit(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = new_repository(tmp_path / "archive")
    day = timedelta(days=1)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    drift = FIXTURES / "drift"
    undated = [
        {k: v for k, v in load(drift / f).items() if k != "serverTime"}
        for f in ("spot_2022-11-28_2124.json", "spot_2022-12-28_2137.json")
    ]
    # The last one says when it was built: that, not the commit, dates it.
    built_at = t0 + 4 * day + timedelta(seconds=30)
    dated = {**load(drift / "spot_2023-04-14_2187.json"), "serverTime": epoch_ms(built_at)}
    geo_block = (FIXTURES / "restricted_location_2022-12-07.json").read_bytes()
    commits = [
        commit_file(repo, "exchangeInfo.json", orjson.dumps(undated[0]), t0),
        commit_file(repo, "exchangeInfo.json", geo_block, t0 + day),
        commit_file(repo, "exchangeInfo.json", orjson.dumps(undated[1]), t0 + 2 * day),
        commit_file(repo, "exchangeInfo.json", None, t0 + 3 * day),
        commit_file(repo, "exchangeInfo.json", orjson.dumps(dated), t0 + 4 * day),
    ]
    argv = ["import", "--git", str(repo), "--path", "exchangeInfo.json"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "imported 5 of 5 document(s)" in said
    assert "; dated 4 by commit time, 1 by serverTime" in said
    log = observation_log(configured)
    origins = [f"git:{repo.resolve()}@{c}:exchangeInfo.json" for c in commits]
    assert log == [
        (t0, "changed", None, origins[0], "import"),
        (t0 + day, "error", "binance_error", origins[1], "import"),
        (t0 + 2 * day, "changed", None, origins[2], "import"),
        (t0 + 3 * day, "error", "missing_document", origins[3], "import"),
        (built_at, "changed", None, origins[4], "import"),
    ]
    assert main(argv) == 0  # twice: nothing new
    assert observation_log(configured) == log

    client = create_app(Settings(), configured).test_client()
    # Through the error (day 1) and the deletion (day 3), the last good snapshot holds.
    for at, doc, before, after in [
        (t0 + 1.5 * day, undated[0], t0, t0 + 2 * day),
        (t0 + 3.5 * day, undated[1], t0 + 2 * day, built_at),
        (built_at + day, dated, built_at, None),
    ]:
        expected = {s["symbol"]: s for s in doc["symbols"]}
        for name in ("ETHBTC", "DASHBNB", "BTCUPUSDT", "XRPBTC"):
            answer = client.get(f"/v1/symbols/{name}?as_of={ts(at)}")
            if name not in expected:
                assert answer.status_code == 404, (name, at)
                continue
            body = answer.get_json()
            assert_rules_are(body, expected[name], at)
            assert body["evidence"]["observed_before"] == ts(before)
            assert body["evidence"]["observed_after"] == (ts(after) if after else None)
            assert body["evidence"]["imported"] is True
            # A day between snapshots is a gap in a stream polled every 10 s: the
            # archive's real spacing shows.
            assert body["evidence"]["gap"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--git", "{tmp}", "--path", "exchangeInfo.json"], "git log: fatal: not a git repository"),
        (["--git", "{repo}", "--path", "other.json"], "no commit touched other.json"),
        (["--git", "{repo}"], "--git REPO takes --path FILE"),
        (["--git", "{repo}", "--path", "x", "{tmp}"], "--git REPO takes --path FILE"),
        (["--path", "exchangeInfo.json"], "--path names the file in --git REPO's history"),
        ([], "give the PATHs of the archive, a --manifest, or --git REPO --path FILE"),
    ],
)
def test_a_git_archive_asked_for_wrongly_is_refused_in_one_line(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    repo = new_repository(tmp_path / "archive")
    body = (FIXTURES / "drift" / "spot_2022-11-28_2124.json").read_bytes()
    commit_file(repo, "exchangeInfo.json", body, datetime(2024, 1, 1, tzinfo=UTC))
    plain = tmp_path / "plain"
    plain.mkdir()
    argv = [a.format(tmp=plain, repo=repo) for a in args]
    assert main(["import", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert counts(configured) == (0, 0, 0)


def test_a_futures_archive_goes_into_its_markets_stream(
    configured: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    usdm = FIXTURES / "futures_usdm"
    assert main(["import", "--stream", "usdm_exchange_info", str(usdm)]) == 0
    assert "imported 4 of 4 document(s) into usdm_exchange_info" in capsys.readouterr().out
    files = sorted(
        ((instant_of(d["serverTime"]), d) for d in map(load, usdm.glob("*.json"))),
        key=lambda d: d[0],
    )
    client = create_app(Settings(), configured).test_client()
    for at, doc in windows(files):
        for symbol in doc["symbols"][::25]:
            answer = client.get(f"/v1/symbols/{symbol['symbol']}?market=usdm&as_of={ts(at)}")
            assert answer.status_code == 200, (symbol["symbol"], at)
            assert answer.get_json()["raw"] == {k: v for k, v in symbol.items() if k != "filters"}
        spot = client.get(f"/v1/symbols/{doc['symbols'][0]['symbol']}?as_of={ts(at)}")
        assert spot.status_code == 404  # spot's history is untouched
    with configured.connect() as conn:
        sources = conn.execute(text("SELECT DISTINCT stream, source FROM observations")).all()
    assert [tuple(s) for s in sources] == [("usdm_exchange_info", "https://fapi.binance.com:443")]


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_manifest_dates_the_files_without_server_time(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    drift = FIXTURES / "drift"
    names = {}
    for n, fixture in enumerate(["spot_2022-11-28_2124.json", "spot_2022-12-28_2137.json"]):
        doc = {k: v for k, v in load(drift / fixture).items() if k != "serverTime"}
        (tmp_path / "saved").mkdir(exist_ok=True)
        (tmp_path / "saved" / f"{n}.json").write_bytes(orjson.dumps(doc))
        names[f"saved/{n}.json"] = t0 + timedelta(hours=n)
    (tmp_path / "saved" / "blocked.json").write_bytes(
        (FIXTURES / "restricted_location_2022-12-07.json").read_bytes()
    )
    names["saved/blocked.json"] = t0 + timedelta(minutes=30)
    manifest = tmp_path / f"manifest.{kind}"
    if kind == "json":
        manifest.write_bytes(orjson.dumps({p: ts(at) for p, at in names.items()}))
    else:
        manifest.write_text("".join(f"{p},{ts(at)}\n" for p, at in names.items()))
    assert main(["import", "--manifest", str(manifest)]) == 0
    said = capsys.readouterr().out
    assert "imported 3 of 3 document(s)" in said
    assert said.endswith("; dated 3 by manifest\n")
    log = observation_log(configured)
    assert [(o[0], o[1], o[3]) for o in log] == [
        (t0, "changed", str(tmp_path / "saved" / "0.json")),
        (t0 + timedelta(minutes=30), "error", str(tmp_path / "saved" / "blocked.json")),
        (t0 + timedelta(hours=1), "changed", str(tmp_path / "saved" / "1.json")),
    ]
    # The same files by directory and manifest: already on record.
    assert main(["import", str(tmp_path / "saved"), "--manifest", str(manifest)]) == 0
    assert observation_log(configured) == log


def test_files_without_server_time_are_dated_by_the_instant_in_their_names(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drift = FIXTURES / "drift"
    doc = {k: v for k, v in load(drift / "spot_2022-11-28_2124.json").items() if k != "serverTime"}
    later = {
        k: v for k, v in load(drift / "spot_2022-12-28_2137.json").items() if k != "serverTime"
    }
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "exchangeInfo_2024-03-01.json").write_bytes(orjson.dumps(doc))
    (saved / "exchangeInfo_20240301T063015Z.json.gz").write_bytes(gzip.compress(b"not json"))
    (saved / "2024-03-01T12:00:00+02:00.json").write_bytes(orjson.dumps(later))
    (saved / "snapshot_1709290800000.json").write_bytes(orjson.dumps(doc))  # 11:00 UTC
    # A serverTime wins over the name.
    (saved / "2030-01-01.json").write_bytes((FIXTURES / "2022-11-29_2124.json").read_bytes())
    server_time = instant_of(load(FIXTURES / "2022-11-29_2124.json")["serverTime"])

    assert main(["import", str(saved)]) == 0

    said = capsys.readouterr().out
    assert "imported 5 of 5 document(s)" in said
    assert "; dated 4 by file name, 1 by serverTime" in said
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    assert [(o[0], o[1], Path(o[3]).name) for o in observation_log(configured)] == [
        (server_time, "changed", "2030-01-01.json"),
        (t0, "changed", "exchangeInfo_2024-03-01.json"),
        (
            t0 + timedelta(hours=6, minutes=30, seconds=15),
            "error",
            "exchangeInfo_20240301T063015Z.json.gz",
        ),
        (t0 + timedelta(hours=10), "changed", "2024-03-01T12:00:00+02:00.json"),
        (t0 + timedelta(hours=11), "changed", "snapshot_1709290800000.json"),
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("snapshot.json", "has no serverTime and its name no date; give its instant with --at"),
        ("2024-13-01.json", "has no serverTime and its name no date"),
        (
            "from_2024-03-01_to_2024-03-02.json",
            "its name holds 2 instants (2024-03-01T00:00:00+00:00, 2024-03-02T00:00:00+00:00);"
            " give its instant with --manifest",
        ),
    ],
)
def test_a_file_its_name_cannot_date_is_refused_in_one_line(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    (tmp_path / name).write_bytes((FIXTURES / "restricted_location_2022-12-07.json").read_bytes())

    assert main(["import", str(tmp_path / name)]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert counts(configured) == (0, 0, 0)


def test_a_manifest_entry_without_an_instant_is_refused(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("a.json,2024-03-01T00:00:00Z\nb.json,yesterday\n")
    assert main(["import", "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "manifest.csv: entry 2: " in err


def live_polls(engine: Engine, sim: SimServer) -> tuple[dict[str, Any], list[Recorded]]:
    """Three live polls of the sim (its symbols with ADAUSDT on a break, then a change of
    ETHBTC, then nothing new): the document the first one saw, and what each recorded."""
    requests.patch(
        f"{sim.url}/_sim/symbols/ADAUSDT", json={"fields": {"status": "BREAK"}}, timeout=5
    ).raise_for_status()
    served = orjson.loads(requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=5).content)
    job = exchange_info_job(client_for(sim.url), StreamWriter(engine, "exchange_info"), "live")
    polls = [job.run()]
    requests.patch(
        f"{sim.url}/_sim/symbols/ETHBTC", json={"fields": {"status": "HALT"}}, timeout=5
    ).raise_for_status()
    polls += [job.run(), job.run()]
    assert [p.outcome for p in polls] == ["changed", "changed", "unchanged"]
    return served, polls


def live_answers(client: FlaskClient, names: list[str], instants: list[datetime]) -> list[Any]:
    """What the API says about every symbol, the whole exchange and its raw document at
    each of ``instants``, and the change feed after the first of them."""
    answers: list[Any] = []
    for at in instants:
        answers.append(client.get(f"/v1/symbols?as_of={ts(at)}").get_json())
        answers.append(client.get(f"/v1/exchange-info?as_of={ts(at)}").get_json())
        answers += [client.get(f"/v1/symbols/{n}?as_of={ts(at)}").get_json() for n in names]
    after = ts(instants[0])
    answers.append(client.get(f"/v1/changes?from={after}&to={ts(instants[-1])}").get_json())
    return answers


def live_rows(engine: Engine, since: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """Every version row the live polls wrote (they open at or after ``since``)."""
    with engine.connect() as conn:
        return {
            table: [
                tuple(r)
                for r in conn.execute(
                    text(f"SELECT * FROM {table} t WHERE valid_from >= :l ORDER BY t::text"),
                    {"l": since},
                )
            ]
            for table in (*stream("exchange_info").tables, "schema_versions")
        }


def feed_at(client: FlaskClient, at: datetime) -> set[FeedChange]:
    """Every change /v1/changes reports at ``at``, page after page."""
    found: set[FeedChange] = set()
    query = f"/v1/changes?from={ts(at)}&to={ts(at + timedelta(milliseconds=1))}"
    page = client.get(query).get_json()
    while True:
        assert {c["changed_at"] for c in page["changes"]} <= {ts(at)}
        found |= {feed_change(c) for c in page["changes"]}
        if page["next"] is None:
            return found
        page = client.get(f"{query}&next={page['next']}").get_json()


def test_an_archive_before_the_first_live_poll_is_prepended_leaving_live_history_as_it_was(
    configured: Engine,
    sim: SimServer,
    documents: list[tuple[datetime, dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    served, polls = live_polls(configured, sim)
    live = polls[0].observed_at
    client = create_app(Settings(), configured).test_client()
    names = sorted(s["symbol"] for s in served["symbols"])
    # Instants from the first live poll on (a millisecond past a poll: what ts() can say);
    # past the last poll, one in the future, whose evidence does not move with the clock.
    instants = [
        *(p.observed_at + timedelta(milliseconds=1) for p in polls[:-1]),
        polls[-1].observed_at + timedelta(hours=1),
    ]
    answers_before = live_answers(client, names, instants)
    rows_before = live_rows(configured, live)

    assert main(["import", *ARCHIVE_ARGS]) == 0
    said = capsys.readouterr().out
    assert "imported 7 of 7 document(s) into exchange_info" in said
    assert "before the history on record" in said
    assert f"joined to the history on record at {live.isoformat()}" in said
    imported = table_contents(configured)
    assert main(["import", *ARCHIVE_ARGS]) == 0  # twice: nothing new
    assert "imported 0 of 7 document(s)" in capsys.readouterr().out
    assert table_contents(configured) == imported

    # Inside each file's window (the last one's ends at the first live poll), the file's rules.
    for body in answers_are_the_files(client, documents, end=live):
        assert body["evidence"]["imported"] is True
    # Just before it, the last file's rules, observed by it and next by the first live poll:
    # every symbol as the whole exchange lists it, every SPREAD-th asked alone.
    last_at, last_doc = documents[-1]
    last = {s["symbol"]: s for s in last_doc["symbols"]}
    just_before = live - timedelta(milliseconds=1)
    listed = client.get(f"/v1/symbols?as_of={ts(just_before)}").get_json()
    assert sorted(body["symbol"] for body in listed["symbols"]) == sorted(last)
    alone = [
        client.get(f"/v1/symbols/{name}?as_of={ts(just_before)}").get_json()
        for name in sorted(last)[::SPREAD]
    ]
    for body in [*listed["symbols"], *alone]:
        assert_rules_are(body, last[body["symbol"]], just_before)
    for evidence in [listed["evidence"], *(body["evidence"] for body in alone)]:
        assert evidence["observed_before"] == ts(last_at)
        assert evidence["observed_after"] == ts(live)

    # From the first live poll on, every answer and every row is what it was.
    assert live_answers(client, names, instants) == answers_before
    assert live_rows(configured, live) == rows_before
    # At the first live poll, the changes from the last file to what the sim served: its
    # symbols are the file's but for ADAUSDT's status, and the file's others delisted; an
    # entity the same on both sides shows no change.
    seam = feed_changes(last_doc, served)
    assert {c[:3] for c in seam if c[2] != "listed"} == {("symbol", "ADAUSDT", "status")}
    assert feed_at(client, live) == seam
    with configured.connect() as conn:
        view = conn.execute(
            text("SELECT entity, key, field FROM changes WHERE changed_at = :l"), {"l": live}
        ).all()
    assert sorted(tuple(r) for r in view) == sorted(c[:3] for c in seam)  # SQL says the same
    # A symbol's history reads through the seam one entry a page: an opening there that
    # changed nothing is no entry, and no page comes back empty.
    window = f"from=2020-01-01T00:00:00Z&to={ts(instants[-1])}"
    for name in names:
        whole = client.get(f"/v1/symbols/{name}/history?{window}").get_json()
        assert whole["next"] is None
        assert all(v["changes"] for v in whole["versions"])
        paged: list[Any] = []
        page = client.get(f"/v1/symbols/{name}/history?{window}&limit=1").get_json()
        while page["next"] is not None:
            assert len(page["versions"]) == 1
            paged += page["versions"]
            page = client.get(
                f"/v1/symbols/{name}/history?{window}&limit=1&next={page['next']}"
            ).get_json()
        assert paged + page["versions"] == whole["versions"]
    with configured.connect() as conn:
        assert verify_history(conn) == []
    assert main(["verify"]) == 0
    capsys.readouterr()


def test_an_archive_reaching_the_first_live_poll_is_refused_and_nothing_written(
    configured: Engine, sim: SimServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, polls = live_polls(configured, sim)
    live = polls[0].observed_at
    before = table_contents(configured)
    day = FIXTURES / "2022-11-28_2124.json"
    doc = load(day)
    # Just after the first live poll, and after the last one (a later one is in the future).
    after_last = polls[-1].observed_at + timedelta(milliseconds=1)
    for n, at in enumerate([live + timedelta(milliseconds=1), after_last]):
        late = tmp_path / f"late_{n}.json"
        late.write_bytes(orjson.dumps({**doc, "serverTime": epoch_ms(at)}))
        # One document before the live polls and one after: refused whole.
        assert main(["import", str(day), str(late)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"{late} ({at.isoformat()}) is not before" in err
        assert f"polled live since {live.isoformat()}" in err
        assert table_contents(configured) == before


def test_importing_a_prepended_archive_again_changes_nothing(
    configured: Engine, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    live_polls(configured, sim)
    days = [str(FIXTURES / "2022-11-29_2124.json"), str(FIXTURES / "2022-11-28_2124.json")]
    before = table_contents(configured)
    assert main(["import", "--dry-run", *days]) == 0
    said = capsys.readouterr().out
    assert "2 to write before the history on record" in said
    assert table_contents(configured) == before
    assert main(["import", *days]) == 0
    assert "imported 2 of 2 document(s)" in capsys.readouterr().out
    imported = table_contents(configured)
    assert imported != before
    for argv in (["--dry-run", *days], days, days[:1]):
        assert main(["import", *argv]) == 0
        assert "2 already on record" in capsys.readouterr().out or argv == days[:1]
        assert table_contents(configured) == imported


def test_an_archive_before_failed_live_polls_becomes_the_history_polling_continues(
    configured: Engine, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    job = exchange_info_job(
        client_for(sim.url), StreamWriter(configured, "exchange_info"), "replica-a"
    )
    add_fault(sim, kind="geo_block", status=200)
    failed = job.run()
    assert failed.outcome == "error"
    days = [str(FIXTURES / "2022-11-29_2124.json"), str(FIXTURES / "2022-11-28_2124.json")]
    assert main(["import", *days]) == 0
    assert "imported 2 of 2 document(s) into exchange_info" in capsys.readouterr().out
    last_doc = load(FIXTURES / "2022-11-29_2124.json")
    last_at = instant_of(last_doc["serverTime"])
    client = create_app(Settings(), configured).test_client()
    # Until the next success, the last file's rules hold: the failed poll closed nothing.
    after_failure = failed.observed_at + timedelta(milliseconds=1)
    for symbol in last_doc["symbols"][::50]:
        body = client.get(f"/v1/symbols/{symbol['symbol']}?as_of={ts(after_failure)}").get_json()
        assert_rules_are(body, symbol, after_failure)
        assert body["evidence"]["observed_before"] == ts(last_at)

    served = orjson.loads(requests.get(f"{sim.url}/api/v3/exchangeInfo", timeout=5).content)
    polled = job.run()
    assert polled.outcome == "changed"
    assert feed_at(client, polled.observed_at) == feed_changes(last_doc, served)
    with configured.connect() as conn:
        assert verify_history(conn) == []


@pytest.mark.parametrize(
    ("planned", "first", "refused"),
    [
        # The same day imported meanwhile: writing it again would duplicate its history.
        ("2022-11-29_2124.json", "2022-11-29_2124.json", "history changed while the import"),
        # An earlier day imported meanwhile: the planned one would fall inside history.
        ("2022-11-29_2124.json", "2022-11-28_2124.json", "is not before the exchange_info"),
        # A later day (still before the live polls) imported meanwhile: the planned one
        # still goes wholly before every observation, so it is written.
        ("2022-11-28_2124.json", "2022-11-29_2124.json", None),
    ],
)
def test_a_prepend_is_planned_again_under_the_head_lock(
    configured: Engine,
    sim: SimServer,
    capsys: pytest.CaptureFixture[str],
    planned: str,
    first: str,
    refused: str | None,
) -> None:
    """Another import that commits between this one's plan and its write (the command
    plans outside the lock) is seen once the head is held: a plan it made wrong is
    refused with nothing written, one it left right is written as planned."""
    _, polls = live_polls(configured, sim)
    source = source_of(sim.url)
    documents = read_documents([FIXTURES / planned], None, stream="exchange_info")
    with configured.connect() as conn:
        plan = plan_import(conn, "exchange_info", source, documents)
    assert plan.prepend
    assert len(plan.documents) == 1

    assert main(["import", str(FIXTURES / first)]) == 0  # the other import, first
    capsys.readouterr()
    between = table_contents(configured)
    written = write_documents(configured, "exchange_info", parse_exchange_info, source, plan)
    if refused is not None:
        with pytest.raises(ArchiveError, match=refused):
            list(written)
        assert table_contents(configured) == between
    else:
        outcomes = [r.outcome for r in written if isinstance(r, Recorded)]
        assert outcomes == ["changed"]
        client = create_app(Settings(), configured).test_client()
        both = sorted(
            (instant_of(d["serverTime"]), d)
            for d in (load(FIXTURES / planned), load(FIXTURES / first))
        )
        for body in answers_are_the_files(client, both, end=polls[0].observed_at):
            assert body["evidence"]["imported"] is True
    with configured.connect() as conn:
        assert verify_history(conn) == []


def test_an_archive_is_read_again_as_it_is_written_and_a_file_changed_meanwhile_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    """Documents are dated on a first read and read again batch by batch (an archive can
    be larger than memory): one that is no longer the file that was dated is refused,
    and its batch writes nothing."""
    days = ["2022-11-28_2124.json", "2022-11-29_2124.json"]
    for day in days:
        (tmp_path / day).write_bytes((FIXTURES / day).read_bytes())
    documents = read_documents([tmp_path], None, stream="exchange_info")
    source = "https://api.binance.com:443"
    with engine.connect() as conn:
        plan = plan_import(conn, "exchange_info", source, documents)
    assert len(plan.documents) == 2
    before = table_contents(engine)
    changed = tmp_path / days[1]
    changed.write_bytes(changed.read_bytes().replace(b'"TRADING"', b'"BREAK"', 1))

    written = write_documents(engine, "exchange_info", parse_exchange_info, source, plan)
    with pytest.raises(ArchiveError, match=f"{changed}: changed while it was imported"):
        list(written)
    assert table_contents(engine) == before
    changed.unlink()
    with pytest.raises(ArchiveError, match=f"{changed}: cannot read"):
        plan.documents[1].read()


def refused(argv: list[str], engine: Engine, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line `exmeta import ARGV` refuses with (exit 2), having written nothing."""
    before = table_contents(engine)
    assert main(["import", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert table_contents(engine) == before
    return err


def gzipped_day() -> bytes:
    return gzip.compress((FIXTURES / "drift" / "spot_2022-11-28_2124.json").read_bytes())


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda good: good[:10] + b"\xff" * 16 + good[26:], "invalid block type"),
        (lambda good: good[:-8] + b"\0\0\0\0" + good[-4:], "CRC check failed"),
        (lambda good: good[:-12], "ended before the end-of-stream marker"),
        (lambda good: good[:2] + b"\x07" + good[3:], "Unknown compression method"),
    ],
)
def test_a_corrupt_gzip_file_is_refused_naming_it(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    corrupt: Any,
    reason: str,
) -> None:
    path = tmp_path / "2024-03-01.json.gz"
    path.write_bytes(corrupt(gzipped_day()))
    err = refused([str(path)], configured, capsys)
    assert f"{path}: not a valid gzip file: " in err
    assert reason in err


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_manifest_that_is_not_utf8_is_refused_naming_it(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    manifest = tmp_path / f"manifest.{kind}"
    line = "caf\u00e9.json,2024-03-01T00:00:00Z\n"
    manifest.write_bytes(
        line.encode("latin-1") if kind == "csv" else b'{"caf\xe9.json": "2024-03-01T00:00:00Z"}'
    )
    err = refused(["--manifest", str(manifest)], configured, capsys)
    offset = 3 if kind == "csv" else 5
    assert f"{manifest}: not UTF-8 text (byte 0xe9 at offset {offset})" in err


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_manifest_dating_one_file_twice_is_refused_naming_both_entries(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_bytes(
            (FIXTURES / "restricted_location_2022-12-07.json").read_bytes()
        )
    manifest = tmp_path / f"manifest.{kind}"
    if kind == "csv":
        manifest.write_text(
            "a.json,2024-03-01T00:00:00Z\nb.json,2024-03-01T01:00:00Z\n./a.json,1709254800000\n"
        )
    else:
        manifest.write_text(
            '{"a.json": "2024-03-01T00:00:00Z", "b.json": "2024-03-01T01:00:00Z",'
            ' "./a.json": "1709254800000"}'
        )
    err = refused(["--manifest", str(manifest)], configured, capsys)
    assert (
        f"{manifest}: entries 1 and 3 both date {tmp_path / 'a.json'}"
        " (2024-03-01T00:00:00+00:00, 2024-03-01T01:00:00+00:00)"
    ) in err


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_manifest_starting_with_a_byte_order_mark_is_read(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    (tmp_path / "a.json").write_bytes(
        (FIXTURES / "restricted_location_2022-12-07.json").read_bytes()
    )
    manifest = tmp_path / f"manifest.{kind}"
    text_ = (
        "a.json,2024-03-01T00:00:00Z\n" if kind == "csv" else '{"a.json": "2024-03-01T00:00:00Z"}'
    )
    manifest.write_bytes(text_.encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    assert main(["import", "--manifest", str(manifest)]) == 0
    assert "imported 1 of 1 document(s)" in capsys.readouterr().out
    assert [o[0] for o in observation_log(configured)] == [datetime(2024, 3, 1, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("server_time", "why"),
    [
        (b'"1669597544331"', "is not an integer epoch in milliseconds"),
        (b"1669597544331.5", "is not an integer epoch in milliseconds"),
        (b"1.669597544331e12", "is not an integer epoch in milliseconds"),
        (b"NaN", "is not an integer epoch in milliseconds"),  # not JSON, yet Python's json reads it
        (b"true", "is not an integer epoch in milliseconds"),
        (b"null", "is not an integer epoch in milliseconds"),
        (b"-1", "is not an integer epoch in milliseconds"),
        (
            b"1669597544",
            "looks like epoch seconds (2022-11-28T01:05:44+00:00); epoch milliseconds have"
            " 12 or 13 digits",
        ),
        (b"16695975443310", "is not an integer epoch in milliseconds"),
    ],
)
def test_a_server_time_that_is_not_epoch_milliseconds_is_refused_naming_it(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    server_time: bytes,
    why: str,
) -> None:
    body = (FIXTURES / "drift" / "spot_2022-11-28_2124.json").read_bytes()
    assert b'"serverTime":1669597544331' in body
    path = tmp_path / "2024-03-01.json"  # a name that could date it: it must not
    path.write_bytes(body.replace(b"1669597544331", server_time, 1))
    err = refused([str(path)], configured, capsys)
    assert f"{path}: serverTime {server_time.decode()} {why}" in err


@pytest.mark.parametrize(
    ("stream_name", "fixture", "looks_like", "because"),
    [
        (None, "drift/usdm_2024-10-19_347.json", "usdm_exchange_info", "futuresType U_MARGINED"),
        ("usdm_exchange_info", "2022-11-28_2124.json", "exchange_info", "isSpotTradingAllowed"),
        ("exchange_info", "coinm", "coinm_exchange_info", "contractStatus"),
        ("system_status", "2022-11-28_2124.json", "exchange_info", "isSpotTradingAllowed"),
        (
            "margin_pairs",
            "drift/usdm_2024-10-19_347.json",
            "usdm_exchange_info",
            "futuresType U_MARGINED",
        ),
    ],
)
def test_a_document_of_another_markets_exchange_info_is_refused_naming_its_stream(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stream_name: str | None,
    fixture: str,
    looks_like: str,
    because: str,
) -> None:
    path = tmp_path / "exchangeInfo.json"
    if fixture == "coinm":
        coinm = Path(__file__).parents[2] / "binance_sim/data/coinm_exchange_info_from_docs.json"
        path.write_bytes(coinm.read_bytes())
    else:
        path.write_bytes((FIXTURES / fixture).read_bytes())
    stream_args = ["--stream", stream_name] if stream_name else []
    err = refused([*stream_args, str(path)], configured, capsys)
    into = stream_name or "exchange_info"
    assert f"{path}: looks like a {looks_like} document ({because}), not {into}'s:" in err
    assert f"--stream {looks_like}" in err


@pytest.mark.parametrize("dated_by", ["serverTime", "--at", "manifest", "file name"])
def test_a_document_dated_in_the_future_is_refused_naming_it_and_its_instant(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], dated_by: str
) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    doc = {k: v for k, v in load(FIXTURES / "drift" / "spot_2022-11-28_2124.json").items()}
    if dated_by == "serverTime":
        doc["serverTime"] = epoch_ms(future)
    else:
        del doc["serverTime"]
    name = f"{future:%Y%m%dT%H%M%SZ}.json" if dated_by == "file name" else "snapshot.json"
    path = tmp_path / name
    path.write_bytes(orjson.dumps(doc))
    argv = {
        "serverTime": [str(path)],
        "--at": [str(path), "--at", ts(future)],
        "manifest": ["--manifest", str(tmp_path / "manifest.csv")],
        "file name": [str(path)],
    }[dated_by]
    (tmp_path / "manifest.csv").write_text(f"{name},{ts(future)}\n")
    err = refused(argv, configured, capsys)
    assert f"{path} is dated {future.isoformat()} by {dated_by}, after now (" in err


@pytest.mark.parametrize("path", ["spot", "spot/", "."])
def test_a_git_path_that_is_a_directory_is_refused_naming_it(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    repo = new_repository(tmp_path / "archive")
    (repo / "spot").mkdir()
    body = (FIXTURES / "drift" / "spot_2022-11-28_2124.json").read_bytes()
    commit = commit_file(repo, "spot/exchangeInfo.json", body, datetime(2024, 1, 1, tzinfo=UTC))
    err = refused(["--git", str(repo), "--path", path], configured, capsys)
    assert (
        f"{repo}: {path} is a directory in commit {commit}; --path names one file,"
        " such as spot/exchangeInfo.json"
    ) in err


@pytest.mark.parametrize("where", ["given", "in a directory", "in a manifest"])
def test_a_broken_symbolic_link_is_refused_naming_it(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "2022-11-28.json").write_bytes((FIXTURES / "2022-11-28_2124.json").read_bytes())
    link = saved / "2022-11-29.json"
    link.symlink_to(tmp_path / "moved" / "2022-11-29.json")
    (saved / "manifest.csv").write_text("2022-11-29.json,2022-11-29T00:00:00Z\n")
    argv = {
        "given": [str(saved / "2022-11-28.json"), str(link)],
        "in a directory": [str(saved)],
        "in a manifest": ["--manifest", str(saved / "manifest.csv")],
    }[where]
    err = refused(argv, configured, capsys)
    assert f"{link}: a broken symbolic link (to {tmp_path / 'moved' / '2022-11-29.json'})" in err


SPOT_DRIFT = sorted((FIXTURES / "drift").glob("spot_*.json"))


def saved_copies(tmp_path: Path, fixtures: list[Path]) -> Path:
    """A directory of copies of ``fixtures``, an archive a test may change."""
    saved = tmp_path / "saved"
    saved.mkdir()
    for fixture in fixtures:
        (saved / fixture.name).write_bytes(fixture.read_bytes())
    return saved


def on_second_read(
    monkeypatch: pytest.MonkeyPatch, path: Path, then: Callable[[Path], None]
) -> None:
    """``then(path)`` when the import reads ``path`` the second time (once to date it,
    again to write it), its batches one document each."""
    reads: dict[Path, int] = {}
    read_file = poller.archive._read_file

    def read(read_path: Path) -> bytes:
        reads[read_path] = reads.get(read_path, 0) + 1
        if read_path == path and reads[read_path] == 2:
            then(read_path)
        return read_file(read_path)

    monkeypatch.setattr(poller.archive, "_read_file", read)
    monkeypatch.setattr(poller.archive, "IMPORT_BATCH", 1)


@pytest.mark.parametrize("prepended", [False, True], ids=["appended", "prepended"])
def test_an_interrupted_import_says_what_it_wrote_and_exits_130(
    configured: Engine,
    sim: SimServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prepended: bool,
) -> None:
    """Ctrl-C while the fourth of five documents is read to be written: the batches
    committed before it are kept and reported, nothing of the next one is written."""
    if prepended:
        live_polls(configured, sim)
    saved = saved_copies(tmp_path, SPOT_DRIFT)
    read_file = poller.archive._read_file

    def interrupt(path: Path) -> None:
        raise KeyboardInterrupt

    on_second_read(monkeypatch, saved / SPOT_DRIFT[3].name, interrupt)
    before = len(observation_log(configured))

    assert main(["import", str(saved)]) == 130

    out, err = capsys.readouterr()
    assert "Traceback" not in err
    written = 0 if prepended else 2  # a prepended archive is one transaction
    assert out.startswith(f"interrupted: imported {written} of 5 document(s)")
    assert f"the other {5 - written} are not written" in out
    imported = [o for o in observation_log(configured) if o[4] == "import"]
    assert [Path(o[3]).name for o in imported] == [f.name for f in SPOT_DRIFT[:written]]
    assert len(observation_log(configured)) == before + written

    monkeypatch.setattr(poller.archive, "_read_file", read_file)
    assert main(["import", str(saved)]) == 0  # again: the rest
    out = capsys.readouterr().out
    assert f"imported {5 - written} of 5 document(s)" in out
    assert f"({written} already on record)" in out
    with configured.connect() as conn:
        assert verify_history(conn) == []


def test_documents_overtaken_while_an_import_writes_are_reported_stale_and_exit_2(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another import writes a later document between this one's batches (it planned
    without a lock): the writer records this one's remaining documents stale, applying
    nothing, and the summary says so instead of counting them unchanged."""
    saved = tmp_path / "saved"
    saved.mkdir()
    for fixture in SPOT_DRIFT[:3]:
        (saved / fixture.name).write_bytes(fixture.read_bytes())
    later = tmp_path / "later.json"
    later.write_bytes(SPOT_DRIFT[4].read_bytes())
    third = saved / SPOT_DRIFT[2].name
    reads: dict[Path, int] = {}
    read_file = poller.archive._read_file

    def read_racing_another_import(path: Path) -> bytes:
        reads[path] = reads.get(path, 0) + 1
        if path == third and reads[path] == 2:  # the first batch is committed
            assert main(["import", str(later)]) == 0
        return read_file(path)

    monkeypatch.setattr(poller.archive, "_read_file", read_racing_another_import)
    monkeypatch.setattr(poller.archive, "IMPORT_BATCH", 1)

    assert main(["import", str(saved)]) == 2

    out, err = capsys.readouterr()
    summary = out.splitlines()[-1]
    assert "imported 3 of 3 document(s)" in summary
    assert "1 changed, 0 unchanged, 0 error(s), 2 stale (overtaken" in summary
    # After the progress bars (this import's and the other's): one line.
    assert "2 document(s) of the archive were overtaken" in err.splitlines()[-1]
    assert "Traceback" not in err
    outcomes = [(Path(o[3]).name, o[1]) for o in observation_log(configured)]
    assert outcomes == [
        (SPOT_DRIFT[0].name, "changed"),
        (SPOT_DRIFT[1].name, "stale"),
        (SPOT_DRIFT[2].name, "stale"),
        ("later.json", "changed"),
    ]


def test_a_file_whose_path_is_not_utf8_is_refused_naming_it(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An observation's origin is text: a Latin-1 file name would fail its insert
    mid-import (after the batches before it were committed)."""
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.json"))
    path.write_bytes(SPOT_DRIFT[0].read_bytes())
    err = refused([str(path)], configured, capsys)
    assert f"{tmp_path}/caf\\xe9.json: the path is not UTF-8, as an observation's origin" in err


def test_a_file_given_twice_is_one_document(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    day = saved / SPOT_DRIFT[0].name
    day.write_bytes(SPOT_DRIFT[0].read_bytes())
    assert main(["import", str(day), str(saved), str(tmp_path / "saved" / ".." / "saved")]) == 0
    assert "imported 1 of 1 document(s)" in capsys.readouterr().out


def test_two_documents_at_one_instant_are_refused_naming_both(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Which of the two held at that instant is for their author to say: the writer
    would record the second as already on record, and the summary said so."""
    doc = load(SPOT_DRIFT[0])
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_bytes(orjson.dumps(doc))
    second.write_bytes(orjson.dumps({**doc, "symbols": doc["symbols"][1:]}))
    at = instant_of(doc["serverTime"]).isoformat()
    err = refused([str(second), str(first)], configured, capsys)
    assert f"{first} and {second} are both dated {at} (by serverTime, by serverTime)" in err


def test_two_copies_of_one_document_are_one_document(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same response saved twice (compact and pretty-printed, as the archive the
    fixtures come from did, or gzipped beside the plain file) is written once."""
    doc = load(SPOT_DRIFT[0])
    compact, pretty = tmp_path / "exchangeInfoCompact.json", tmp_path / "exchangeInfo.json"
    compact.write_bytes(orjson.dumps(doc))
    pretty.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    (tmp_path / "exchangeInfo.json.gz").write_bytes(gzip.compress(compact.read_bytes()))
    assert main(["import", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("imported 1 of 1 document(s)"), said
    assert counts(configured)[0] == 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"saved/": None, "saved/notes.txt": b"x"}, "saved: holds no *.json or *.json.gz file"),
        ({"manifest.json": b"{}"}, "manifest.json: lists no file"),
        ({"manifest.csv": b"\n"}, "manifest.csv: lists no file"),
    ],
)
def test_an_archive_of_no_document_is_refused_naming_where_none_was_found(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layout: dict[str, bytes | None],
    message: str,
) -> None:
    for name, content in layout.items():
        if content is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(content)
    given = next(iter(layout))
    argv = ["--manifest", str(tmp_path / given)] if "manifest" in given else [str(tmp_path / given)]
    err = refused(argv, configured, capsys)
    assert f"{tmp_path / given.rstrip('/')}" in err
    assert message in err


def test_a_file_changed_while_the_import_writes_is_refused_saying_what_was_kept(
    configured: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batches committed before the changed file stay (importing again skips them):
    the refusal says so, rather than reading as if nothing was written."""
    saved = saved_copies(tmp_path, SPOT_DRIFT[:3])
    third = saved / SPOT_DRIFT[2].name

    def edit(path: Path) -> None:
        path.write_bytes(path.read_bytes().replace(b'"TRADING"', b'"BREAK"', 1))

    on_second_read(monkeypatch, third, edit)

    assert main(["import", str(saved)]) == 2

    err = capsys.readouterr().err.splitlines()[-1]
    assert f"refusing to import: {third}: changed while it was imported" in err
    assert "1 of 3 document(s) written before it are kept" in err
    assert [Path(o[3]).name for o in observation_log(configured)] == [SPOT_DRIFT[0].name]


def test_a_document_before_an_imported_error_observation_is_refused(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history ends at its newest observation of any kind, not at its newest applied:
    a document between the two would be written before an observation already on record."""
    day = FIXTURES / "2022-11-28_2124.json"
    at = instant_of(load(day)["serverTime"])
    assert main(["import", str(day)]) == 0
    geo_block = FIXTURES / "restricted_location_2022-12-07.json"
    assert main(["import", str(geo_block), "--at", ts(at + timedelta(hours=2))]) == 0
    capsys.readouterr()
    between = tmp_path / "between.json"
    between.write_bytes(
        orjson.dumps({**load(day), "serverTime": load(day)["serverTime"] + 3_600_000})
    )
    err = refused([str(between)], configured, capsys)
    assert f"{between} ({(at + timedelta(hours=1)).isoformat()}) falls within" in err
    assert f"({at.isoformat()} to {(at + timedelta(hours=2)).isoformat()})" in err


def test_reading_and_writing_each_show_a_progress_bar(
    configured: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal (FORCE_COLOR stands for one), the archive's reading has a bar of its
    own before the writing's: a year of hourly files takes minutes to read and date."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["import", *ARCHIVE_ARGS]) == 0
    shown = capsys.readouterr().err
    reading, importing = shown.rfind("reading"), shown.rfind("importing")
    assert 0 <= reading < shown.find("importing")
    assert "100%" in shown[reading : shown.find("importing")]
    assert "100%" in shown[importing:]


def test_a_document_unlike_the_one_on_record_at_its_instant_is_refused(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Imported again, a document is found on record (however spaced or compressed this
    time); one that differs from what is on record at its instant is not skipped as if it
    were there: the history is never rewritten, and the user is told."""
    doc = load(SPOT_DRIFT[0])
    original = tmp_path / "original.json"
    original.write_bytes(orjson.dumps(doc))
    assert main(["import", str(original)]) == 0
    (tmp_path / "again").mkdir()
    copy = tmp_path / "again" / "copy.json.gz"
    copy.write_bytes(gzip.compress(orjson.dumps(doc, option=orjson.OPT_INDENT_2)))
    capsys.readouterr()
    assert main(["import", str(copy)]) == 0
    assert "(1 already on record)" in capsys.readouterr().out
    corrected = tmp_path / "corrected.json"
    corrected.write_bytes(orjson.dumps({**doc, "symbols": doc["symbols"][1:]}))
    err = refused([str(corrected)], configured, capsys)
    at = instant_of(doc["serverTime"]).isoformat()
    assert f"{corrected} ({at}) differs from the exchange_info document on record" in err


def test_a_wallet_capture_imported_again_is_found_on_record_though_its_balances_are_not_kept(
    configured: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wallet's stream keeps bodies without the balances (core.wallet): what is on
    record is the capture redacted, and the capture imported again is found there."""
    argv = [
        "import",
        "--stream",
        "wallet_networks",
        str(CAPTURE_2021),
        "--at",
        "2021-05-15T00:00:00Z",
    ]
    assert main(argv) == 0
    assert "1 changed" in capsys.readouterr().out
    assert main(argv) == 0
    assert "(1 already on record)" in capsys.readouterr().out


def test_commits_within_one_second_are_the_file_as_the_last_of_them_left_it(
    configured: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bot that commits twice within a second (a fix-up of its own snapshot): commit
    times are whole seconds, so the first held at no instant the history can name."""
    repo = new_repository(tmp_path / "archive")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    doc = {k: v for k, v in load(SPOT_DRIFT[0]).items() if k != "serverTime"}
    commit_file(repo, "exchangeInfo.json", orjson.dumps(doc), t0)
    fixed = {**doc, "symbols": doc["symbols"][1:]}
    last = commit_file(repo, "exchangeInfo.json", orjson.dumps(fixed), t0)
    assert main(["import", "--git", str(repo), "--path", "exchangeInfo.json"]) == 0
    assert "imported 1 of 1 document(s)" in capsys.readouterr().out
    origin = f"git:{repo.resolve()}@{last}:exchangeInfo.json"
    assert observation_log(configured) == [(t0, "changed", None, origin, "import")]
    assert open_symbols(configured) == len(fixed["symbols"])
