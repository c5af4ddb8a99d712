"""Create versioned symbols and their filters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 06:42:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "symbol_versions",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("base_asset", sa.Text(), nullable=False),
        sa.Column("quote_asset", sa.Text(), nullable=False),
        sa.Column("base_asset_precision", sa.SmallInteger(), nullable=True),
        sa.Column("quote_precision", sa.SmallInteger(), nullable=True),
        sa.Column("quote_asset_precision", sa.SmallInteger(), nullable=True),
        sa.Column("base_commission_precision", sa.SmallInteger(), nullable=True),
        sa.Column("quote_commission_precision", sa.SmallInteger(), nullable=True),
        sa.Column("order_types", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("iceberg_allowed", sa.Boolean(), nullable=True),
        sa.Column("oco_allowed", sa.Boolean(), nullable=True),
        sa.Column("oto_allowed", sa.Boolean(), nullable=True),
        sa.Column("quote_order_qty_market_allowed", sa.Boolean(), nullable=True),
        sa.Column("allow_trailing_stop", sa.Boolean(), nullable=True),
        sa.Column("cancel_replace_allowed", sa.Boolean(), nullable=True),
        sa.Column("amend_allowed", sa.Boolean(), nullable=True),
        sa.Column("is_spot_trading_allowed", sa.Boolean(), nullable=True),
        sa.Column("is_margin_trading_allowed", sa.Boolean(), nullable=True),
        sa.Column("permissions", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("permission_sets", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("default_self_trade_prevention_mode", sa.Text(), nullable=True),
        sa.Column(
            "allowed_self_trade_prevention_modes", postgresql.ARRAY(sa.Text()), nullable=True
        ),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("symbol"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_symbol_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_symbol_versions_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_symbol_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_symbol_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint("symbol", "valid_from", name=op.f("pk_symbol_versions")),
    )
    op.create_index(
        "ux_symbol_versions_current",
        "symbol_versions",
        ["symbol"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_table(
        "symbol_filter_versions",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("filter_type", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("min_price", sa.Numeric(), nullable=True),
        sa.Column("max_price", sa.Numeric(), nullable=True),
        sa.Column("tick_size", sa.Numeric(), nullable=True),
        sa.Column("min_qty", sa.Numeric(), nullable=True),
        sa.Column("max_qty", sa.Numeric(), nullable=True),
        sa.Column("step_size", sa.Numeric(), nullable=True),
        sa.Column("min_notional", sa.Numeric(), nullable=True),
        sa.Column("max_notional", sa.Numeric(), nullable=True),
        sa.Column("apply_min_to_market", sa.Boolean(), nullable=True),
        sa.Column("apply_max_to_market", sa.Boolean(), nullable=True),
        sa.Column("avg_price_mins", sa.Integer(), nullable=True),
        sa.Column("multiplier_up", sa.Numeric(), nullable=True),
        sa.Column("multiplier_down", sa.Numeric(), nullable=True),
        sa.Column("bid_multiplier_up", sa.Numeric(), nullable=True),
        sa.Column("bid_multiplier_down", sa.Numeric(), nullable=True),
        sa.Column("ask_multiplier_up", sa.Numeric(), nullable=True),
        sa.Column("ask_multiplier_down", sa.Numeric(), nullable=True),
        sa.Column("max_position", sa.Numeric(), nullable=True),
        sa.Column("parts_limit", sa.Integer(), nullable=True),
        sa.Column("max_num_orders", sa.Integer(), nullable=True),
        sa.Column("max_num_algo_orders", sa.Integer(), nullable=True),
        sa.Column("max_num_iceberg_orders", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("symbol"), "="),
            (sa.column("filter_type"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name="ex_symbol_filter_versions_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from",
            name=op.f("ck_symbol_filter_versions_nonempty"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["observations.id"],
            name=op.f("fk_symbol_filter_versions_closed_by_observations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"],
            ["observations.id"],
            name=op.f("fk_symbol_filter_versions_opened_by_observations"),
        ),
        sa.PrimaryKeyConstraint(
            "symbol", "filter_type", "valid_from", name=op.f("pk_symbol_filter_versions")
        ),
    )
    op.create_index(
        "ux_symbol_filter_versions_current",
        "symbol_filter_versions",
        ["symbol", "filter_type"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("symbol_filter_versions")
    op.drop_table("symbol_versions")
