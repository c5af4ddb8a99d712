"""Create the role ``exmeta_api`` the HTTP API acts as: it reads, it cannot write.

The API only ever reads, so it should not be able to write, whatever a bug or an
injected statement asks. ``exmeta_api`` is a member of ``exmeta_reader`` (the analysts'
role: the version tables, ``observations``, the views and functions, granted to the
reader by each revision that adds them) and may also SELECT the four internal tables
the API serves from and analysts do not need: ``raw_bodies`` (``/v1/exchange-info``),
``replicas`` and ``stream_leases`` (``/v1/replicas``), and ``stream_heads`` (whether the
answers an API worker keeps in memory are still current, ``api.answers``). A separate role rather than
more grants to the reader keeps the analysts' role as small as the README promises.

The API's connections ``SET ROLE exmeta_api`` (``core.db.create_api_engine``), which
needs membership: a superuser has it; for the migrating user (the usual ``[database]
url``) it is granted here when allowed, so the default configuration works as is. A
production API logs in as its own role made a member (README, "The API's role"); if
the grant is not allowed, the migration says so in a notice and goes on.

Like ``exmeta_reader``, the role is cluster-wide: created only if missing, and kept on
downgrade (other databases on the server may use it); the grants are this database's.

Revision ID: 0070
Revises: 0061
Create Date: 2026-11-24 09:00:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0070"
down_revision = "0061"
branch_labels = None
depends_on = None

ROLE = "exmeta_api"
READER = "exmeta_reader"
INTERNALS = "raw_bodies, replicas, stream_leases, stream_heads"


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
    op.execute(f"GRANT {READER} TO {ROLE}")
    op.execute(f"GRANT SELECT ON {INTERNALS} TO {ROLE}")
    # PostgreSQL >= 16 makes the creator of a role a member WITH ADMIN but without SET:
    # membership alone does not let it act as the role, so ask for SET there.
    op.execute(
        f"""
        DO $$
        DECLARE
            can_set boolean := CASE
                WHEN current_setting('server_version_num')::int >= 160000
                THEN pg_has_role(current_user, '{ROLE}', 'SET')
                ELSE pg_has_role(current_user, '{ROLE}', 'MEMBER')
            END;
        BEGIN
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               AND NOT can_set THEN
                EXECUTE format('GRANT {ROLE} TO %I', current_user);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE '{ROLE} not granted to %: see README, "The API''s role"', current_user;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON {INTERNALS} FROM {ROLE}")
