"""As-of query cost on a large synthetic history (issue 7, P7 and P8).

P7: database time (EXPLAIN ANALYZE execution time) of the single-symbol as-of queries that
core.history.symbol_as_of runs, median over random (symbol, instant) pairs; the range
containment form (served by the exclusion constraint's GiST index) is measured next to
the btree form on the primary key (key, valid_from).
P8: the whole exchange as of an instant through a running `exmeta serve` (gunicorn, over a
TCP socket on loopback: the 8.9 MB answer crosses it as a client receives it), next to the
whole exchange latest, medians of several runs; beside them, measured in the same run,
the machine's own baselines: ``json.loads`` of the answer (the parse alone, the parsed
tree freed after the clock stops) and a ``COPY ... TO STDOUT`` of the rows the answer is
built from (what any answer must at least read out of the database).

    python bench/asof_queries.py [--days 2100] [--samples 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, Engine, text

from bench._db import bench_engine
from bench._procs import BenchError, Children, exmeta_env, free_port, run, wait_http
from bench.synthetic_history import START, load
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


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_ms(body: bytes) -> float:
    """``json.loads`` of ``body`` alone: the tree is freed after the clock stops."""
    gc.collect()
    started = time.perf_counter()
    parsed = json.loads(body)
    elapsed = time.perf_counter() - started
    del parsed
    return elapsed * 1000


def baselines(engine: Engine, instants: list[datetime]) -> list[float]:
    """Per instant, a ``COPY ... TO STDOUT`` of the symbol and filter rows in force then."""
    times = []
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        for at in instants:
            literal = at.isoformat()
            started = time.perf_counter()
            with driver.cursor() as cur:
                for table in ("symbol_versions", "symbol_filter_versions"):
                    query = (
                        f"COPY (SELECT * FROM {table} WHERE tstzrange(valid_from, valid_to)"
                        f" @> '{literal}'::timestamptz) TO STDOUT"
                    )
                    with cur.copy(query) as copy:
                        for _ in copy:
                            pass
            times.append((time.perf_counter() - started) * 1000)
        conn.rollback()
    return times


def whole_exchange(engine: Engine, instants: list[datetime]) -> None:
    """P8 through `exmeta serve`, with the baselines of the same run."""
    baseline = baselines(engine, instants)
    with (
        tempfile.TemporaryDirectory(prefix="exmeta-bench-p8-") as tmp,
        Children(Path(tmp)) as children,
    ):
        port = free_port()
        env = exmeta_env(
            engine.url.render_as_string(hide_password=False),
            api__port=port,
            log__level="WARNING",
        )
        children.exmeta("serve", ["serve"], env)
        wait_http(children, f"http://127.0.0.1:{port}/healthz")
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def timed(path: str) -> tuple[float, bytes]:
            started = time.perf_counter()
            client.request("GET", path)
            response = client.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise BenchError(f"{path}: {response.status} {body[:300]!r}")
            return elapsed * 1000, body

        for _ in range(2):  # warm the worker's pool, prepared statements and caches
            timed("/v1/symbols")
        as_of, latest, parse = [], [], []
        for at in instants:
            elapsed, body = timed(f"/v1/symbols?as_of={format_instant(at)}")
            as_of.append(elapsed)
            latest.append(timed("/v1/symbols")[0])
            parse.append(parse_ms(body))
        client.close()
    m_as_of, m_latest = statistics.median(as_of), statistics.median(latest)
    m_parse, m_copy = statistics.median(parse), statistics.median(baseline)
    ok = m_as_of <= 150 and m_as_of <= 2 * m_latest
    print(
        f"P8 whole-exchange as_of via exmeta serve   median {m_as_of:7.1f} ms   latest"
        f" {m_latest:7.1f} ms   ratio {m_as_of / m_latest:4.2f}x   ({len(body) / 1e6:.1f} MB"
        f" per answer)   target <= 150 ms and <= 2x latest: {'meets' if ok else 'misses'}"
    )
    print(
        f"   baselines of this run: json.loads of the answer {m_parse:6.1f} ms"
        f" ({m_as_of / m_parse:4.2f}x); COPY TO STDOUT of its rows {m_copy:6.1f} ms"
        f" ({m_as_of / m_copy:4.2f}x); load average {loadavg()}"
    )


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

        whole_exchange(engine, [at for _, at in sample[: args.runs]])
        print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; medians; machine shared and noisy")


if __name__ == "__main__":
    run(main)
