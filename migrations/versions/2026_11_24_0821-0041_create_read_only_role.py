"""Create the read-only role ``exmeta_reader`` for analysts, and grant it what they read.

The role is NOLOGIN: people log in as their own roles made members of it (README, "SQL
for analysts"), so access is granted and revoked per person. Roles are cluster-wide, so
the role is created only if missing (another database on the server, or a concurrent
migration, may have made it) and a downgrade revokes this database's grants but keeps
the role, which other databases may still use.

It may SELECT the versioned tables, the observation log and the analysts' views, and
EXECUTE the as-of functions; nothing else, in particular no INSERT, UPDATE or DELETE, no
internal tables (``raw_bodies``, ``stream_heads``) and no CREATE in the schema. It does
get TEMP on the database, on purpose: joining one's own trades means loading them into a
temporary table, which lives in the session and cannot touch exmeta's data.
A later revision that adds a table analysts should read grants it in the same revision.

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-24 08:21:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"
READABLE = (
    "symbol_versions, symbol_filter_versions, rate_limit_versions, exchange_filter_versions,"
    " account_versions, balance_versions, commission_versions, system_status_versions,"
    " delisting_versions, observations, symbols_current, rate_limits_current"
)
FUNCTIONS = (
    "symbols_as_of(timestamptz), symbol_as_of(text, timestamptz), rate_limits_as_of(timestamptz)"
)


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database on this server
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT ON {READABLE} TO {ROLE}")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTIONS} TO {ROLE}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO {ROLE}',"
        " current_database()); END $$"
    )


def downgrade() -> None:
    op.execute(
        f"DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM {ROLE}',"
        " current_database()); END $$"
    )
    op.execute(f"REVOKE EXECUTE ON FUNCTION {FUNCTIONS} FROM {ROLE}")
    op.execute(f"REVOKE SELECT ON {READABLE} FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
