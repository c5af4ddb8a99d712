"""Record where an imported observation was read from (``observations.origin``).

`exmeta import` writes archived documents through the poller's writer; each such
observation keeps its file path here, and a live poll none, so that evidence can say
"imported" and an import can find the stream's first live observation.

Revision ID: 0220
Revises: 0210
Create Date: 2026-12-03 12:15:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0220"
down_revision = "0210"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("observations", sa.Column("origin", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("observations", "origin")
