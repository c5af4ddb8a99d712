"""Create poll_totals and version_totals: /metrics' counters, kept by the writer.

A scrape aggregated the whole observation log (twice) and counted every version table,
so its cost grew with the history, every 15 s, forever. The writer now adds each
observation to its stream's row of ``poll_totals`` (by outcome, error class and duration
bucket) and each version it opens to ``version_totals``, in the transaction that writes
them, and a scrape reads these few rows. Rows of one stream are only written under that
stream's head lock, so they add no contention between streams.

The totals start from the log as it is when this revision runs (seeded here), so the
counters keep their meaning: every observation and version ever recorded. The duration
buckets are ``core.stats.DURATION_BOUNDS_MS`` as of this revision (copied, not imported:
a revision must not change when the code does).

Revision ID: 0101
Revises: 0100
Create Date: 2026-12-03 07:10:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101"
down_revision = "0100"
branch_labels = None
depends_on = None

API_ROLE = "exmeta_api"
DURATION_BOUNDS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
VERSIONED_TABLES = (
    "symbol_versions",
    "symbol_filter_versions",
    "rate_limit_versions",
    "exchange_filter_versions",
    "account_versions",
    "balance_versions",
    "commission_versions",
    "system_status_versions",
    "delisting_versions",
)


def upgrade() -> None:
    op.create_table(
        "poll_totals",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error_class", sa.Text(), nullable=False),
        sa.Column("duration_bucket", sa.SmallInteger(), nullable=False),
        sa.Column("polls", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("retries", sa.BigInteger(), nullable=False),
        sa.Column("backoff_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "stream", "outcome", "error_class", "duration_bucket", name=op.f("pk_poll_totals")
        ),
    )
    op.create_table(
        "version_totals",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("versions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_version_totals")),
    )
    thresholds = ", ".join(str(b + 1) for b in DURATION_BOUNDS_MS)  # integer ms: <= b is < b + 1
    op.execute(
        "INSERT INTO poll_totals SELECT stream, outcome, coalesce(error_class, ''),"
        f" width_bucket(duration_ms, ARRAY[{thresholds}]), count(*),"
        " sum(coalesce(attempts, 1)), sum(greatest(coalesce(attempts, 1) - 1, 0)),"
        " coalesce(sum(backoff_ms), 0), sum(duration_ms)"
        " FROM observations GROUP BY 1, 2, 3, 4"
    )
    for table in VERSIONED_TABLES:
        op.execute(
            f"INSERT INTO version_totals SELECT '{table}', count(*) FROM {table}"
            " HAVING count(*) > 0"
        )
    op.execute(f"GRANT SELECT ON poll_totals, version_totals TO {API_ROLE}")


def downgrade() -> None:
    op.drop_table("version_totals")
    op.drop_table("poll_totals")
