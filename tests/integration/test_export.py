"""`exmeta export`: the rule history of a market as Parquet and CSV files whose as-of join
answers what the API answers, for random (symbol, instant) pairs; bad input is one line
and exit 2."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from api import create_app
from core import export
from core.changes import window_changes
from core.clock import utc_now
from core.config import Settings
from core.history import layout
from core.streams import feed_streams
from exmeta import export as exporting
from exmeta.cli import main
from tests.api_client import ts
from tests.builders import record_exchange_info
from tests.cli_output import fails_in_one_line
from tests.conftest import DatabaseServer
from tests.exports import (
    api_rules,
    csv_text,
    feed_rows,
    joined_rules,
    random_pairs,
    read_rules,
    record_filter_types,
    record_odd_filters,
    record_odd_texts,
    reference_rules,
)
from tests.futures_replay import USDM_AT, record_usdm_replay
from tests.scripts import SCRIPT, T0, T1, T2, T3, T4, T5, record_script

PAIRS = 1000


@pytest.fixture
def database_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_usdm_export_joins_as_the_api_answers(database_env: Engine, tmp_path: Path) -> None:
    docs = record_usdm_replay(database_env)
    assert main(["export", "--market", "usdm", "--out", str(tmp_path)]) == 0
    rules = read_rules(tmp_path, "usdm")
    symbols = sorted({s["symbol"] for doc in docs for s in doc["symbols"]} | {"NOSUCHUSDT"})
    pairs = random_pairs(
        symbols, USDM_AT[0] - timedelta(days=30), USDM_AT[-1] + timedelta(days=30), PAIRS
    )
    client = create_app(Settings(), database_env).test_client()
    expected = [api_rules(client, s, t, "usdm") for s, t in pairs]
    assert sum(e is not None for e in expected) > PAIRS // 4  # the pairs hit listed contracts
    assert joined_rules(rules, pairs, "usdm") == expected


def test_spot_export_joins_as_the_api_answers(database_env: Engine, tmp_path: Path) -> None:
    record_script(database_env)
    assert main(["export", "--out", str(tmp_path)]) == 0
    rules = read_rules(tmp_path, "spot")
    pairs = random_pairs(
        ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"],
        T0 - timedelta(seconds=5),
        T5 + timedelta(seconds=20),
        PAIRS,
    )
    client = create_app(Settings(), database_env).test_client()
    expected = [api_rules(client, s, t, "spot") for s, t in pairs]
    assert joined_rules(rules, pairs, "spot") == expected


# Symbols as a shell user may list them: commas, spaces, or both.
@pytest.mark.parametrize("symbols", ["btcusdt,ETHUSDT", "btcusdt ETHUSDT", " btcusdt, ETHUSDT "])
def test_window_and_symbols_keep_the_versions_in_force_then(
    database_env: Engine, tmp_path: Path, symbols: str
) -> None:
    record_script(database_env)
    args = [
        "export",
        "--out",
        str(tmp_path),
        "--from",
        ts(T1 + timedelta(seconds=1)),
        "--to",
        ts(T3),
        "--symbols",
        symbols,
    ]
    assert main(args) == 0
    rules = pq.read_table(tmp_path / "spot_symbols.parquet").to_pylist()
    # BTC's version from T1 (begun before --from, whole range kept), ETH's before and after its flip.
    assert [(r["symbol"], r["status"], r["valid_from"], r["valid_to"]) for r in rules] == [
        ("BTCUSDT", "TRADING", T1, T5),
        ("ETHUSDT", "TRADING", T0, T0 + timedelta(seconds=20)),
        ("ETHUSDT", "BREAK", T0 + timedelta(seconds=20), T0 + timedelta(seconds=40)),
    ]
    feed = pq.read_table(tmp_path / "spot_changes.parquet").to_pylist()
    assert [(c["changed_at"], c["key"], c["field"]) for c in feed] == [
        (T0 + timedelta(seconds=20), "ETHUSDT", "status")
    ]
    filters = pq.read_table(tmp_path / "spot_filters.parquet").to_pylist()
    assert {r["symbol"] for r in filters} == {"BTCUSDT", "ETHUSDT"}


def test_csv_holds_the_parquet_rows(database_env: Engine, tmp_path: Path) -> None:
    record_script(database_env)
    assert main(["export", "--out", str(tmp_path / "p")]) == 0
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "c")]) == 0
    for name in ("spot_symbols", "spot_filters", "spot_changes"):
        parquet = pq.read_table(tmp_path / "p" / f"{name}.parquet")
        with (tmp_path / "c" / f"{name}.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == parquet.num_rows > 0
        assert list(rows[0]) == parquet.column_names
    with (tmp_path / "c" / "spot_symbols.csv").open(newline="") as file:
        btc = [r for r in csv.DictReader(file) if r["symbol"] == "BTCUSDT"]
    assert [r["tick_size"] for r in btc] == ["0.01000000", "0.10000000", "0.10000000"]
    assert btc[-1]["valid_to"] == ""


@pytest.mark.parametrize(
    ("market", "record", "start"),
    [
        ("spot", record_script, None),  # listings, a delisting, lists, NULLs
        ("spot", record_script, T5 + timedelta(seconds=10)),  # rules in force, an empty feed
        ("spot", record_odd_filters, None),  # JSON that PostgreSQL spells its own way
        ("spot", record_odd_texts, None),  # quotes, commas, line breaks in texts and lists
        ("usdm", record_usdm_replay, None),  # contracts' own fields
    ],
)
def test_csv_is_one_write_csv_of_the_tables_byte_for_byte(
    database_env: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    market: str,
    record: Callable[[Engine], object],
    start: datetime | None,
) -> None:
    """The CSV files, spelled and encoded in pieces on several threads, are byte for byte
    one ``pyarrow.csv.write_csv`` of the whole spelled tables (what the export wrote before
    it wrote pieces): pieces of 2 rows, so that every file has many and their seams fall
    between any two rows (lists, instants, NULLs, the header on the first alone)."""
    record(database_env)
    monkeypatch.setattr(exporting, "CSV_ROWS", 2)
    since = [] if start is None else ["--from", ts(start)]
    out = tmp_path / "out"
    assert main(["export", "--market", market, "--format", "csv", "--out", str(out), *since]) == 0
    window = export.Window(start, None, None)
    with database_env.connect() as conn:
        rules, filters = export.history_tables(conn, market, window)
        feed = export.change_table(conn, market, start or exporting.EARLIEST, utc_now(), None)
    written = {
        f"{market}_symbols": (export.rules_columns(market), rules),
        f"{market}_filters": (export.filter_columns(market), filters),
        f"{market}_changes": (export.CHANGE_COLUMNS, feed),
    }
    assert rules.num_rows >= 2
    assert filters.num_rows > 2
    assert (feed.num_rows == 0) == (start is not None)
    for name, (columns, table) in written.items():
        spelled = [exporting._csv_column(table[n], kind) for n, kind in columns]
        reference = tmp_path / f"{name}.csv"
        pacsv.write_csv(pa.table(spelled, names=[n for n, _ in columns]), reference)
        assert (out / f"{name}.csv").read_bytes() == reference.read_bytes(), name


@pytest.mark.parametrize(
    ("market", "record"), [("spot", record_script), ("usdm", record_usdm_replay)]
)
@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_market_with_no_rows_gives_empty_files_of_the_usual_schema(
    database_env: Engine,
    tmp_path: Path,
    market: str,
    record: Callable[[Engine], object],
    file_format: str,
) -> None:
    """A market never polled (or an empty database) exports three files without rows, of
    the very columns and types a populated export has: a backtest's loader reads them."""
    args = ["export", "--market", market, "--format", file_format]
    assert main([*args, "--out", str(tmp_path / "empty")]) == 0
    record(database_env)
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    for what in ("symbols", "filters", "changes"):
        name = f"{market}_{what}.{file_format}"
        empty, full = tmp_path / "empty" / name, tmp_path / "full" / name
        if file_format == "parquet":
            assert pq.read_table(empty).num_rows == 0
            assert pq.read_schema(empty) == pq.read_schema(full)
        else:
            header = full.read_text().splitlines()[0]
            assert empty.read_text() == header + "\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "yesterday"], "--from: "),
        (
            ["--from", "2024-05-01T00:00:10Z", "--to", "2024-05-01T00:00:00Z"],
            "--from must be before --to",
        ),
        (["--symbols", "BTCUSDT,,ETH"], "--symbols: a comma-separated list"),
        # --to defaults to now: a --from in the future is after it.
        (["--from", "2999-01-01T00:00:00Z"], "--from 2999-01-01T00:00:00.000Z is after now"),
        (
            ["--symbols", "BTCUSDT,nosuch", "--to", ts(T3)],
            "--symbols: never listed on spot (in all its history): NOSUCH\n",
        ),
        (["--symbols", "nosuch"], "--symbols: never listed on spot (in all its history): NOSUCH\n"),
        (
            ["--symbols", "bnbusdt", "--from", ts(T0), "--to", ts(T3)],
            "--symbols: listed on spot, but not between --from 2024-05-01T00:00:00.000Z"
            " and --to 2024-05-01T00:00:30.000Z: BNBUSDT\n",
        ),
        (
            ["--symbols", "ETHUSDT,BTCUSDT", "--from", ts(T4)],
            "--symbols: listed on spot, but not from --from 2024-05-01T00:00:40.000Z on: ETHUSDT\n",
        ),
        (
            ["--symbols", "BNBUSDT,NOSUCH", "--to", ts(T3)],
            "--symbols: never listed on spot (in all its history): NOSUCH; listed on spot,"
            " but not before --to 2024-05-01T00:00:30.000Z: BNBUSDT\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    database_env: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    record_script(database_env)
    fails_in_one_line(capsys, ["export", "--out", str(tmp_path), *args], 2, says)
    assert not list(tmp_path.glob("*.parquet"))


def test_a_failed_write_leaves_no_file(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The feed's file cannot be written (a directory holds its place): the rules and
    filters files, already written aside, do not appear either, and the reason is one line."""
    record_script(database_env)
    (tmp_path / ".spot_changes.parquet.partial").mkdir()
    fails_in_one_line(capsys, ["export", "--out", str(tmp_path)], 2, f"--out {tmp_path}: ")
    assert [p.name for p in tmp_path.iterdir()] == [".spot_changes.parquet.partial"]


def test_a_file_whose_place_is_taken_while_the_export_runs_is_one_line(
    database_env: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process makes a directory where the feed's file goes once the export has
    checked its places: the last step, putting the files in place, says which did and
    leaves no file written aside."""
    record_script(database_env)
    write = exporting._write_parquet

    def and_then_taken(path: Path, exported: exporting.Exported) -> None:
        write(path, exported)
        if exported.what == "changes":
            (tmp_path / "spot_changes.parquet" / "not-the-export").mkdir(parents=True)

    monkeypatch.setattr(exporting, "_write_parquet", and_then_taken)
    fails_in_one_line(
        capsys,
        ["export", "--out", str(tmp_path)],
        2,
        f"--out {tmp_path}: spot_changes.parquet could not take its place (Is a directory);"
        " spot_symbols.parquet, spot_filters.parquet did, the rest were removed\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "spot_changes.parquet",
        "spot_filters.parquet",
        "spot_symbols.parquet",
    ]


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_directory_where_a_file_goes_is_refused_before_writing(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], file_format: str
) -> None:
    """A directory holds the place of the feed's file (the last written): refused in one
    line naming it, before anything is written, and left as it was."""
    record_script(database_env)
    in_the_way = tmp_path / f"spot_changes.{file_format}"
    (in_the_way / "kept").mkdir(parents=True)
    args = ["export", "--format", file_format, "--out", str(tmp_path)]
    fails_in_one_line(capsys, args, 2, f"--out {tmp_path}: {in_the_way} is a directory")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path(in_the_way.name),
        Path(in_the_way.name) / "kept",
    ]


