"""Create the observation log, raw bodies and stream heads.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 06:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_bodies",
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column(
            "first_seen_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_raw_bodies")),
    )
    op.create_table(
        "stream_heads",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("last_applied_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("last_observation_id", sa.BigInteger(), nullable=True),
        sa.Column("last_body_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("state_observation_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_stream_heads")),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("replica_id", sa.Text(), nullable=False),
        sa.Column("observed_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("requested_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=True),
        sa.Column("used_weight", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("body_sha256", sa.LargeBinary(), nullable=True),
        sa.Column(
            "recorded_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "outcome IN ('changed', 'unchanged', 'stale', 'error')",
            name=op.f("ck_observations_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["body_sha256"],
            ["raw_bodies.sha256"],
            name=op.f("fk_observations_body_sha256_raw_bodies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    op.create_index(
        op.f("ix_observations_stream_observed_at"),
        "observations",
        ["stream", "observed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("observations")
    op.drop_table("stream_heads")
    op.drop_table("raw_bodies")
