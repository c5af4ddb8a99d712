"""Index symbol_filter_versions by its validity range alone, for whole-exchange as-of answers.

``GET /v1/symbols?as_of=t`` reads every filter version whose range contains t (~20,000 of
3 million in bench/asof_queries.py). The only index on the range was the exclusion
constraint's, which leads with (symbol, filter_type): searched by the range alone it walks
most of its pages (~7,000 buffers, 35 ms). A GiST index on the range alone answers the same
search in ~16 ms. Single-symbol answers keep using the exclusion index (the key narrows it
first). Other version tables are small or read per key, and stay as they are.

The build takes ~5 s per 3 million versions; it is not CONCURRENTLY, since migrations run
in one transaction (poller writes wait for it).

Revision ID: 0080
Revises: 0050
Create Date: 2026-11-24 12:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0080"
down_revision = "0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_symbol_filter_versions_range",
        "symbol_filter_versions",
        [sa.text("tstzrange(valid_from, valid_to)")],
        postgresql_using="gist",
    )


def downgrade() -> None:
    op.drop_index("ix_symbol_filter_versions_range", table_name="symbol_filter_versions")
