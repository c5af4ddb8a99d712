"""P2's floor taken apart: what each index and constraint of the spot version tables costs.

P2's database statements (bench.poll_processing.database_floor: the UPDATE closing the
1,463 versions the real day 11-28 -> 11-29 changes and the COPY of their successors,
rolled back) are timed on a throwaway database holding day 1, then again after dropping,
in turn and cumulatively, the indexes of migration 0245 (opened_by, closed_by), the foreign
keys, the range GiST index of 0080 and last the no-overlap exclusion constraints. Each
figure is the median of --rounds medians of 5 runs. The database is dropped at the end:
nothing here is a change to the schema, only a measurement of it.

    python bench/write_floor.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench._db import bench_engine, fixture
from bench.poll_processing import database_floor, fetched
from core.ingest import StreamWriter
from poller.parse import parse_exchange_info

TABLES = ("symbol_versions", "symbol_filter_versions", "schema_versions")


def drops(engine: Engine) -> list[tuple[str, list[str]]]:
    """The statements of each step, from the catalogue (names differ between tables)."""
    with engine.connect() as conn:
        indexes = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t)"),
            {"t": list(TABLES)},
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, contype FROM pg_constraint"
                " WHERE conrelid::regclass::text = ANY(:t)"
            ),
            {"t": list(TABLES)},
        ).all()

    def drop_constraints(kind: str) -> list[str]:
        return [f"ALTER TABLE {t} DROP CONSTRAINT {n}" for t, n, k in constraints if k == kind]

    return [
        (
            "without 0245's opened_by/closed_by indexes",
            [
                f"DROP INDEX {name}"
                for name, definition in indexes
                if "(opened_by)" in definition or "(closed_by)" in definition
            ],
        ),
        ("and without the foreign keys", drop_constraints("f")),
        (
            "and without 0080's range GiST index",
            [f"DROP INDEX {n}" for n, d in indexes if "USING gist" in d and n.endswith("_range")],
        ),
        ("and without the exclusion constraints", drop_constraints("x")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    day1 = fixture("2022-11-28_2124.json").read_bytes()
    day2 = fixture("2022-11-29_2124.json").read_bytes()
    with bench_engine() as engine:
        StreamWriter(engine, "exchange_info").record(
            fetched(day1, datetime(2024, 1, 1, tzinfo=UTC)), parse_exchange_info
        )

        def floor() -> float:
            runs = [database_floor(engine, day1, day2, 5) for _ in range(args.rounds)]
            return 1e3 * statistics.median(runs)

        whole = floor()
        print(f"{'every index and constraint in place':<45} {whole:7.1f} ms")
        for name, statements in drops(engine):
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
            print(f"{name:<45} {floor():7.1f} ms   ({len(statements)} dropped)")


if __name__ == "__main__":
    main()
