"""Key request_budget by market: Binance counts weight (and 429s) per IP and per API.

Spot, USD-M and COIN-M each have a REQUEST_WEIGHT limit and an ``X-MBX-USED-WEIGHT-1M``
count of their own (notes §14): one row for all would let a futures count overwrite
spot's, and a futures 429 silence spot. The existing row is spot's.

Revision ID: 0170
Revises: 0140
Create Date: 2026-12-03 08:10:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0170"
down_revision = "0140"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "request_budget",
        sa.Column("market", sa.Text(), nullable=False, server_default="spot"),
    )
    op.alter_column("request_budget", "market", server_default=None)
    op.drop_constraint(op.f("ck_request_budget_one_row"), "request_budget", type_="check")
    op.drop_constraint(op.f("pk_request_budget"), "request_budget", type_="primary")
    op.drop_column("request_budget", "id")
    op.create_primary_key(op.f("pk_request_budget"), "request_budget", ["market"])


def downgrade() -> None:
    op.execute("DELETE FROM request_budget WHERE market <> 'spot'")
    op.drop_constraint(op.f("pk_request_budget"), "request_budget", type_="primary")
    op.add_column(
        "request_budget",
        sa.Column("id", sa.SmallInteger(), nullable=False, server_default="1"),
    )
    op.alter_column("request_budget", "id", server_default=None)
    op.drop_column("request_budget", "market")
    op.create_primary_key(op.f("pk_request_budget"), "request_budget", ["id"])
    op.create_check_constraint(op.f("ck_request_budget_one_row"), "request_budget", "id = 1")
