"""Enable btree_gist, which the no-overlap exclusion constraints need.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:41:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS btree_gist")
