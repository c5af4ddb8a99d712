"""Create the versioned shape of each stream's documents: field paths and their JSON types.

A field or filter type that Binance adds or drops (``MIN_NOTIONAL`` giving way to
``NOTIONAL``) breaks clients without changing any rule; core.schema reduces each public
stream's document to its paths, and this table versions them like any entity, keyed by
stream and path. Indexed like every version table (core.models.VersionMixin).

A stream's shape is taken only when its body is parsed, and an unchanged body never is:
so that every stream gets its first shape at its next poll, not at its next change (the
system status may not change for months), each stream head forgets its last body hash,
and that one poll is parsed in full (its versions are found unchanged).

Revision ID: 0150
Revises: 0160
Create Date: 2026-12-03 08:00:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0150"
down_revision = "0160"
branch_labels = None
depends_on = None

TABLE = "schema_versions"
KEY = ["stream", "path"]


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("valid_from", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("valid_to", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("opened_by", sa.BigInteger(), nullable=False),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        postgresql.ExcludeConstraint(
            (sa.column("stream"), "="),
            (sa.column("path"), "="),
            (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
            using="gist",
            name=f"ex_{TABLE}_no_overlap",
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f(f"ck_{TABLE}_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["observations.id"], name=op.f(f"fk_{TABLE}_closed_by_observations")
        ),
        sa.ForeignKeyConstraint(
            ["opened_by"], ["observations.id"], name=op.f(f"fk_{TABLE}_opened_by_observations")
        ),
        sa.PrimaryKeyConstraint(*KEY, "valid_from", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(
        f"ux_{TABLE}_current",
        TABLE,
        KEY,
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_index(f"ix_{TABLE}_valid_from", TABLE, ["valid_from"])
    op.create_index(
        f"ix_{TABLE}_valid_to",
        TABLE,
        ["valid_to"],
        postgresql_where=sa.text("valid_to IS NOT NULL"),
    )
    # The analysts' role reads every version table (0041); the API's role is one of it (0070).
    op.execute(f"GRANT SELECT ON {TABLE} TO exmeta_reader")
    op.execute("UPDATE stream_heads SET last_body_sha256 = NULL")


def downgrade() -> None:
    op.drop_table(TABLE)
