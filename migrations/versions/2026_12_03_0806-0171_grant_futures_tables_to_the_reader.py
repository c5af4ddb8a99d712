"""Grant the analysts' read-only role the futures version tables.

Migration 0160 created them and the poller now writes them (issue 12), but only 0041's
tables were granted to ``exmeta_reader``: an analyst (and the API's role, a member) was
refused the one place the futures history can be read until the API takes a market.

Revision ID: 0171
Revises: 0170
Create Date: 2026-12-03 08:06:00
"""

from __future__ import annotations

from alembic import op

revision = "0171"
down_revision = "0170"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"
TABLES = (
    "usdm_symbol_versions, usdm_symbol_filter_versions, usdm_asset_versions,"
    " usdm_rate_limit_versions, usdm_exchange_filter_versions, coinm_symbol_versions,"
    " coinm_symbol_filter_versions, coinm_rate_limit_versions, coinm_exchange_filter_versions"
)


def upgrade() -> None:
    op.execute(f"GRANT SELECT ON {TABLES} TO {ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON {TABLES} FROM {ROLE}")
