"""Create request_budget: the used weight and any 429/418 pause, shared by all replicas.

Revision ID: 0050
Revises: 0071
Create Date: 2026-11-24 09:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0050"
down_revision = "0071"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_budget",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("used_weight", sa.Integer(), nullable=False),
        sa.Column("weight_window", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("paused_until", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_request_budget_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_budget")),
    )


def downgrade() -> None:
    op.drop_table("request_budget")
