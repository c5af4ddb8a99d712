"""Create versioned system status.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 07:12:10+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_status_versions",
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("system"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_system_status_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_system_status_versions_nonempty"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_system_status_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_system_status_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("system", "valid_from", name=op.f("pk_system_status_versions")),
    )
    op.create_index(
        "ux_system_status_versions_current",
        "system_status_versions",
        ["system"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_system_status_versions_current",
        table_name="system_status_versions",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("system_status_versions")
