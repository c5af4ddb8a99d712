"""Create the USD-M and COIN-M version tables, a set per market.

Futures contracts, their filters, USD-M's margin assets, and each market's rate limits and
exchange filters get tables of their own (``usdm_*``, ``coinm_*``) rather than a market
column in spot's: spot's tables and their read paths stay as they are, and a contract read
as of t costs about half of what it costs in a shared table (bench/README.md, "Futures:
one table or one per market"). Every table has the shape and the indexes of every
versioned table (core.models.VersionMixin). Nothing writes them yet.

Revision ID: 0160
Revises: 0101
Create Date: 2026-12-03 08:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0160"
down_revision = "0101"
branch_labels = None
depends_on = None

TZ = postgresql.TIMESTAMP(timezone=True)
JSONB = postgresql.JSONB(astext_type=sa.Text())
TEXTS = postgresql.ARRAY(sa.Text())


def _symbol_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("pair", sa.Text(), nullable=False),
        sa.Column("contract_type", sa.Text(), nullable=False),
        sa.Column("delivery_date", TZ, nullable=False),
        sa.Column("onboard_date", TZ, nullable=False),
        sa.Column("contract_size", sa.Numeric(), nullable=True),
        sa.Column("margin_asset", sa.Text(), nullable=False),
        sa.Column("base_asset", sa.Text(), nullable=False),
        sa.Column("quote_asset", sa.Text(), nullable=False),
        sa.Column("underlying_type", sa.Text(), nullable=True),
        sa.Column("underlying_sub_type", TEXTS, nullable=True),
        sa.Column("price_precision", sa.SmallInteger(), nullable=True),
        sa.Column("quantity_precision", sa.SmallInteger(), nullable=True),
        sa.Column("base_asset_precision", sa.SmallInteger(), nullable=True),
        sa.Column("quote_precision", sa.SmallInteger(), nullable=True),
        sa.Column("equal_qty_precision", sa.SmallInteger(), nullable=True),
        sa.Column("trigger_protect", sa.Numeric(), nullable=True),
        sa.Column("liquidation_fee", sa.Numeric(), nullable=True),
        sa.Column("market_take_bound", sa.Numeric(), nullable=True),
        sa.Column("maint_margin_percent", sa.Numeric(), nullable=True),
        sa.Column("required_margin_percent", sa.Numeric(), nullable=True),
        sa.Column("max_move_order_limit", sa.Integer(), nullable=True),
        sa.Column("order_types", TEXTS, nullable=True),
        sa.Column("time_in_force", TEXTS, nullable=True),
        sa.Column("permission_sets", JSONB, nullable=True),
    ]


def _filter_columns() -> list[sa.Column[object]]:
    return [
        *(
            sa.Column(name, sa.Numeric(), nullable=True)
            for name in (
                "min_price",
                "max_price",
                "tick_size",
                "min_qty",
                "max_qty",
                "step_size",
                "notional",
                "multiplier_up",
                "multiplier_down",
            )
        ),
        sa.Column("multiplier_decimal", sa.SmallInteger(), nullable=True),
        sa.Column("max_num_orders", sa.Integer(), nullable=True),
        sa.Column("max_num_algo_orders", sa.Integer(), nullable=True),
        sa.Column("position_control_side", sa.Text(), nullable=True),
    ]


def _asset_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("margin_available", sa.Boolean(), nullable=True),
        sa.Column("auto_asset_exchange", sa.Numeric(), nullable=True),
    ]


def _rate_limit_columns() -> list[sa.Column[object]]:
    return [sa.Column("limit_value", sa.BigInteger(), nullable=False)]


def _no_columns() -> list[sa.Column[object]]:
    return []


# table -> (key columns and their types, typed columns, read whole as of an instant)
KeyColumns = list[tuple[str, sa.types.TypeEngine[object]]]
SYMBOL_KEY: KeyColumns = [("symbol", sa.Text())]
FILTER_KEY: KeyColumns = [("symbol", sa.Text()), ("filter_type", sa.Text())]
RATE_LIMIT_KEY: KeyColumns = [
    ("rate_limit_type", sa.Text()),
    ("interval", sa.Text()),
    ("interval_num", sa.Integer()),
]
TABLES: dict[str, tuple[KeyColumns, Callable[[], list[sa.Column[object]]], bool]] = {
    "usdm_symbol_versions": (SYMBOL_KEY, _symbol_columns, False),
    "usdm_symbol_filter_versions": (FILTER_KEY, _filter_columns, True),
    "usdm_asset_versions": ([("asset", sa.Text())], _asset_columns, False),
    "usdm_rate_limit_versions": (RATE_LIMIT_KEY, _rate_limit_columns, False),
    "usdm_exchange_filter_versions": ([("filter_type", sa.Text())], _no_columns, False),
    "coinm_symbol_versions": (SYMBOL_KEY, _symbol_columns, False),
    "coinm_symbol_filter_versions": (FILTER_KEY, _filter_columns, True),
    "coinm_rate_limit_versions": (RATE_LIMIT_KEY, _rate_limit_columns, False),
    "coinm_exchange_filter_versions": ([("filter_type", sa.Text())], _no_columns, False),
}
RANGE = "tstzrange(valid_from, valid_to)"


def _create(table: str) -> None:
    key_columns, typed, read_whole = TABLES[table]
    key = [name for name, _ in key_columns]
    op.create_table(
        table,
        *(sa.Column(name, sql_type, nullable=False) for name, sql_type in key_columns),
        sa.Column("valid_from", TZ, nullable=False),
        sa.Column("valid_to", TZ, nullable=True),
        *typed(),
        sa.Column("raw", JSONB, nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            *[(sa.column(name), "=") for name in key],
            (sa.text(RANGE), "&&"),
            using="gist",
            name=f"ex_{table}_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=f"ck_{table}_nonempty"
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["observations.id"], name=f"fk_{table}_closed_by_observations"
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"], ["observations.id"], name=f"fk_{table}_opened_by_observations"
        ),
        sa.PrimaryKeyConstraint(*key, "valid_from", name=f"pk_{table}"),
    )
    op.create_index(
        f"ux_{table}_current",
        table,
        key,
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    feed_order = ["symbol"] if "symbol" in key else []
    byte_order = {"symbol": 'COLLATE "C"'} if feed_order else {}
    op.create_index(
        f"ix_{table}_valid_from", table, ["valid_from", *feed_order], postgresql_ops=byte_order
    )
    op.create_index(
        f"ix_{table}_valid_to",
        table,
        ["valid_to", *feed_order],
        postgresql_where=sa.text("valid_to IS NOT NULL"),
        postgresql_ops=byte_order,
    )
    if read_whole:
        op.create_index(f"ix_{table}_range", table, [sa.text(RANGE)], postgresql_using="gist")


def upgrade() -> None:
    for table in TABLES:
        _create(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
