"""Record on each observation how many requests it took and how long it backed off.

Revision ID: 0020
Revises: 0013
Create Date: 2026-11-24 07:15:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("observations", sa.Column("attempts", sa.SmallInteger(), nullable=True))
    op.add_column("observations", sa.Column("backoff_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("observations", "backoff_ms")
    op.drop_column("observations", "attempts")
