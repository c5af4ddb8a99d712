"""Create versioned account commissions per symbol.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 07:12:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commission_versions",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("standard_maker", sa.Numeric(), nullable=True),
        sa.Column("standard_taker", sa.Numeric(), nullable=True),
        sa.Column("standard_buyer", sa.Numeric(), nullable=True),
        sa.Column("standard_seller", sa.Numeric(), nullable=True),
        sa.Column("special_maker", sa.Numeric(), nullable=True),
        sa.Column("special_taker", sa.Numeric(), nullable=True),
        sa.Column("special_buyer", sa.Numeric(), nullable=True),
        sa.Column("special_seller", sa.Numeric(), nullable=True),
        sa.Column("tax_maker", sa.Numeric(), nullable=True),
        sa.Column("tax_taker", sa.Numeric(), nullable=True),
        sa.Column("tax_buyer", sa.Numeric(), nullable=True),
        sa.Column("tax_seller", sa.Numeric(), nullable=True),
        sa.Column("discount_enabled_for_account", sa.Boolean(), nullable=True),
        sa.Column("discount_enabled_for_symbol", sa.Boolean(), nullable=True),
        sa.Column("discount_asset", sa.Text(), nullable=True),
        sa.Column("discount", sa.Numeric(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("symbol"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_commission_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_commission_versions_nonempty"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_commission_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_commission_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("symbol", "valid_from", name=op.f("pk_commission_versions")),
    )
    op.create_index(
        "ux_commission_versions_current",
        "commission_versions",
        ["symbol"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_commission_versions_current",
        table_name="commission_versions",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("commission_versions")
