"""Checking `exmeta export`'s files against the API: random (symbol, instant) pairs, what
GET /v1/symbols/{symbol}?as_of= answers for each (the expected values are read from the
answer's filters by the names Binance documents, not by the export's pivot), and the as-of
join of the exported rows a backtester would run."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from core.changes import Change
from core.history import layout
from core.timeparse import format_instant
from tests.api_client import q
from tests.builders import exchange_info, record_exchange_info, symbol
from tests.e2e.processes import REPO
from tests.scripts import T0, T1, T2

# exported column -> (filter type, field) of the API's answer; spot's notional first from
# NOTIONAL, else MIN_NOTIONAL; a contract's from MIN_NOTIONAL's notional.
SPOT_FIELDS = {
    "tick_size": [("PRICE_FILTER", "tick_size")],
    "min_price": [("PRICE_FILTER", "min_price")],
    "max_price": [("PRICE_FILTER", "max_price")],
    "step_size": [("LOT_SIZE", "step_size")],
    "min_qty": [("LOT_SIZE", "min_qty")],
    "max_qty": [("LOT_SIZE", "max_qty")],
    "market_min_qty": [("MARKET_LOT_SIZE", "min_qty")],
    "market_max_qty": [("MARKET_LOT_SIZE", "max_qty")],
    "min_notional": [("NOTIONAL", "min_notional"), ("MIN_NOTIONAL", "min_notional")],
    "max_notional": [("NOTIONAL", "max_notional")],
}
FUTURES_FIELDS = {
    **{k: v for k, v in SPOT_FIELDS.items() if k not in ("min_notional", "max_notional")},
    "min_notional": [("MIN_NOTIONAL", "notional")],
}

Rules = dict[str, Any]  # status and the exported filter values, as Decimals


def fields_of(market: str) -> dict[str, list[tuple[str, str]]]:
    return SPOT_FIELDS if market == "spot" else FUTURES_FIELDS


def random_pairs(
    symbols: list[str], start: datetime, end: datetime, n: int, seed: int = 15
) -> list[tuple[str, datetime]]:
    """``n`` (symbol, instant) pairs, instants to the millisecond within ``[start, end)``."""
    rng = random.Random(seed)
    span_ms = int((end - start).total_seconds() * 1000)
    return [
        (rng.choice(symbols), start + timedelta(milliseconds=rng.randrange(span_ms)))
        for _ in range(n)
    ]


def api_rules(client: FlaskClient, symbol: str, at: datetime, market: str) -> Rules | None:
    """What the API says of ``symbol`` at ``at``: None if it was not listed then."""
    response = client.get(f"/v1/symbols/{symbol}?as_of={q(at)}&market={market}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.data[:300]
    answer = response.json
    assert answer is not None
    filters = answer["filters"]
    rules: Rules = {"status": answer["status"]}
    for column, sources in fields_of(market).items():
        values = [filters[t][f] for t, f in sources if f in filters.get(t, {})]
        rules[column] = Decimal(values[0]) if values else None
    return rules


def read_rules(out: Path, market: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{market}_symbols.parquet")


def joined_rules(
    rules: pd.DataFrame, pairs: list[tuple[str, datetime]], market: str
) -> list[Rules | None]:
    """The pandas as-of join of the exported rows onto ``pairs`` (README's recipe): the
    last row starting at or before each instant, kept if the instant is before its end."""
    trades = pd.DataFrame(
        {"symbol": [s for s, _ in pairs], "at": pd.to_datetime([t for _, t in pairs], utc=True)}
    )
    trades["n"] = range(len(trades))
    joined = pd.merge_asof(
        trades.sort_values("at"),
        rules.sort_values("valid_from"),
        left_on="at",
        right_on="valid_from",
        by="symbol",
    ).sort_values("n")
    found = joined["valid_from"].notna()
    in_force = found & (joined["valid_to"].isna() | (joined["at"] < joined["valid_to"]))
    columns = ["status", *fields_of(market)]
    return [
        {c: (None if pd.isna(row[c]) else row[c]) for c in columns} if ok else None
        for (_, row), ok in zip(joined.iterrows(), in_force, strict=True)
    ]


RECIPE = re.compile(r"<!-- recipe: (\w+) -->\n```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def readme_recipes() -> dict[str, str]:
    """README's export recipes by name (Exporting for backtests), to run as written."""
    return dict(RECIPE.findall((REPO / "README.md").read_text(encoding="utf-8")))


def run_recipe(code: str, where: Path) -> dict[str, Any]:
    """The variables a recipe leaves, run in ``where`` (its relative paths are there)."""
    namespace: dict[str, Any] = {}
    previous = Path.cwd()
    os.chdir(where)
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def write_trades(path: Path, pairs: list[tuple[str, datetime]]) -> None:
    """The user's own trades: an id, the symbol and when each executed (UTC)."""
    trades = pa.table(
        {
            "trade_id": pa.array(range(len(pairs)), pa.int64()),
            "symbol": pa.array([s for s, _ in pairs], pa.string()),
            "executed_at": pa.array([t for _, t in pairs], pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(trades, path)


def by_trade(records: list[dict[str, Any]], market: str, n: int) -> list[Rules | None]:
    """A recipe's joined rows as ``api_rules`` answers: None for a trade it dropped."""
    columns = ["status", *fields_of(market)]
    found = {r["trade_id"]: {c: r[c] for c in columns} for r in records}
    assert len(found) == len(records)
    return [found.get(i) for i in range(n)]


def decimals(value: Decimal) -> int:
    """The digits after the point of a decimal written out, trailing zeros left out."""
    text = format(value, "f")
    fraction = text.split(".")[1].rstrip("0") if "." in text else ""
    return len(fraction)


def reference_rules(engine: Engine, market: str) -> list[dict[str, Any]]:
    """The rows ``{market}_symbols`` must hold, found by brute force, apart from the
    export's code: every instant at which one of a symbol's versions or its filters'
    opens or closes, and at each the versions in force looked up one by one in SQL."""
    shape = layout(market)
    own = ", ".join(shape.symbol_fields)
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        bounds = conn.execute(
            text(
                " UNION ".join(
                    f"SELECT symbol, {bound} FROM {table} WHERE {bound} IS NOT NULL"
                    for table in (shape.symbols, shape.filters)
                    for bound in ("valid_from", "valid_to")
                )
                + " ORDER BY 1, 2"
            )
        ).all()
        for i, (name, start) in enumerate(bounds):
            end = bounds[i + 1][1] if i + 1 < len(bounds) and bounds[i + 1][0] == name else None
            in_force = "symbol = :s AND valid_from <= :t AND (valid_to IS NULL OR valid_to > :t)"
            found = (
                conn.execute(
                    text(f"SELECT {own} FROM {shape.symbols} WHERE {in_force}"),
                    {"s": name, "t": start},
                )
                .mappings()
                .all()
            )
            if not found:
                continue
            filters = {
                f["filter_type"]: f
                for f in conn.execute(
                    text(f"SELECT * FROM {shape.filters} WHERE {in_force}"), {"s": name, "t": start}
                ).mappings()
            }
            pivoted = {
                column: next(
                    (
                        filters[t][f]
                        for t, f in sources
                        if t in filters and filters[t][f] is not None
                    ),
                    None,
                )
                for column, sources in fields_of(market).items()
            }
            rows.append({**found[0], **pivoted, "valid_from": start, "valid_to": end})
    return rows


def csv_text(value: Any) -> str:
    """How the export's CSV spells a value read from the database."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_instant(value) or ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def legacy_then_notional_then_no_market_lot() -> list[tuple[datetime, dict[str, Any]]]:
    """BTCUSDT's MIN_NOTIONAL replaced by NOTIONAL at T1, MARKET_LOT_SIZE gone at T2."""
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
    return [(T0, legacy), (T1, symbol("BTCUSDT")), (T2, without_market_lot)]


def record_filter_types(engine: Engine) -> None:
    for when, sym in legacy_then_notional_then_no_market_lot():
        record_exchange_info(engine, exchange_info(sym), when)


def record_odd_filters(engine: Engine) -> None:
    """A filter type exmeta does not know, whose values are a float, a list and a flag:
    added at T0, changed at T1, gone at T2 (JSON that PostgreSQL spells its own way)."""
    odd = {"filterType": "FUTURE_FILTER", "ratio": 1e-8, "levels": [1, 2], "flag": True}
    steps = [
        [*symbol("BTCUSDT")["filters"], odd],
        [*symbol("BTCUSDT")["filters"], {**odd, "ratio": 2.5e-7, "levels": [1, 2, 3.5]}],
        symbol("BTCUSDT")["filters"],
    ]
    for when, filters in zip((T0, T1, T2), steps, strict=True):
        record_exchange_info(
            engine,
            exchange_info({**symbol("BTCUSDT"), "filters": filters}, symbol("ETHUSDT")),
            when,
        )


def record_odd_texts(engine: Engine) -> None:
    """Texts a CSV writer must quote or escape (a quote, a comma, a backslash, a line
    break, a control character) in a symbol's lists and own fields, changed at T1."""
    odd = {**symbol("BTCUSDT"), "orderTypes": ['LI"MIT', "MAR,KET", "a\\b\nc\x01"]}
    for when, base in ((T0, 'B"TC'), (T1, "B,T\nC")):
        record_exchange_info(engine, exchange_info({**odd, "baseAsset": base}), when)


def feed_rows(changes: Iterable[Change]) -> list[dict[str, Any]]:
    """core.changes' feed as the export's rows: values as JSON text, a text as it is."""

    def json_text(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return orjson.dumps(value, default=str).decode()

    return [
        {
            "changed_at": c.changed_at,
            "stream": c.stream,
            "entity": c.entity,
            "key": c.key,
            "field": c.field,
            "old": json_text(c.old),
            "new": json_text(c.new),
            "observation_id": c.observation_id,
            "observed_before": c.observed_before,
        }
        for c in changes
    ]
