"""Create stream_leases: which replica polls each stream's next slot, under which term.

Revision ID: 0030
Revises: 0020
Create Date: 2026-11-24 08:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_leases",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("next_due_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_stream_leases")),
    )


def downgrade() -> None:
    op.drop_table("stream_leases")
