"""Index each version table's ``opened_by`` and ``closed_by``.

Folding old unchanged polls (revision 0240, core.obslog) deletes their observation rows,
and PostgreSQL checks every deleted row against each foreign key that references
``observations``: two per version table, 48 in all. Without an index each check reads
the whole table, and folding one run of 3,600 polls took longer than the statement
timeout over a year's versions (bench/storage.py); with them a check is an index probe.

Revision ID: 0245
Revises: 0240
Create Date: 2026-12-03 13:45:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0245"
down_revision = "0240"
branch_labels = None
depends_on = None

# The version tables as of this revision; a later one adds its own tables' indexes.
TABLES = (
    "account_versions",
    "balance_versions",
    "coinm_exchange_filter_versions",
    "coinm_rate_limit_versions",
    "coinm_symbol_filter_versions",
    "coinm_symbol_versions",
    "commission_versions",
    "delisting_versions",
    "exchange_filter_versions",
    "margin_delisting_versions",
    "margin_isolated_pair_versions",
    "margin_pair_versions",
    "rate_limit_versions",
    "schema_versions",
    "symbol_filter_versions",
    "symbol_versions",
    "system_status_versions",
    "usdm_asset_versions",
    "usdm_exchange_filter_versions",
    "usdm_rate_limit_versions",
    "usdm_symbol_filter_versions",
    "usdm_symbol_versions",
    "wallet_coin_versions",
    "wallet_network_versions",
)


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_opened_by", table, ["opened_by"])
        op.create_index(
            f"ix_{table}_closed_by",
            table,
            ["closed_by"],
            postgresql_where=sa.text("closed_by IS NOT NULL"),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_closed_by", table_name=table)
        op.drop_index(f"ix_{table}_opened_by", table_name=table)
