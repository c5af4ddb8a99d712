"""Create the margin streams' tables, their analyst views, and their rows of ``changes``.

``margin_pair_versions`` (cross pairs, ``GET /sapi/v1/margin/allPairs``),
``margin_isolated_pair_versions`` (isolated pairs, ``.../isolated/allPairs``): per symbol
``is_margin_trade``, ``is_buy_allowed``, ``is_sell_allowed``, ``delist_time``, base, quote
and Binance's ``id`` (cross only). Two tables because two streams write them and a
snapshot closes what its answer lacks in its own tables. ``margin_delisting_versions``:
the margin delist schedule per ``(type, name)`` (``cross`` asset or ``isolated`` symbol).
All have the shape and indexes of every versioned table (core.models.VersionMixin), built
by revision 0160's builder as revision 0200 does.

For analysts: ``margin_pairs_current`` (both kinds, with a ``type`` column ``cross`` or
``isolated``) and ``margin_delistings_current``, and their ``*_as_of(t)`` functions
returning ``SETOF`` the view's row type; granted to ``exmeta_reader`` with the tables.

The ``changes`` view gets ``margin_pair`` and ``margin_isolated_pair`` (key: the symbol)
and ``margin_delisting`` (key ``type:name``, as core.changes joins a key), each under its
own stream and the market ``spot`` (margin is api.binance.com's), built on revision 0200's
view text (imported, so it cannot drift).

Revision ID: 0210
Revises: 0200
Create Date: 2026-12-03 12:00:00+00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0210"
down_revision = "0200"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"


def _revision_module(rev: str) -> ModuleType:
    [path] = Path(__file__).parent.glob(f"*-{rev}_*.py")
    spec = importlib.util.spec_from_file_location(f"exmeta_revision_{rev}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R0200 = _revision_module("0200")
R0180 = R0200.R0180
R0160 = R0200.R0160
R0042 = R0200.R0042


def _pair_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("pair_id", sa.BigInteger(), nullable=True),
        sa.Column("base", sa.Text(), nullable=True),
        sa.Column("quote", sa.Text(), nullable=True),
        sa.Column("is_margin_trade", sa.Boolean(), nullable=False),
        sa.Column("is_buy_allowed", sa.Boolean(), nullable=False),
        sa.Column("is_sell_allowed", sa.Boolean(), nullable=False),
        sa.Column("delist_time", postgresql.TIMESTAMP(timezone=True), nullable=True),
    ]


def _delisting_columns() -> list[sa.Column[object]]:
    return [sa.Column("delist_time", postgresql.TIMESTAMP(timezone=True), nullable=False)]


SYMBOL = [("symbol", sa.Text())]
TABLES = {
    "margin_pair_versions": (SYMBOL, _pair_columns, False),
    "margin_isolated_pair_versions": (SYMBOL, _pair_columns, False),
    "margin_delisting_versions": (
        [("type", sa.Text()), ("name", sa.Text())],
        _delisting_columns,
        False,
    ),
}

PAIR_COLUMNS = (
    "symbol, pair_id, base, quote, is_margin_trade, is_buy_allowed, is_sell_allowed, delist_time"
)
PAIRS = (
    f"SELECT 'cross'::text AS type, {PAIR_COLUMNS}, valid_from, valid_to, raw"
    " FROM margin_pair_versions v {where}"
    f" UNION ALL SELECT 'isolated'::text, {PAIR_COLUMNS}, valid_from, valid_to, raw"
    " FROM margin_isolated_pair_versions v {where}"
)
DELISTINGS = "SELECT type, name, delist_time, valid_from, valid_to, raw FROM margin_delisting_versions v {where}"
CURRENT = "WHERE v.valid_to IS NULL"
AS_OF = "WHERE tstzrange(v.valid_from, v.valid_to) @> as_of"
# name -> (query with {where}, what a row is)
OBJECTS = {
    "margin_pairs": (
        PAIRS,
        "each margin pair (type cross or isolated): could it be margined, bought, sold, and"
        " its delist time",
    ),
    "margin_delistings": (
        DELISTINGS,
        "announced margin delistings: cross margin assets and isolated margin symbols, with"
        " when each takes effect",
    ),
}

# -- the changes view ----------------------------------------------------------------------

DELISTING_KEY = "e.type || ':' || e.name"
# stream -> (its CTE of changes, entity, table, key columns, key expression)
MARGIN = {
    "margin_pairs": (
        "margin_pair_changes",
        "margin_pair",
        "margin_pair_versions",
        ("symbol",),
        "e.symbol",
    ),
    "margin_isolated_pairs": (
        "margin_isolated_pair_changes",
        "margin_isolated_pair",
        "margin_isolated_pair_versions",
        ("symbol",),
        "e.symbol",
    ),
    "margin_delistings": (
        "margin_delisting_changes",
        "margin_delisting",
        "margin_delisting_versions",
        ("type", "name"),
        DELISTING_KEY,
    ),
}
EVENTS = {
    **R0200.EVENTS,
    **{
        f"{entity}_events": R0042._events(table, keys)
        for _, entity, table, keys, _ in MARGIN.values()
    },
}
MARKET_CHANGES = {
    **R0200.MARKET_CHANGES,
    **{
        cte: "\nUNION ALL\n".join(
            (
                R0042._fields(entity, key, R0042._both(f"{entity}_events")),
                R0042._listings(entity, key, f"{entity}_events", "e.old", "e.new"),
            )
        )
        for cte, entity, _, _, key in MARGIN.values()
    },
}
ALL_CHANGES = R0200.ALL_CHANGES + "".join(
    f"\nUNION ALL\nSELECT c.*, '{stream}'::text, 'spot'::text FROM {cte} c"
    for stream, (cte, *_) in MARGIN.items()
)
VIEW = f"""CREATE OR REPLACE VIEW changes AS WITH {R0180._ctes(EVENTS)},
{R0180._ctes(MARKET_CHANGES)},
all_changes AS ({ALL_CHANGES})
SELECT c.changed_at,
       (SELECT max(o.observed_at) FROM observations o
        WHERE o.stream = c.stream AND o.outcome IN ('changed', 'unchanged')
          AND o.observed_at < c.changed_at) AS observed_before,
       c.observation_id, c.stream, c.entity, c.key, c.field, c.old, c.new, c.market
