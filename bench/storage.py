"""Storage growth (issue 7, P4 and P5; issue 14: the observation log at 1 s).

P4: bytes added to tables and indexes by one no-change exchangeInfo poll of the real
2022-11-28 snapshot, polled every second (ms jitter, as serverTime dates them) through
the poller's writer, over --polls polls: first as detail rows (what every poll costs
while it is younger than ``[poller] observation_detail_hours``), then folded into runs
(core.obslog), measured in the steady state: a round of polls written and folded after a
round already folded and vacuumed, so the space freed by folding is there to be reused,
as it is in a running database (three rounds before: B-tree pages emptied by folding
are reused only a VACUUM or two later). Sizes after VACUUM (dead tuples reclaimed).
P5: one year of daily real-rate changes (bench/synthetic_history.py, hourly observations
there, their versions and indexes), extrapolated from --days, with the share of
MARKET_LOT_SIZE rows; plus the raw bodies such a year stores (one distinct body per day,
TOAST-compressed size of the real 3.7 MB body); plus the observation log of that year
polled every second: a measured sample of --sample-days days of 86,400 polls each (one
change a day, the rest unchanged, written by SQL rather than the writer: a day through
the writer takes ~10 min here), folded, the last day's growth (the steady state, as in
P4) times 365, and the detail
window (48 h of detail rows at P4's detail cost) on top.

    python bench/storage.py [--polls 10000] [--days 365] [--sample-days 4] [--p4-only]
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine, fixture
from bench._procs import run
from bench.synthetic_history import load
from core import obslog
from core.bodies import blank_server_time
from core.config import PollerSettings
from core.ingest import Fetched, StreamWriter
from poller.parse import parse_exchange_info

TABLES = (
    "observations",
    "observation_runs",
    "raw_bodies",
    "stream_heads",
    "poll_totals",
    "symbol_versions",
    "symbol_filter_versions",
    "rate_limit_versions",
    "exchange_filter_versions",
)
DETAIL_HOURS = PollerSettings().observation_detail_hours
TARGET_P4 = 16  # bytes per unchanged poll
FOLD_ALL = timedelta(0)
WARM_UP_ROUNDS = 3  # every poll of the bench is dated long before now


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


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}


def _shown(sizes: dict[str, int]) -> str:
    return ", ".join(f"{t} {b:+,}" for t, b in sizes.items())


@dataclass(frozen=True)
class PerPoll:
    detail: float  # bytes per unchanged poll kept as a detail row
    folded: float  # bytes per unchanged poll folded into a run, steady state


def p4(polls: int) -> PerPoll:
    raw = fixture("2022-11-28_2124.json").read_bytes()
    body, _ = blank_server_time(raw)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    jitter = random.Random(14)
    with bench_engine() as engine:
        writer = StreamWriter(engine, "exchange_info")
        writer.record(
            Fetched("exchange_info", "bench", at, 0, 200, 20, body, at), parse_exchange_info
        )
        second = 0

        def poll_round() -> None:
            nonlocal second
            for _ in range(polls):
                second += 1
                ms = jitter.randint(-80, 80)  # serverTime dates a poll to the millisecond
                when = at + timedelta(seconds=second, milliseconds=ms)
                writer.record(
                    Fetched("exchange_info", "bench", when, 40, 200, 20, body, when),
                    parse_exchange_info,
                )

        vacuum(engine)
        start = total_bytes(engine)
        poll_round()
        vacuum(engine)
        detailed = total_bytes(engine)
        # Rounds folded before the measured one: B-tree pages that folding empties are
        # reused only a VACUUM or two later (PostgreSQL's page recycling); measured, the
        # indexes stop growing from the third round.
        obslog.compact(engine, FOLD_ALL)
        vacuum(engine)
        for _ in range(WARM_UP_ROUNDS - 1):
            poll_round()
            obslog.compact(engine, FOLD_ALL)
            vacuum(engine)
        warm = total_bytes(engine)
        poll_round()
        folded = obslog.compact(engine, FOLD_ALL)
        vacuum(engine)
        steady = total_bytes(engine)
    detail_growth = grown(start, detailed)
    folded_growth = grown(warm, steady)
    result = PerPoll(sum(detail_growth.values()) / polls, sum(folded_growth.values()) / polls)
    verdict = "meets" if result.folded <= TARGET_P4 else "misses"
    print(
        f"P4 detail rows: {result.detail:6.1f} bytes per unchanged poll over {polls:,} polls"
        f" ({_shown(detail_growth)})"
    )
    print(
        f"P4 folded:      {result.folded:6.1f} bytes per unchanged poll over {polls:,} polls,"
        f" steady state, {sum(folded.values()):,} folded ({_shown(folded_growth)});"
        f" body {len(raw):,} bytes; target <= {TARGET_P4} bytes: {verdict}"
    )
    return result


def observation_log_day(engine: Engine, day: int, start_id: int) -> int:
    """A day of exchangeInfo polled every second, written by SQL: the day's first poll is
    its change (a new body), the other 86,399 unchanged, each dated with ms jitter as
    serverTime dates polls. Returns the next id."""
    sha = f"\\x{day:064x}"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO raw_bodies (sha256, body, size) VALUES (CAST(:sha AS bytea), '', 0)"),
            {"sha": sha},
        )
        conn.execute(
            text(
                "INSERT INTO observations (id, stream, replica_id, observed_at, requested_at,"
                " duration_ms, outcome, http_status, used_weight, body_sha256, attempts,"
                " backoff_ms, source) OVERRIDING SYSTEM VALUE"
                " SELECT :id + s, 'exchange_info', 'replica-1', t, t - interval '40 ms', 40,"
                " CASE WHEN s = 0 THEN 'changed' ELSE 'unchanged' END, 200,"
                " 20 + (s % 40), CAST(:sha AS bytea), 1, 0, 'https://api.binance.com:443'"
                " FROM generate_series(0, 86399) AS s, LATERAL (SELECT"
                " CAST(:day AS timestamptz) + s * interval '1 second'"
                " + (floor(random() * 161) - 80) * interval '1 millisecond' AS t) AS j"
            ),
            {
                "id": start_id,
                "sha": sha,
                "day": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day),
            },
        )
        conn.execute(
            text(
                "INSERT INTO stream_heads (stream, last_applied_at, last_observation_id)"
                " VALUES ('exchange_info', now(), :last) ON CONFLICT (stream) DO UPDATE"
                " SET last_observation_id = :last"
            ),
            {"last": start_id + 86399},
        )
    return start_id + 86400


def observation_log_year(sample_days: int) -> float:
    """Bytes a year of 1 s polls adds once folded, from a measured sample of days: the
    last day's growth of ``observation_runs`` (heap, TOAST, indexes), written and folded
    after the others were. ``observations`` itself is the detail window, a fixed size
    counted apart (its heap is reused or truncated by VACUUM as days are folded)."""
    next_id = 1
    with bench_engine() as engine:
        for day in range(sample_days - 1):
            next_id = observation_log_day(engine, day, next_id)
        obslog.compact(engine, FOLD_ALL)
        vacuum(engine)
        before = total_bytes(engine)
        next_id = observation_log_day(engine, sample_days - 1, next_id)
        obslog.compact(engine, FOLD_ALL)
        vacuum(engine)
        after = total_bytes(engine)
    growth = grown(before, after)
    per_day = growth.get("observation_runs", 0)
    print(
        f"   a sampled day of 86,400 polls, folded (day {sample_days} of {sample_days}):"
        f" observation_runs {per_day / 1e6:.3f} MB, {per_day / 86400:.2f} bytes a poll"
        f" (all tables: {_shown(growth)})"
    )
    return per_day * 365


def p5(days: int, per_poll: PerPoll, sample_days: int) -> None:
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
    # The synthetic history's hourly observations are left out: the 1 s log replaces them.
    tables = sum(b for t, b in sizes.items() if t != "observations")
    # MARKET_LOT_SIZE's share of the filter table (heap and its indexes alike, by row bytes).
    mls_share = sizes["symbol_filter_versions"] * (mls_bytes / filter_bytes) / tables
    bodies = stored * days
    versions_year = (tables + bodies) * 365 / days
    print(
        f"P5 {days} days: versions {loaded['symbol_versions']:,} symbol + {loaded['symbol_filter_versions']:,} filter"
        f" ({mls_rows:,} MARKET_LOT_SIZE)"
    )
    for t in TABLES:
        if sizes[t] > 16384 and t != "observations":
            print(f"   {t:<26} {sizes[t] / 1e6:8.1f} MB")
    print(
        f"   raw bodies, one per day     {bodies / 1e6:8.1f} MB ({stored / 1e6:.2f} MB stored per 3.7 MB body)"
    )
    print(
        f"   versions and bodies, a year {versions_year / 1e6:8.1f} MB"
        f" (x 365/{days}); MARKET_LOT_SIZE churn {mls_share:.0%} of the version tables"
    )
    folded_year = observation_log_year(sample_days)
    window = DETAIL_HOURS * 3600 * per_poll.detail
    print(
        f"   observation log at 1 s, a year folded {folded_year / 1e6:8.1f} MB"
        f" (the sampled day x 365); detail window of {DETAIL_HOURS:g} h {window / 1e6:6.1f} MB"
    )
    year = versions_year + folded_year + window
    unfolded = versions_year + 365 * 86400 * per_poll.detail
    verdict = "meets" if year <= 1e9 else "misses"
    print(
        f"P5 one year polled every 1 s, everything included: {year / 1e6:7.1f} MB;"
        f" target <= 1 GB: {verdict} (every poll's detail kept: {unfolded / 1e6:7.1f} MB)"
    )
    for interval in (1, 10, 60):
        polls = 365 * 86400 / interval
        print(
            f"   the observation log polling every {interval:>2} s, a year:"
            f" {polls * per_poll.detail / 1e6:8.1f} MB as detail rows,"
            f" {polls * per_poll.folded / 1e6:8.1f} MB folded (P4 x polls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sample-days", type=int, default=4, help="3 or more")
    parser.add_argument("--p4-only", action="store_true")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().strip()}")
    per_poll = p4(args.polls)
    if not args.p4_only:
        p5(args.days, per_poll, args.sample_days)


if __name__ == "__main__":
    run(main)
