"""Create ``stream_signals``: what the realtime listeners saw and what their polls found.

A pushed event (``!contractInfo``, the user data stream's balance events), a silence of
a market stream that looks like a status change, or a reconnection: each asks for an
immediate poll, and the row keeps the event's own time and that poll's outcome, so that
evidence can say when a change began as well as when a poll confirmed it.

Readable by the API's role only (like ``stream_heads``), not by the analysts' reader: the
account's signals would date its balance moves.

Revision ID: 0230
Revises: 0220
Create Date: 2026-12-03 13:30:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0230"
down_revision = "0220"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_signals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("replica_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("event_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("polled", sa.Boolean(), nullable=False),
        sa.Column("observation_id", sa.BigInteger(), nullable=True),
        sa.Column("observed_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('contract_info', 'silence', 'resumed', 'reconnected', 'account_update',"
            " 'balance_update')",
            name=op.f("ck_stream_signals_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_signals")),
    )
    op.create_index(
        op.f("ix_stream_signals_stream_symbol_observed_at"),
        "stream_signals",
        ["stream", "symbol", "observed_at"],
        unique=False,
    )
    op.execute("GRANT SELECT ON stream_signals TO exmeta_api")


def downgrade() -> None:
    op.drop_table("stream_signals")
