"""Give analysts the documents' shape: ``schema_current``, ``schema_as_of(t)``, ``schema_changes``.

Like the other entities' views (0040, 0061): the field paths of each public stream in
force now or at an instant, and a ``schema_changes`` view with the columns of
``changes`` that says what ``GET /v1/changes?schema=true`` says of the entity ``schema``
(key ``<stream>:<path>``; ``listed`` when a path appears or goes, ``types`` when its JSON
types change). It is a view of its own rather than rows of ``changes``, because the feed
lists them only when asked, and ``changes`` is the feed as it answers by default. The
branches are revision 0042's, imported from it, so both views build changes alike.

Revision ID: 0151
Revises: 0150
Create Date: 2026-12-03 08:01:00+00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0151"
down_revision = "0150"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"
WHAT = "field paths of each public stream''s documents and their JSON types"


def _revision_module(rev: str) -> ModuleType:
    [path] = Path(__file__).parent.glob(f"*-{rev}_*.py")
    spec = importlib.util.spec_from_file_location(f"exmeta_revision_{rev}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R0042 = _revision_module("0042")

KEY = "e.stream || ':' || e.path"
EVENTS = R0042._events("schema_versions", ("stream", "path"))
BRANCHES = (
    R0042._fields("schema", KEY, R0042._both("schema_events")),
    R0042._listings("schema", KEY, "schema_events", "e.old", "e.new"),
)
CHANGES = f"""
CREATE VIEW schema_changes AS WITH schema_events AS NOT MATERIALIZED ({EVENTS}),
all_changes AS ({" UNION ALL ".join(BRANCHES)})
SELECT c.changed_at,
       (SELECT max(o.observed_at) FROM observations o
        WHERE o.stream = split_part(c.key, ':', 1) AND o.outcome IN ('changed', 'unchanged')
          AND o.observed_at < c.changed_at) AS observed_before,
       c.observation_id, split_part(c.key, ':', 1) AS stream, c.entity, c.key, c.field,
       c.old, c.new
FROM all_changes c
"""
SELECT = "SELECT stream, path, types, valid_from, valid_to FROM schema_versions v"


def upgrade() -> None:
    op.execute(f"CREATE VIEW schema_current AS {SELECT} WHERE v.valid_to IS NULL")
    op.execute(
        "CREATE FUNCTION schema_as_of(as_of timestamptz) RETURNS SETOF schema_current"
        f" LANGUAGE sql STABLE AS $fn$ {SELECT}"
        " WHERE tstzrange(v.valid_from, v.valid_to) @> as_of $fn$"
    )
    op.execute(CHANGES)
    op.execute(f"COMMENT ON VIEW schema_current IS 'the {WHAT}, now'")
    op.execute(f"COMMENT ON FUNCTION schema_as_of(timestamptz) IS 'the {WHAT}, at the instant'")
    op.execute(
        "COMMENT ON VIEW schema_changes IS 'every change of the field paths of the public"
        " streams'' documents, as GET /v1/changes?schema=true lists them;"
        " ORDER BY changed_at, entity, key, field'"
    )
    op.execute(f"GRANT SELECT ON schema_current, schema_changes TO {ROLE}")
    op.execute(f"GRANT EXECUTE ON FUNCTION schema_as_of(timestamptz) TO {ROLE}")


def downgrade() -> None:
    op.execute("DROP VIEW schema_changes")
    op.execute("DROP FUNCTION schema_as_of(timestamptz)")
    op.execute("DROP VIEW schema_current")
