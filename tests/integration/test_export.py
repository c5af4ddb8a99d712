"""`exmeta export`: the rule history of a market as Parquet and CSV files whose as-of join
answers what the API answers, for random (symbol, instant) pairs; bad input is one line
and exit 2."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from tests.api_client import ts
from tests.builders import exchange_info, record_exchange_info, symbol
from tests.cli_output import fails_in_one_line
from tests.exports import api_rules, joined_rules, random_pairs, read_rules
from tests.futures_replay import USDM_AT, record_usdm_replay
from tests.scripts import T0, T1, T2, T3, T5, record_script

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


def test_window_and_symbols_keep_the_versions_in_force_then(
    database_env: Engine, tmp_path: Path
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
        "btcusdt,ETHUSDT",
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
    ("args", "says"),
    [
        (["--from", "yesterday"], "--from: "),
        (
            ["--from", "2024-05-01T00:00:10Z", "--to", "2024-05-01T00:00:00Z"],
            "--from must be before --to",
        ),
        (["--symbols", "BTCUSDT,,ETH"], "--symbols: a comma-separated list"),
        (["--symbols", "BTCUSDT,nosuch"], "--symbols: never listed on spot: NOSUCH"),
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


def test_filters_added_and_removed_start_and_end_what_they_rule(
    database_env: Engine, tmp_path: Path
) -> None:
    """MIN_NOTIONAL replaced by NOTIONAL at T1, MARKET_LOT_SIZE gone at T2: each row has
    the filters in force over its whole range, as the API answers inside it."""
    legacy = symbol("BTCUSDT")
    legacy["filters"] = [f for f in legacy["filters"] if f["filterType"] != "NOTIONAL"] + [
        {
            "filterType": "MIN_NOTIONAL",
            "minNotional": "10.00000000",
            "applyToMarket": True,
            "avgPriceMins": 5,
        }
    ]
    without_market_lot = symbol("BTCUSDT")
    without_market_lot["filters"] = [
        f for f in without_market_lot["filters"] if f["filterType"] != "MARKET_LOT_SIZE"
    ]
    steps = [(T0, legacy), (T1, symbol("BTCUSDT")), (T2, without_market_lot)]
    for when, sym in steps:
        record_exchange_info(database_env, exchange_info(sym), when)
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