def test_a_failed_export_removes_the_directories_it_made_and_no_other(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out kept/new/sub, of which kept/ was there: a failed export (here, a refused
    symbol) leaves kept/ and what it held, and neither new/ nor sub/."""
    record_script(database_env)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("mine")
    out = tmp_path / "kept" / "new" / "sub"
    args = ["export", "--out", str(out), "--symbols", "NOSUCH"]
    fails_in_one_line(capsys, args, 2, "--symbols: never listed on spot")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("kept"),
        Path("kept") / "mine.txt",
    ]


def test_an_unmigrated_database_is_one_line_and_exit_2(
    pg_server: DatabaseServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXMETA_DATABASE__URL", pg_server.create_database("exmeta_empty"))
    fails_in_one_line(
        capsys, ["export", "--out", str(tmp_path)], 2, "cannot read the database: relation"
    )
    assert not list(tmp_path.iterdir())


def test_out_that_is_a_file_is_refused(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("")
    fails_in_one_line(
        capsys,
        ["export", "--out", str(tmp_path / "f")],
        2,
        f"--out {tmp_path / 'f'}: not a directory",
    )


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_out_is_refused_not_the_working_directory(
    database_env: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    out: str,
) -> None:
    """``--out "$DIR"`` with DIR unset: refused in one line, not an export into the working
    directory (which ``Path("")`` is)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["export", "--out", out])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("exmeta: error: argument --out: empty")
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("under", ["", "rules"])
def test_out_through_a_symbolic_link_to_nothing_is_refused_naming_the_link(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    """``--out`` that is, or lies under, a link to a directory since removed: refused in
    one line naming the link and its target (mkdir says only "File exists"), nothing
    made, the link left as it was."""
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "gone")
    out = link / under if under else link
    fails_in_one_line(
        capsys,
        ["export", "--out", str(out)],
        2,
        f"--out {out}: {link} is a symbolic link to {tmp_path / 'gone'}, which does not exist",
    )
    assert list(tmp_path.iterdir()) == [link]
    assert link.is_symlink()


