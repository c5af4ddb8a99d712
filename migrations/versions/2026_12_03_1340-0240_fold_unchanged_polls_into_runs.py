"""Fold runs of old unchanged polls into ``observation_runs`` (core.obslog, issue 14).

At a 1 s interval one detail row per unchanged poll is ~7 GB a year; a run keeps each
poll's id and instant exactly, as steps in two integer arrays, at a few bytes a poll.
Two functions make the folded polls readable by SQL: ``observation_run_polls`` unpacks
one run (the encoding is read in this one place), and ``last_success_before(stream, t)``
is a stream's last successful poll strictly before t over both tables, the
``observed_before`` of the ``changes`` and ``schema_changes`` views, now redefined on it
so that analysts keep the answers they had before any poll was folded.

Revision ID: 0240
Revises: 0235
Create Date: 2026-12-03 13:30:00+00:00
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0240"
down_revision = "0235"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"


def _revision_module(rev: str) -> ModuleType:
    """An earlier revision's module: its view texts are redefined here, not copied."""
    (path,) = Path(__file__).parent.glob(f"*-{rev}_*.py")
    spec = importlib.util.spec_from_file_location(f"_revision_{rev}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R0151 = _revision_module("0151")
R0210 = _revision_module("0210")  # the newest changes view

# Window sums over the steps: a run is at most core.obslog.RUN_POLLS long, so unpacking
# one costs a few thousand additions, and only the runs around an instant are unpacked.
RUN_POLLS = """
CREATE FUNCTION observation_run_polls(
    first_id bigint, first_at timestamptz, id_steps integer[], gaps_us integer[])
RETURNS TABLE (id bigint, observed_at timestamptz) LANGUAGE sql STABLE AS $fn$
SELECT first_id, first_at
UNION ALL
SELECT first_id + sum(s.i) OVER w, first_at + sum(s.g) OVER w * interval '1 microsecond'
FROM unnest(id_steps, gaps_us) WITH ORDINALITY AS s(i, g, n)
WINDOW w AS (ORDER BY s.n)
$fn$
"""
LAST_SUCCESS_BEFORE = """
CREATE FUNCTION last_success_before(stream text, t timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $fn$
SELECT greatest(
    (SELECT max(o.observed_at) FROM observations o
     WHERE o.stream = $1 AND o.outcome IN ('changed', 'unchanged') AND o.observed_at < $2),
    (SELECT max(p.observed_at)
     FROM (SELECT * FROM observation_runs r WHERE r.stream = $1 AND r.first_at < $2
           ORDER BY r.first_at DESC LIMIT 1) r
     CROSS JOIN LATERAL observation_run_polls(r.first_id, r.first_at, r.id_steps, r.gaps_us) p
     WHERE p.observed_at < $2))
$fn$
"""
FUNCTIONS = (
    "observation_run_polls(bigint, timestamptz, integer[], integer[]),"
    " last_success_before(text, timestamptz)"
)
_OBSERVED_BEFORE = re.compile(
    r"\(SELECT max\(o\.observed_at\) FROM observations o\s+WHERE o\.stream = (.+?)"
    r" AND o\.outcome IN \('changed', 'unchanged'\)\s+AND o\.observed_at < c\.changed_at\)"
)


def _on_runs(view: str) -> str:
    """The view with its ``observed_before`` read over both tables."""
    redefined, found = _OBSERVED_BEFORE.subn(r"last_success_before(\1, c.changed_at)", view)
    assert found == 1, "the view's observed_before is not where revision 0240 expects it"
    return redefined.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)


def upgrade() -> None:
    op.create_table(
        "observation_runs",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("first_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("last_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("id_steps", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("gaps_us", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("replica_id", sa.Text(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=True),
        sa.Column("body_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "cardinality(gaps_us) = polls - 1 AND cardinality(id_steps) = polls - 1"
            " AND 0 < ALL(gaps_us) AND last_at >= first_at",
            name=op.f("ck_observation_runs_steps"),
        ),
        sa.ForeignKeyConstraint(
            ["body_sha256"],
            ["raw_bodies.sha256"],
            name=op.f("fk_observation_runs_body_sha256_raw_bodies"),
        ),
        sa.PrimaryKeyConstraint("stream", "first_at", name=op.f("pk_observation_runs")),
    )
    op.create_index(
        op.f("ix_observation_runs_stream_last_at"), "observation_runs", ["stream", "last_at"]
    )
    op.execute(RUN_POLLS)
    op.execute(LAST_SUCCESS_BEFORE)
    op.execute(_on_runs(R0210.VIEW))
    op.execute(_on_runs(R0151.CHANGES))
    op.execute(f"GRANT SELECT ON observation_runs TO {ROLE}")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTIONS} TO {ROLE}")


def downgrade() -> None:
    op.execute(R0210.VIEW)
    op.execute(R0151.CHANGES.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
    op.execute(f"DROP FUNCTION {FUNCTIONS}")
    op.drop_table("observation_runs")
