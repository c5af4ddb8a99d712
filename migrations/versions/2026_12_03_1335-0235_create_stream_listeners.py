"""Create ``stream_listeners``: each replica's realtime listener per market, for health.

The API process never sees the poller's memory; /readyz and /metrics read whether each
market's listener is connected and when it last heard from Binance here.

Revision ID: 0235
Revises: 0230
Create Date: 2026-12-03 13:35:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0235"
down_revision = "0230"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_listeners",
        sa.Column("replica_id", sa.Text(), nullable=False),
        sa.Column("market", sa.Text(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("connected_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("last_message_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", "market", name=op.f("pk_stream_listeners")),
    )
    op.execute("GRANT SELECT ON stream_listeners TO exmeta_api")


def downgrade() -> None:
    op.drop_table("stream_listeners")
