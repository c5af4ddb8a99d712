"""Index the per-symbol version tables by (instant, symbol), the change feed's order.

The feed pages by keyset: it reads the next events in (changed_at, entity, key) order
with a LIMIT, then the versions of exactly those events. With ``valid_from`` / ``valid_to``
alone (0071) PostgreSQL had to sort each instant's whole group by symbol (a day's
``MARKET_LOT_SIZE`` moves are ~1,400 filter versions at one instant) and found a page's
closed versions by instant only, rereading the group once per event. Adding the symbol,
byte-ordered (``COLLATE "C"``, Python's order of the same strings, which the feed's cursor
compares with), makes both an index range walk of the page's own entries. Only the tables
keyed by symbol get it: the others hold a few keys, whose groups are a few rows.

The indexes keep their names and their leading column, so every range search on the
instant alone still uses them.

Revision ID: 0100
Revises: 0080
Create Date: 2026-12-03 07:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0090"
branch_labels = None
depends_on = None

TABLES = ("symbol_versions", "symbol_filter_versions", "commission_versions", "delisting_versions")


def _create(table: str, with_symbol: bool) -> None:
    extra = ["symbol"] if with_symbol else []
    ops = {"symbol": 'COLLATE "C"'} if with_symbol else {}
    op.create_index(f"ix_{table}_valid_from", table, ["valid_from", *extra], postgresql_ops=ops)
    op.create_index(
        f"ix_{table}_valid_to",
        table,
        ["valid_to", *extra],
        postgresql_where=sa.text("valid_to IS NOT NULL"),
        postgresql_ops=ops,
    )


def _drop(table: str) -> None:
    op.drop_index(f"ix_{table}_valid_to", table_name=table)
    op.drop_index(f"ix_{table}_valid_from", table_name=table)


def upgrade() -> None:
    for table in TABLES:
        _drop(table)
        _create(table, with_symbol=True)


def downgrade() -> None:
    for table in TABLES:
        _drop(table)
        _create(table, with_symbol=False)
