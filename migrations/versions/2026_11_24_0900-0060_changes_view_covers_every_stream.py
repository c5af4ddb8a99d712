"""Extend the ``changes`` view to the account, commission, system-status and delistings streams.

The SQL twin of ``GET /v1/changes`` now lists, besides the exchange_info entities, the
account (entity ``account``, key ``spot``), each symbol's commission (``commission``),
the system status (``system_status``, key ``binance``) and announced delistings
(``delisting``, by symbol), each from its own stream, with ``observed_before`` taken
from that stream's observations. Balances stay out, as in the API: they change with
every fill. The account and commission objects nest their rates, so their nested fields
are one row each (``commissionRates.maker``), through ``flatten_fields(jsonb)``, which
core.diff.flatten mirrors. The view keeps its columns, so ``CREATE OR REPLACE`` keeps its
grant; ``exmeta_reader`` could already read the account tables it draws from.

The branches of revision 0042 are reused as they are (imported from it), so the
exchange_info rows cannot drift from what that revision defined.

Revision ID: 0060
Revises: 0042
Create Date: 2026-11-24 09:00:00+00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0060"
down_revision = "0042"
branch_labels = None
depends_on = None


def _revision_module(rev: str) -> ModuleType:
    [path] = Path(__file__).parent.glob(f"*-{rev}_*.py")
    spec = importlib.util.spec_from_file_location(f"exmeta_revision_{rev}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R0042 = _revision_module("0042")

FLATTEN = """
CREATE FUNCTION flatten_fields(obj jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $fn$
    SELECT coalesce(jsonb_object_agg(f.name, f.value), '{}')
    FROM (
        SELECT j.key, j.value FROM jsonb_each(obj) j WHERE jsonb_typeof(j.value) <> 'object'
        UNION ALL
        SELECT j.key || '.' || n.key, n.value
        FROM jsonb_each(obj) j CROSS JOIN LATERAL jsonb_each(j.value) n
        WHERE jsonb_typeof(j.value) = 'object'
    ) AS f(name, value)
$fn$
"""

# entity -> the stream whose observations date it (core.changes._WHOLE_ROW_TABLES).
STREAM_OF = {
    "symbol": "exchange_info",
    "rate_limit": "exchange_info",
    "exchange_filter": "exchange_info",
    "account": "account",
    "commission": "account_commission",
    "system_status": "system_status",
    "delisting": "delistings",
}
EVENTS = {
    **R0042.EVENTS,
    "account_events": R0042._events("account_versions", ("account",)),
    "commission_events": R0042._events("commission_versions", ("symbol",)),
    "system_status_events": R0042._events("system_status_versions", ("system",)),
    "delisting_events": R0042._events("delisting_versions", ("symbol",)),
}


def _flat(events: str, key: str) -> str:
    """The changes of ``events`` that are neither listing nor delisting, nested fields lifted."""
    return (
        f"(SELECT {key}, changed_at, observation_id, flatten_fields(old) AS old,"
        f" flatten_fields(new) AS new FROM {events} WHERE old IS NOT NULL AND new IS NOT NULL)"
    )


BRANCHES = (
    *R0042.BRANCHES,
    R0042._fields("account", "e.account", _flat("account_events", "account")),
    R0042._listings("account", "e.account", "account_events", "e.old", "e.new"),
    R0042._fields("commission", "e.symbol", _flat("commission_events", "symbol")),
    R0042._listings("commission", "e.symbol", "commission_events", "e.old", "e.new"),
    R0042._fields("system_status", "e.system", R0042._both("system_status_events")),
    R0042._listings("system_status", "e.system", "system_status_events", "e.old", "e.new"),
    R0042._fields("delisting", "e.symbol", R0042._both("delisting_events")),
    R0042._listings("delisting", "e.symbol", "delisting_events", "e.old", "e.new"),
)
STREAMS = ", ".join(f"('{entity}', '{stream}')" for entity, stream in STREAM_OF.items())
VIEW = (
    "CREATE OR REPLACE VIEW changes AS WITH "
    + ",\n".join(f"{name} AS NOT MATERIALIZED ({sql})" for name, sql in EVENTS.items())
    + ",\nall_changes AS ("
    + "\nUNION ALL\n".join(BRANCHES)
    + f""")
SELECT c.changed_at,
       (SELECT max(o.observed_at) FROM observations o
        WHERE o.stream = s.stream AND o.outcome IN ('changed', 'unchanged')
          AND o.observed_at < c.changed_at) AS observed_before,
       c.observation_id, s.stream, c.entity, c.key, c.field, c.old, c.new
FROM all_changes c JOIN (VALUES {STREAMS}) AS s(entity, stream) ON s.entity = c.entity
"""
)
COMMENT = (
    "COMMENT ON VIEW changes IS 'every change of the symbols, rate limits, exchange filters,"
    " account, commissions, system status and delistings, field by field (balances excluded);"
    " ORDER BY changed_at, entity, key, field'"
)


def upgrade() -> None:
    op.execute(FLATTEN)
    op.execute(
        "COMMENT ON FUNCTION flatten_fields(jsonb) IS"
        " 'the object with its nested objects'' fields lifted to the top as parent.child'"
    )
    op.execute(VIEW)
    op.execute(COMMENT)


def downgrade() -> None:
    op.execute(R0042.VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
    op.execute(
        "COMMENT ON VIEW changes IS 'every change of the exchange_info entities, field by field;"
        " ORDER BY changed_at, entity, key, field'"
    )
    op.execute("DROP FUNCTION flatten_fields(jsonb)")
