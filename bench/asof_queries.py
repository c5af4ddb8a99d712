"""As-of query cost on a large synthetic history (issue 7, P7 and P8).

P7: database time (EXPLAIN ANALYZE execution time) of the single-symbol as-of queries that
core.history.symbol_as_of runs, median over random (symbol, instant) pairs; the range
containment form (served by the exclusion constraint's GiST index) is measured next to
the btree form on the primary key (key, valid_from).
P8: the whole exchange as of an instant through the API (Flask test client, in process),
next to the whole exchange latest, medians of several runs.

    python bench/asof_queries.py [--days 2100] [--samples 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, text

from api import create_app
from bench._db import bench_engine
from bench._procs import run
from bench.synthetic_history import START, load
from core.config import Settings
from core.timeparse import format_instant

RANGE_FORM = {
    "symbol": "SELECT * FROM symbol_versions WHERE symbol = :s"
    " AND tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)",
    "filters": "SELECT * FROM symbol_filter_versions WHERE symbol = :s"
    " AND tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz)",
}
BTREE_FORM = {
    "symbol": "SELECT * FROM symbol_versions WHERE symbol = :s AND valid_from <= :t"
    " AND (valid_to IS NULL OR valid_to > :t)",
    "filters": "SELECT * FROM symbol_filter_versions WHERE symbol = :s AND valid_from <= :t"
    " AND (valid_to IS NULL OR valid_to > :t)",
}


def explain_ms(conn: Connection, sql: str, params: dict[str, Any]) -> tuple[float, str]:
    plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params).scalar_one()
    top = plan[0]
    node = top["Plan"]
    while node.get("Plans") and "Index Name" not in node:
        node = node["Plans"][0]
    return float(top["Execution Time"]), node.get("Index Name", node["Node Type"])


def pairs(
    conn: Connection, end: datetime, samples: int, rng: random.Random
) -> list[tuple[str, datetime]]:
    found: list[tuple[str, datetime]] = []
    span = (end - START).total_seconds()
    while len(found) < samples:
        at = START + timedelta(seconds=rng.uniform(3600, span - 3600))
        names = (
            conn.execute(
                text(
                    "SELECT symbol FROM symbol_versions"
                    " WHERE tstzrange(valid_from, valid_to) @> CAST(:t AS timestamptz) LIMIT 50"
                ),
                {"t": at},
            )
            .scalars()
            .all()
        )
        if names:
            found.append((rng.choice(names), at))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=2100, help="days of history (2100 ~ 3 million versions)"
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(11)
    with bench_engine() as engine:
        loaded = load(engine, args.days)
        total = loaded["symbol_versions"] + loaded["symbol_filter_versions"]
        print(
            f"history: {args.days} days, {loaded['symbol_versions']:,} symbol + "
            f"{loaded['symbol_filter_versions']:,} filter versions = {total:,} "
            f"(built {loaded['build_seconds']}s, loaded {loaded['load_seconds']}s)"
        )
        with engine.connect() as conn:
            sample = pairs(conn, loaded["end"], args.samples, rng)
            for name, form in (
                ("range @> (GiST)", RANGE_FORM),
                ("btree (key, valid_from)", BTREE_FORM),
            ):
                times = []
                indexes = set()
                for symbol, at in sample:
                    a, ia = explain_ms(conn, form["symbol"], {"s": symbol, "t": at})
                    b, ib = explain_ms(conn, form["filters"], {"s": symbol, "t": at})
                    times.append(a + b)
                    indexes.update((ia, ib))
                median = statistics.median(times)
                p95 = statistics.quantiles(times, n=20)[-1]
                verdict = "meets" if median <= 1.0 else "misses"
                print(
                    f"P7 single-symbol as_of, {name:<24} median {median:6.3f} ms  p95 {p95:6.3f} ms"
                    f"  (indexes: {', '.join(sorted(indexes))})  target median <= 1 ms: {verdict}"
                )

        settings = Settings()
        app = create_app(settings, engine)
        client = app.test_client()
        gc.collect()
        gc.freeze()  # as `exmeta serve` does in each worker after loading the app
        instants = [format_instant(at) for _, at in sample[: args.runs]]

        def timed(url: str) -> float:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.data[:300]
            return elapsed * 1000

        timed("/v1/symbols")  # warm caches and the connection pool
        as_of, latest = [], []
        for instant in instants:
            as_of.append(timed(f"/v1/symbols?as_of={instant}"))
            latest.append(timed("/v1/symbols"))
        m_as_of, m_latest = statistics.median(as_of), statistics.median(latest)
        size = len(client.get("/v1/symbols").data)
        ok = m_as_of <= 150 and m_as_of <= 2 * m_latest
        print(
            f"P8 whole-exchange as_of via the API   median {m_as_of:7.1f} ms   latest {m_latest:7.1f} ms"
            f"   ratio {m_as_of / m_latest:4.2f}x   ({size / 1e6:.1f} MB per answer)"
            f"   target <= 150 ms and <= 2x latest: {'meets' if ok else 'misses'}"
        )
        print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; medians; machine shared and noisy")


if __name__ == "__main__":
    run(main)
