"""Record a serverTime that did not date its observation, and count them per stream.

An observation whose ``serverTime`` disagrees with its request's window on the database
clock beyond the tolerance is dated by the database clock (core.dating); the reported
value is kept on the observation and each one is counted on its stream's head, in the
same transaction, so that /metrics reads one row per stream and not the observation log.
Adding a column with a constant default rewrites no table (PostgreSQL >= 11).

Revision ID: 0090
Revises: 0080
Create Date: 2026-12-03 07:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0090"
down_revision = "0080"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "observations", sa.Column("server_time", sa.TIMESTAMP(timezone=True), nullable=True)
    )
    op.add_column(
        "stream_heads",
        sa.Column("server_time_rejections", sa.BigInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("stream_heads", "server_time_rejections")
    op.drop_column("observations", "server_time")
