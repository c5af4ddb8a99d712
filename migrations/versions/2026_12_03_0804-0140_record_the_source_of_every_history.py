"""Record the source of every observation and of each stream's history; add ``switched``.

A stream's history belongs to one source (core.sources, core.ingest.claim_sources). The
source of what was observed before this revision is unknown and stays NULL: nothing in
the database says which URL a poller had then. Each stream's head gets its source from
the first poller that starts after the upgrade, which adopts its configured one.
``switched`` is the outcome of the observation that moves a history to a new source.
Adding nullable columns rewrites no table.

Revision ID: 0140
Revises: 0151
Create Date: 2026-12-03 07:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0140"
down_revision = "0151"
branch_labels = None
depends_on = None

OUTCOMES = "('changed', 'unchanged', 'stale', 'error', 'switched')"
OLD_OUTCOMES = "('changed', 'unchanged', 'stale', 'error')"


def upgrade() -> None:
    op.add_column("observations", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("stream_heads", sa.Column("source", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_observations_outcome"), "observations", type_="check")
    op.create_check_constraint(
        op.f("ck_observations_outcome"), "observations", f"outcome IN {OUTCOMES}"
    )


def downgrade() -> None:
    # Versions name them as their closers: kept, as the errors an older schema can hold.
    op.execute(
        "UPDATE observations SET outcome = 'error', error_class = 'source_switch'"
        " WHERE outcome = 'switched'"
    )
    op.drop_constraint(op.f("ck_observations_outcome"), "observations", type_="check")
    op.create_check_constraint(
        op.f("ck_observations_outcome"), "observations", f"outcome IN {OLD_OUTCOMES}"
    )
    op.drop_column("stream_heads", "source")
    op.drop_column("observations", "source")
