"""README's as-of join recipes for the export (pandas, polars, DuckDB) and its per-pair
precision shape, run as written on two real days of spot, give for random trades the rules
the API answers at each trade's instant."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from sqlalchemy import Engine

from api import create_app
from core.config import Settings
from exmeta.cli import main
from tests.builders import at, record_exchange_info
from tests.conftest import FIXTURES
from tests.exports import (
    api_rules,
    by_trade,
    decimals,
    random_pairs,
    readme_recipes,
    run_recipe,
    write_trades,
)

DAYS = [
    ("2022-11-28_2124.json", at("2024-03-01T00:00:00")),
    ("2022-11-29_2124.json", at("2024-03-02T00:00:00")),
]
PAIRS = 1000


@pytest.fixture
def exported(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two real days recorded and exported to ``tmp_path/rules``, random trades written to
    ``tmp_path/trades.parquet``, and what the API answers for each trade."""
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    docs = [orjson.loads((FIXTURES / name).read_bytes()) for name, _ in DAYS]
    for doc, (_, when) in zip(docs, DAYS, strict=True):
        record_exchange_info(engine, doc, when)
    assert main(["export", "--out", str(tmp_path / "rules")]) == 0
    symbols = sorted({s["symbol"] for doc in docs for s in doc["symbols"]} | {"NOSUCHUSDT"})
    pairs = random_pairs(
        symbols, DAYS[0][1] - timedelta(hours=1), DAYS[-1][1] + timedelta(hours=12), PAIRS
    )
    write_trades(tmp_path / "trades.parquet", pairs)
    client = create_app(Settings(), engine).test_client()
    expected = [api_rules(client, s, t, "spot") for s, t in pairs]
    assert sum(e is not None for e in expected) > PAIRS // 2
    return {"dir": tmp_path, "pairs": pairs, "expected": expected}


def test_readme_has_the_recipes() -> None:
    assert set(readme_recipes()) == {"pandas", "polars", "duckdb", "precision"}


def test_pandas_recipe_joins_as_the_api_answers(exported: dict[str, Any]) -> None:
    joined = run_recipe(readme_recipes()["pandas"], exported["dir"])["joined"]
    records = joined.astype(object).where(joined.notna(), None).to_dict("records")
    assert by_trade(records, "spot", PAIRS) == exported["expected"]


def test_polars_recipe_joins_as_the_api_answers(exported: dict[str, Any]) -> None:
    joined = run_recipe(readme_recipes()["polars"], exported["dir"])["joined"]
    assert by_trade(joined.to_dicts(), "spot", PAIRS) == exported["expected"]


def test_duckdb_recipe_joins_as_the_api_answers(exported: dict[str, Any]) -> None:
    joined = run_recipe(readme_recipes()["duckdb"], exported["dir"])["joined"]
    assert by_trade(joined.to_pylist(), "spot", PAIRS) == exported["expected"]


def test_precision_shape_gives_each_trade_the_decimals_of_its_rules(
    exported: dict[str, Any],
) -> None:
    run_recipe(readme_recipes()["precision"], exported["dir"])
    precision = pd.read_parquet(exported["dir"] / "precision.parquet")
    trades = pd.read_parquet(exported["dir"] / "trades.parquet")
    joined = pd.merge_asof(
        trades.sort_values("executed_at"),
        precision.sort_values("valid_from"),
        left_on="executed_at",
        right_on="valid_from",
        by="symbol",
    ).set_index("trade_id")
    checked = 0
    for i, rules in enumerate(exported["expected"]):
        if rules is None or rules["tick_size"] is None:
            continue
        row = joined.loc[i]
        assert row["price_precision"] == decimals(rules["tick_size"])
        assert row["amount_precision"] == decimals(rules["step_size"])
        assert row["min_notional"] == rules["min_notional"]
        checked += 1
    assert checked > PAIRS // 2
