"""Create the ``changes`` view: every change of the exchange_info entities, field by field.

The SQL twin of ``GET /v1/changes`` (core/changes.py), for analysts: one row per changed
field with ``changed_at`` (the observation that saw it), ``observed_before`` (the
successful one before: the change happened in between), ``observation_id``, ``stream``,
``entity``, ``key``, ``field``, ``old`` and ``new`` (jsonb, as Binance sent them). A
listing is one row of the field ``listed`` from NULL to the whole object, filters
included, a delisting the reverse. Each table contributes its versions paired with their
predecessors (a change or a listing, dated ``valid_from``) and its closed versions with
no successor (a delisting, dated ``valid_to``), as a UNION ALL of plain selections in
CTEs that are NOT MATERIALIZED (each is read several times, which would otherwise
materialise it whole), so that a condition on ``changed_at`` reaches each table's scan.
Granted to ``exmeta_reader``.

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-24 08:02:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def _events(table: str, keys: tuple[str, ...]) -> str:
    """(key columns, changed_at, old, new, observation_id) of every change of ``table``."""
    cols_n = ", ".join(f"n.{k}" for k in keys)
    cols_o = ", ".join(f"o.{k}" for k in keys)
    same_key = " AND ".join(f"o.{k} = n.{k}" for k in keys)
    return f"""
        SELECT {cols_n}, n.valid_from AS changed_at, o.raw AS old, n.raw AS new,
               n.opened_by AS observation_id
        FROM {table} n LEFT JOIN {table} o ON {same_key} AND o.valid_to = n.valid_from
        UNION ALL
        SELECT {cols_o}, o.valid_to, o.raw, NULL, o.closed_by
        FROM {table} o
        WHERE o.valid_to IS NOT NULL
          AND NOT EXISTS (SELECT FROM {table} n WHERE {same_key} AND n.valid_from = o.valid_to)
    """


def _fields(entity: str, key: str, source: str, prefix: str = "''") -> str:
    """One row per field that differs between ``old`` and ``new`` of changes in ``source``."""
    return f"""
        SELECT e.changed_at, e.observation_id, '{entity}'::text AS entity, {key} AS key,
               {prefix} || k.field AS field, e.old -> k.field AS old, e.new -> k.field AS new
        FROM {source} e
        CROSS JOIN LATERAL (
            SELECT jsonb_object_keys(coalesce(e.old, '{{}}'))
            UNION SELECT jsonb_object_keys(coalesce(e.new, '{{}}'))
        ) AS k(field)
        WHERE (e.old -> k.field) IS DISTINCT FROM (e.new -> k.field)
    """


def _listings(entity: str, key: str, source: str, old: str, new: str) -> str:
    return f"""
        SELECT e.changed_at, e.observation_id, '{entity}'::text, {key}, 'listed'::text,
               {old}, {new}
        FROM {source} e
        WHERE e.old IS NULL OR e.new IS NULL
    """


def _filters_of(symbol: str, bound: str, at: str) -> str:
    return (
        "(SELECT coalesce(jsonb_agg(f.raw ORDER BY f.filter_type), '[]')"
        f" FROM symbol_filter_versions f WHERE f.symbol = {symbol} AND f.{bound} = {at})"
    )


RATE_LIMIT_KEY = "e.rate_limit_type || ':' || e.interval || ':' || e.interval_num"
EVENTS = {
    "symbol_events": _events("symbol_versions", ("symbol",)),
    "filter_events": _events("symbol_filter_versions", ("symbol", "filter_type")),
    "rate_limit_events": _events(
        "rate_limit_versions", ("rate_limit_type", "interval", "interval_num")
    ),
    "exchange_filter_events": _events("exchange_filter_versions", ("filter_type",)),
}


def _both(events: str) -> str:
    """The changes of ``events`` that are neither a listing nor a delisting."""
    return f"(SELECT * FROM {events} WHERE old IS NOT NULL AND new IS NOT NULL)"


# A filter opening or closing with its symbol is part of the listing or delisting.
FILTER_CHANGES = (
    "(SELECT f.* FROM filter_events f WHERE NOT EXISTS ("
    " SELECT FROM symbol_events s WHERE s.symbol = f.symbol AND s.changed_at = f.changed_at"
    " AND (s.old IS NULL OR s.new IS NULL)))"
)
SYMBOL_DELISTED = (
    "e.old || jsonb_build_object('filters', "
    + _filters_of("e.symbol", "valid_to", "e.changed_at")
    + ")"
)
SYMBOL_LISTED = (
    "e.new || jsonb_build_object('filters', "
    + _filters_of("e.symbol", "valid_from", "e.changed_at")
    + ")"
)
BRANCHES = (
    _fields("symbol", "e.symbol", _both("symbol_events")),
    _listings("symbol", "e.symbol", "symbol_events", SYMBOL_DELISTED, SYMBOL_LISTED),
    _fields("symbol", "e.symbol", FILTER_CHANGES, "'filters.' || e.filter_type || '.'"),
    _fields("rate_limit", RATE_LIMIT_KEY, _both("rate_limit_events")),
    _listings("rate_limit", RATE_LIMIT_KEY, "rate_limit_events", "e.old", "e.new"),
    _fields("exchange_filter", "e.filter_type", _both("exchange_filter_events")),
    _listings("exchange_filter", "e.filter_type", "exchange_filter_events", "e.old", "e.new"),
)
VIEW = (
    "CREATE VIEW changes AS WITH "
    + ",\n".join(f"{name} AS NOT MATERIALIZED ({sql})" for name, sql in EVENTS.items())
    + ",\nall_changes AS ("
    + "\nUNION ALL\n".join(BRANCHES)
    + """)
SELECT c.changed_at,
       (SELECT max(o.observed_at) FROM observations o
        WHERE o.stream = 'exchange_info' AND o.outcome IN ('changed', 'unchanged')
          AND o.observed_at < c.changed_at) AS observed_before,
       c.observation_id, 'exchange_info'::text AS stream, c.entity, c.key, c.field, c.old, c.new
FROM all_changes c
"""
)


def upgrade() -> None:
    op.execute(VIEW)
    op.execute(
        "COMMENT ON VIEW changes IS 'every change of the exchange_info entities, field by field;"
        " ORDER BY changed_at, entity, key, field'"
    )
    op.execute("GRANT SELECT ON changes TO exmeta_reader")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON changes FROM exmeta_reader")
    op.execute("DROP VIEW changes")
