"""Index every version table by when its versions open and close, for the change feed.

The feed (core/changes.py) asks each table for the versions that open or close within a
window: ``valid_from`` in it OR ``valid_to`` in it. Neither half had an index of its own
(the primary key leads with the entity key), so every page read the whole table: ~100 ms
of database time a page on 1 M filter versions, against ~1 ms with both indexes
(bench/change_feed.py). Both are needed: with ``valid_to`` alone the planner still scans
the table for the ``valid_from`` half. The two halves become two index range scans
combined in a BitmapOr. ``valid_to`` is indexed only where it is set: current versions
(NULL) close nothing.

Revision ID: 0071
Revises: 0070
Create Date: 2026-11-24 09:10:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0071"
down_revision = "0070"
branch_labels = None
depends_on = None

TABLES = (
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
    for table in TABLES:
        op.create_index(f"ix_{table}_valid_from", table, ["valid_from"])
        op.create_index(
            f"ix_{table}_valid_to",
            table,
            ["valid_to"],
            postgresql_where=sa.text("valid_to IS NOT NULL"),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_valid_to", table_name=table)
        op.drop_index(f"ix_{table}_valid_from", table_name=table)
