"""Create versioned account and balances.

Revision ID: 0010
Revises: 0004
Create Date: 2026-11-24 07:11:56.700103+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_versions",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("account_type", sa.Text(), nullable=True),
        sa.Column("maker_commission", sa.Integer(), nullable=True),
        sa.Column("taker_commission", sa.Integer(), nullable=True),
        sa.Column("buyer_commission", sa.Integer(), nullable=True),
        sa.Column("seller_commission", sa.Integer(), nullable=True),
        sa.Column("commission_rate_maker", sa.Numeric(), nullable=True),
        sa.Column("commission_rate_taker", sa.Numeric(), nullable=True),
        sa.Column("commission_rate_buyer", sa.Numeric(), nullable=True),
        sa.Column("commission_rate_seller", sa.Numeric(), nullable=True),
        sa.Column("can_trade", sa.Boolean(), nullable=True),
        sa.Column("can_withdraw", sa.Boolean(), nullable=True),
        sa.Column("can_deposit", sa.Boolean(), nullable=True),
        sa.Column("brokered", sa.Boolean(), nullable=True),
        sa.Column("require_self_trade_prevention", sa.Boolean(), nullable=True),
        sa.Column("prevent_sor", sa.Boolean(), nullable=True),
        sa.Column("permissions", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("account"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_account_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_account_versions_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_account_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_account_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("account", "valid_from", name=op.f("pk_account_versions")),
    )
    op.create_index(
        "ux_account_versions_current",
        "account_versions",
        ["account"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_table(
        "balance_versions",
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("free", sa.Numeric(), nullable=False),
        sa.Column("locked", sa.Numeric(), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("asset"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_balance_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_balance_versions_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_balance_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_balance_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("asset", "valid_from", name=op.f("pk_balance_versions")),
    )
    op.create_index(
        "ux_balance_versions_current",
        "balance_versions",
        ["asset"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_balance_versions_current",
        table_name="balance_versions",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("balance_versions")
    op.drop_index(
        "ux_account_versions_current",
        table_name="account_versions",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("account_versions")
