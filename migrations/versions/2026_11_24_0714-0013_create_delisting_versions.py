"""Create versioned announced delistings.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 07:12:20+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delisting_versions",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("delist_time", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("symbol"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_delisting_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_delisting_versions_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_delisting_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_delisting_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("symbol", "valid_from", name=op.f("pk_delisting_versions")),
    )
    op.create_index(
        "ux_delisting_versions_current",
        "delisting_versions",
        ["symbol"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_delisting_versions_current",
        table_name="delisting_versions",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("delisting_versions")