def test_out_that_cannot_be_a_path_is_refused(
    database_env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name longer than the file system takes: refused in one line, nothing made."""
    out = tmp_path / ("x" * 300) / "rules"
    fails_in_one_line(capsys, ["export", "--out", str(out)], 2, f"--out {out}: File name too long")
    assert not list(tmp_path.iterdir())


def test_filters_added_and_removed_start_and_end_what_they_rule(
    database_env: Engine, tmp_path: Path
) -> None:
    """MIN_NOTIONAL replaced by NOTIONAL at T1, MARKET_LOT_SIZE gone at T2: each row has
    the filters in force over its whole range, as the API answers inside it."""
    record_filter_types(database_env)
    assert main(["export", "--out", str(tmp_path)]) == 0
    rules = pq.read_table(tmp_path / "spot_symbols.parquet").to_pylist()
    assert [
        (r["valid_from"], r["valid_to"], r["min_notional"], r["max_notional"], r["market_max_qty"])
        for r in rules
    ] == [
        (T0, T1, Decimal("10"), None, Decimal("1000")),
        (T1, T2, Decimal("5"), Decimal("9000000"), Decimal("1000")),
        (T2, None, Decimal("5"), Decimal("9000000"), None),
    ]
    client = create_app(Settings(), database_env).test_client()
    instants = [T0, T1 - timedelta(milliseconds=1), T1, T2, T2 + timedelta(seconds=5)]
    pairs = [("BTCUSDT", t) for t in instants]
    assert joined_rules(read_rules(tmp_path, "spot"), pairs, "spot") == [
        api_rules(client, s, t, "spot") for s, t in pairs
    ]


@pytest.mark.parametrize(
    ("market", "record"),
    [
        ("spot", record_script),  # status flips, a listing, a delisting
        ("spot", record_filter_types),  # filter types added and removed
        ("usdm", record_usdm_replay),  # contracts' own fields, delivery dates
    ],
)
def test_every_row_is_the_versions_in_force_over_it(
    database_env: Engine, tmp_path: Path, market: str, record: Callable[[Engine], object]
) -> None:
    """Each row of both formats equals a brute-force reference: the versions in force at
    each instant at which anything opens or closes, looked up one by one in SQL."""
    record(database_env)
    expected = reference_rules(database_env, market)
    assert len(expected) > 2
    args = ["export", "--market", market]
    assert main([*args, "--out", str(tmp_path / "p")]) == 0
    assert main([*args, "--format", "csv", "--out", str(tmp_path / "c")]) == 0
    json_columns = [n for n, kind in export.rules_columns(market) if kind == export.JSON]
    parquet = pq.read_table(tmp_path / "p" / f"{market}_symbols.parquet").to_pylist()
    for row in parquet:
        row.update({n: orjson.loads(row[n]) for n in json_columns if row[n] is not None})
    assert parquet == expected
    with (tmp_path / "c" / f"{market}_symbols.csv").open(newline="") as file:
        written = list(csv.DictReader(file))
    for row in written:
        row.update({n: orjson.dumps(orjson.loads(row[n])).decode() for n in json_columns if row[n]})
    assert written == [{n: csv_text(v) for n, v in row.items()} for row in expected]


def test_a_window_keeps_the_reference_rows_in_force_in_it(
    database_env: Engine, tmp_path: Path
) -> None:
    """Rows and filter versions still in force (no valid_to) are kept by a window too."""
    record_script(database_env)
    start, end = T1 + timedelta(seconds=1), T4 + timedelta(seconds=1)
    args = ["export", "--out", str(tmp_path), "--from", ts(start), "--to", ts(end)]
    assert main(args) == 0
    assert pq.read_table(tmp_path / "spot_symbols.parquet").to_pylist() == [
        row
        for row in reference_rules(database_env, "spot")
        if row["valid_from"] < end and (row["valid_to"] is None or row["valid_to"] > start)
    ]
    filters = pq.read_table(tmp_path / "spot_filters.parquet").to_pylist()
    with database_env.connect() as conn:
        in_force = conn.execute(
            text(
                "SELECT symbol, filter_type, valid_from, valid_to FROM symbol_filter_versions"
                " WHERE valid_from < :end AND (valid_to IS NULL OR valid_to > :start)"
                " ORDER BY symbol, filter_type, valid_from"
            ),
            {"start": start, "end": end},
        ).all()
    assert any(valid_to is None for *_, valid_to in in_force)
    assert [(f["symbol"], f["filter_type"], f["valid_from"], f["valid_to"]) for f in filters] == [
        tuple(r) for r in in_force
    ]


@pytest.mark.parametrize(
    ("market", "record"),
    [
        ("spot", record_script),
        ("spot", record_filter_types),
        ("spot", record_odd_filters),
        ("usdm", record_usdm_replay),
    ],
)
@pytest.mark.parametrize("windowed", [False, True])
def test_the_feed_is_core_changes_feed(
    database_env: Engine, market: str, record: Callable[[Engine], object], windowed: bool
) -> None:
    """The feed, its filters' field changes diffed in SQL, equals core.changes' own
    (every table diffed in Python: what paging GET /v1/changes to the end gives)."""
    record(database_env)
    with database_env.connect() as conn:
        first, last = conn.execute(
            text("SELECT min(observed_at), max(observed_at) FROM observations")
        ).one()
        start, end = first, last + timedelta(seconds=1)
        symbols: tuple[str, ...] | None = None
        if windowed:
            # After the first listings, up to the last poll; the most changed symbols.
            start, end = first + timedelta(milliseconds=1), last
            filters = layout(market).filters
            symbols = tuple(
                conn.execute(
                    text(
                        f"SELECT symbol FROM {filters} GROUP BY symbol"
                        " ORDER BY count(*) DESC, symbol LIMIT 2"
                    )
                ).scalars()
            )
        streams = feed_streams(market)
        expected = feed_rows(window_changes(conn, start, end, streams=streams, symbols=symbols))
        assert any(r["field"].startswith("filters.") for r in expected)
        assert export.change_table(conn, market, start, end, symbols).to_pylist() == expected


def test_reads_see_the_callers_snapshot(engine: Engine) -> None:
    """The Arrow reads go over connections of their own (and the feed is read beside the
    rules), yet they read the state the caller's transaction sees: an export's files are
    of one state of the history however the poller writes meanwhile."""
    for when, document in SCRIPT[:3]:  # up to the tick size change at T1
        record_exchange_info(engine, document, when)
    window = export.Window(None, None, None)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        listed = conn.execute(text("SELECT count(*) FROM symbol_versions")).scalar_one()
        for when, document in SCRIPT[3:]:  # ETH's break, BNB's listing, ETH's delisting...
            record_exchange_info(engine, document, when)
        rules, filters = export.history_tables(conn, "spot", window)
        feed = export.change_table(conn, "spot", T0, T5 + timedelta(seconds=1), None)
    with engine.connect() as later:
        assert later.execute(text("SELECT count(*) FROM symbol_versions")).scalar_one() > listed
    assert set(rules["symbol"].to_pylist()) == set(filters["symbol"].to_pylist())
    assert set(rules["symbol"].to_pylist()) == {"BTCUSDT", "ETHUSDT"}
    assert all(r["valid_to"] is None for r in rules.to_pylist() if r["valid_from"] == T1)
    assert {c["changed_at"] for c in feed.to_pylist()} == {T0, T1}
