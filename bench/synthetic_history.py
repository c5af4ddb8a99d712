"""Years of realistic exchangeInfo history, written straight into the version tables.

Starts from a real snapshot (2,292 symbols with their real filters) and replays the
change rates measured on the real daily series (binance-api-notes §3.9): every day
``MARKET_LOT_SIZE.maxQty`` moves on ~1,400 symbols, ~16 symbols go TRADING -> BREAK and
a few come back, a few price filters change, a symbol is listed and one delisted. One
observation per hour, of which the day's first carries the changes. Rows are built
complete (closed versions with their ``valid_to``) and loaded with ``COPY``, so loading
millions of versions takes minutes rather than the hours the poll path would.

    python bench/synthetic_history.py --days 365      # load into a throwaway db, print counts
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine, fixture
from bench._procs import run
from core.db import without_time_limits
from poller.parse import FILTER_COLUMNS, filter_row, symbol_row

START = datetime(2020, 1, 1, tzinfo=UTC)
SYMBOL_COLUMNS = list(
    symbol_row({"symbol": "X", "status": "T", "baseAsset": "A", "quoteAsset": "B"})
)
OBSERVATIONS_PER_DAY = 24


@dataclass
class Open:
    valid_from: datetime
    opened_by: int
    source: dict[str, Any]


def _jsonb(values: dict[str, Any]) -> list[Any]:
    return [
        orjson.dumps(v).decode() if isinstance(v, list) and v and isinstance(v[0], list) else v
        for v in values.values()
    ]


class Generator:
    def __init__(self, snapshot: dict[str, Any], seed: int) -> None:
        self.rng = random.Random(seed)
        self.symbols: dict[str, Open] = {}
        self.filters: dict[tuple[str, str], Open] = {}
        self.symbol_rows: list[tuple[Any, ...]] = []
        self.filter_rows: list[tuple[Any, ...]] = []
        self.templates = snapshot["symbols"]
        for sym in snapshot["symbols"]:
            self._open_symbol(sym, START, 1)

    def _open_symbol(self, sym: dict[str, Any], at: datetime, obs: int) -> None:
        own = {k: v for k, v in sym.items() if k != "filters"}
        self.symbols[sym["symbol"]] = Open(at, obs, own)
        for flt in sym["filters"]:
            self.filters[(sym["symbol"], flt["filterType"])] = Open(at, obs, flt)

    def _close(self, table: str, key: tuple[str, ...], at: datetime, obs: int) -> None:
        store = self.symbols if table == "symbol" else self.filters
        current = store.pop(key[0] if table == "symbol" else key)  # type: ignore[call-overload]
        row = (*key, current.valid_from, at, current, obs)
        (self.symbol_rows if table == "symbol" else self.filter_rows).append(row)

    def _change_filter(
        self, symbol: str, ftype: str, at: datetime, obs: int, **fields: str
    ) -> None:
        key = (symbol, ftype)
        if key not in self.filters:
            return
        new = {**self.filters[key].source, **fields}
        self._close("filter", key, at, obs)
        self.filters[key] = Open(at, obs, new)

    def _change_symbol(self, symbol: str, at: datetime, obs: int, **fields: Any) -> None:
        new = {**self.symbols[symbol].source, **fields}
        self._close("symbol", (symbol,), at, obs)
        self.symbols[symbol] = Open(at, obs, new)

    def day(self, index: int, obs: int) -> None:
        at = START + timedelta(days=index)
        rng = self.rng
        # Delist first: one observation cannot both change a symbol and find it gone.
        breaking = [s for s, o in self.symbols.items() if o.source["status"] == "BREAK"]
        if breaking:
            gone = rng.choice(breaking)
            self._close("symbol", (gone,), at, obs)
            for key in [k for k in self.filters if k[0] == gone]:
                self._close("filter", key, at, obs)
        with_mls = [s for (s, t) in self.filters if t == "MARKET_LOT_SIZE"]
        for symbol in rng.sample(with_mls, min(1400, len(with_mls))):
            qty = Decimal(rng.randint(1, 10**12)) / Decimal(10**8)
            self._change_filter(symbol, "MARKET_LOT_SIZE", at, obs, maxQty=f"{qty:.8f}")
        trading = [s for s, o in self.symbols.items() if o.source["status"] == "TRADING"]
        breaking = [s for s, o in self.symbols.items() if o.source["status"] == "BREAK"]
        for symbol in rng.sample(trading, min(16, len(trading))):
            self._change_symbol(symbol, at, obs, status="BREAK")
        for symbol in rng.sample(breaking, min(2, len(breaking))):
            self._change_symbol(symbol, at, obs, status="TRADING")
        for symbol in rng.sample(list(self.symbols), 5):
            self._change_filter(
                symbol, "PRICE_FILTER", at, obs, maxPrice=f"{rng.randint(1, 10**6)}.00000000"
            )
        template = rng.choice(self.templates)
        listed = {**template, "symbol": f"{template['symbol'][:8]}N{index}", "status": "TRADING"}
        self._open_symbol(listed, at, obs)

    def finish(self) -> None:
        for symbol in list(self.symbols):
            current = self.symbols.pop(symbol)
            self.symbol_rows.append((symbol, current.valid_from, None, current, None))
        for key in list(self.filters):
            current = self.filters.pop(key)
            self.filter_rows.append((*key, current.valid_from, None, current, None))


def _symbol_copy_rows(rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for symbol, valid_from, valid_to, current, closed_by in rows:
        canonical = orjson.dumps(current.source, option=orjson.OPT_SORT_KEYS)
        typed = symbol_row(current.source)
        yield (
            symbol,
            valid_from,
            valid_to,
            canonical.decode(),
            canonical[:16],
            current.opened_by,
            closed_by,
            *_jsonb(typed),
        )


def _filter_copy_rows(rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for symbol, ftype, valid_from, valid_to, current, closed_by in rows:
        canonical = orjson.dumps(current.source, option=orjson.OPT_SORT_KEYS)
        typed = filter_row(current.source)
        yield (
            symbol,
            ftype,
            valid_from,
            valid_to,
            canonical.decode(),
            canonical[:16],
            current.opened_by,
            closed_by,
            *typed.values(),
        )


def load(
    engine: Engine, days: int, seed: int = 7, snapshot: str = "2023-09-08_2292.json"
) -> dict[str, Any]:
    """Generate ``days`` of history into ``engine``'s (empty, migrated) database."""
    started = time.monotonic()
    generator = Generator(orjson.loads(fixture(snapshot).read_bytes()), seed)
    observation_rows = []
    obs_id = 0
    for index in range(days):
        for hour in range(OBSERVATIONS_PER_DAY):
            obs_id += 1
            at = START + timedelta(days=index, hours=hour)
            observation_rows.append((obs_id, at, "changed" if hour == 0 else "unchanged"))
            if hour == 0 and index > 0:
                generator.day(index, obs_id)
    generator.finish()
    built = time.monotonic()

    # Millions of rows in one transaction: neither the server's statement timeout nor the
    # client's answer deadline (core.db) may cut it short on a loaded machine.
    with engine.begin() as conn, without_time_limits(conn):
        with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(
                "COPY observations (id, stream, replica_id, observed_at, requested_at, duration_ms, outcome)"
                " FROM STDIN"
            ) as copy:
                for oid, at, outcome in observation_rows:
                    copy.write_row((oid, "exchange_info", "synthetic", at, at, 40, outcome))
            symbol_cols = [
                "symbol",
                "valid_from",
                "valid_to",
                "raw",
                "content_hash",
                "opened_by",
                "closed_by",
                *SYMBOL_COLUMNS,
            ]
            with cur.copy(f"COPY symbol_versions ({', '.join(symbol_cols)}) FROM STDIN") as copy:
                for row in _symbol_copy_rows(generator.symbol_rows):
                    copy.write_row(row)
            filter_cols = [
                "symbol",
                "filter_type",
                "valid_from",
                "valid_to",
                "raw",
                "content_hash",
                "opened_by",
                "closed_by",
                *FILTER_COLUMNS,
            ]
            with cur.copy(
                f"COPY symbol_filter_versions ({', '.join(filter_cols)}) FROM STDIN"
            ) as copy:
                for row in _filter_copy_rows(generator.filter_rows):
                    copy.write_row(row)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('observations', 'id'), %s)", (obs_id,)
            )
        conn.execute(text("ANALYZE"))
        conn.execute(
            text(
                "INSERT INTO stream_heads (stream, last_applied_at, last_observation_id)"
                " VALUES ('exchange_info', :at, :id)"
            ),
            {"at": START + timedelta(days=days - 1, hours=OBSERVATIONS_PER_DAY - 1), "id": obs_id},
        )
    return {
        "days": days,
        "observations": len(observation_rows),
        "symbol_versions": len(generator.symbol_rows),
        "symbol_filter_versions": len(generator.filter_rows),
        "build_seconds": round(built - started, 1),
        "load_seconds": round(time.monotonic() - built, 1),
        "end": START + timedelta(days=days),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with bench_engine() as engine:
        print(load(engine, args.days, args.seed))


if __name__ == "__main__":
    run(main)
