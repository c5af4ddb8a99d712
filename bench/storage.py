"""Storage growth (issue 7, P4 and P5).

P4: bytes added to tables and indexes by one no-change exchangeInfo poll, over --polls
polls of the real 2022-11-28 snapshot (after a VACUUM, so dead tuples the poller's head
updates leave behind are counted only as far as they are not reclaimed), next to the
body's size.
P5: bytes for one year of daily real-rate changes (bench/synthetic_history.py, 365 days,
hourly observations), with the share of MARKET_LOT_SIZE rows; plus the raw bodies such a
year stores (one distinct body per day, TOAST-compressed size of the real 3.7 MB body).

    python bench/storage.py [--polls 1000] [--days 365]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine, fixture
from bench._procs import run
from bench.synthetic_history import load
from core.bodies import blank_server_time
from core.ingest import Fetched, StreamWriter
from poller.parse import parse_exchange_info

TABLES = (
    "observations",
    "raw_bodies",
    "stream_heads",
    "symbol_versions",
    "symbol_filter_versions",
    "rate_limit_versions",
    "exchange_filter_versions",
)


def total_bytes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(
                conn.execute(
                    text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}
                ).scalar_one()
            )
            for t in TABLES
        }


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM"))


def p4(polls: int) -> float:
    raw = fixture("2022-11-28_2124.json").read_bytes()
    body, _ = blank_server_time(raw)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    with bench_engine() as engine:
        writer = StreamWriter(engine, "exchange_info")
        writer.record(
            Fetched("exchange_info", "bench", at, 0, 200, 20, body, at), parse_exchange_info
        )
        vacuum(engine)
        before = total_bytes(engine)
        for i in range(1, polls + 1):
            when = at + timedelta(seconds=i)
            writer.record(
                Fetched("exchange_info", "bench", when, 40, 200, 20, body, when),
                parse_exchange_info,
            )
        vacuum(engine)
        after = total_bytes(engine)
    grown = {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}
    per_poll = sum(grown.values()) / polls
    verdict = "meets" if per_poll <= 512 else "misses"
    print(
        f"P4 storage per no-change poll: {per_poll:6.0f} bytes over {polls} polls"
        f" ({', '.join(f'{t} +{b:,}' for t, b in grown.items())});"
        f" body {len(raw):,} bytes, ratio {per_poll / len(raw):.6f}; target <= 512 bytes: {verdict}"
    )
    return per_poll


def p5(days: int, per_poll: float) -> None:
    with bench_engine() as engine:
        loaded = load(engine, days)
        vacuum(engine)
        sizes = total_bytes(engine)
        with engine.connect() as conn:
            mls_rows, mls_bytes, filter_bytes = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE filter_type = 'MARKET_LOT_SIZE'),"
                    " sum(pg_column_size(f.*)) FILTER (WHERE filter_type = 'MARKET_LOT_SIZE'),"
                    " sum(pg_column_size(f.*)) FROM symbol_filter_versions f"
                )
            ).one()
        body, _ = blank_server_time(fixture("2023-09-08_2292.json").read_bytes())
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO raw_bodies (sha256, body, size) VALUES ('\\x00', :b, :n)"),
                {"b": body, "n": len(body)},
            )
            # The stored (TOAST-compressed) size, which is what a year of bodies costs.
            stored = int(
                conn.execute(
                    text("SELECT pg_column_size(body) FROM raw_bodies WHERE sha256 = '\\x00'")
                ).scalar_one()
            )
    tables = sum(sizes.values())
    # MARKET_LOT_SIZE's share of the filter table (heap and its indexes alike, by row bytes).
    mls_share = sizes["symbol_filter_versions"] * (mls_bytes / filter_bytes) / tables
    bodies = stored * days
    year = (tables + bodies) * 365 / days
    verdict = "meets" if year <= 1e9 else "misses"
    print(
        f"P5 {days} days: versions {loaded['symbol_versions']:,} symbol + {loaded['symbol_filter_versions']:,} filter"
        f" ({mls_rows:,} MARKET_LOT_SIZE), {loaded['observations']:,} observations"
    )
    for t in TABLES:
        if sizes[t] > 16384:
            print(f"   {t:<26} {sizes[t] / 1e6:8.1f} MB")
    print(
        f"   raw bodies, one per day     {bodies / 1e6:8.1f} MB ({stored / 1e6:.2f} MB stored per 3.7 MB body)"
    )
    print(
        f"P5 one year: {year / 1e6:7.1f} MB in all; MARKET_LOT_SIZE churn {mls_share:.0%} of the tables;"
        f" target <= 1 GB: {verdict}"
    )
    for interval in (1, 10, 60):
        log = 365 * 86400 / interval * per_poll
        print(
            f"   + the observation log polling every {interval:>2} s: {log / 1e6:8.1f} MB a year (P4 x polls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    p5(args.days, p4(args.polls))


if __name__ == "__main__":
    run(main)