FROM all_changes c
"""
COMMENT = (
    "COMMENT ON VIEW changes IS 'every change of the symbols and contracts, rate limits,"
    " exchange filters and USD-M margin assets of every market, of the account,"
    " commissions, system status and delistings, of the wallet''s coins and networks"
    " (wallet_coin, wallet_network keyed COIN:NETWORK), and of the margin pairs"
    " (margin_pair, margin_isolated_pair) and margin delistings (margin_delisting keyed"
    " TYPE:NAME), field by field (balances excluded); market: spot, usdm or coinm;"
    " ORDER BY changed_at, entity, key, field'"
)


def upgrade() -> None:
    for table, shape in TABLES.items():
        R0160.TABLES[table] = shape  # 0160's builder (this import's copy), with these tables
        R0160._create(table)
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {ROLE}")
    for name, (query, what) in OBJECTS.items():
        op.execute(f"CREATE VIEW {name}_current AS {query.format(where=CURRENT)}")
        op.execute(
            f"CREATE FUNCTION {name}_as_of(as_of timestamptz) RETURNS SETOF {name}_current"
            f" LANGUAGE sql STABLE AS $fn$ {query.format(where=AS_OF)} $fn$"
        )
        op.execute(f"COMMENT ON VIEW {name}_current IS '{what}, now'")
        op.execute(f"COMMENT ON FUNCTION {name}_as_of(timestamptz) IS '{what}, at the instant'")
        op.execute(f"GRANT SELECT ON {name}_current TO {ROLE}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {name}_as_of(timestamptz) TO {ROLE}")
    op.execute(VIEW)
    op.execute(COMMENT)


def downgrade() -> None:
    op.execute(R0200.VIEW)
    op.execute(R0200.COMMENT)
    for name in reversed(OBJECTS):
        op.execute(f"DROP FUNCTION {name}_as_of(timestamptz)")
        op.execute(f"DROP VIEW {name}_current")
    for table in reversed(TABLES):
        op.drop_table(table)
