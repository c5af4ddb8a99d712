"""Create the wallet stream's tables, its analyst views, and its rows of ``changes``.

``wallet_coin_versions`` (a coin's wallet-wide switches) and ``wallet_network_versions``
(per coin and network: deposit and withdrawal switches with their messages, fees,
minimums, confirmations) have the shape and indexes of every versioned table
(core.models.VersionMixin), as revision 0160 builds them. Neither holds a balance: the
writer takes them out of the body first (core.wallet).

For analysts, as revision 0061 does for the account-side streams: ``wallet_networks_current``
and ``wallet_coins_current``, and ``wallet_networks_as_of(t)`` / ``wallet_coins_as_of(t)``
returning ``SETOF`` the view's row type, ``LANGUAGE sql STABLE`` with
``tstzrange(valid_from, valid_to) @> t``; all granted to ``exmeta_reader`` (and so to
``exmeta_api``, its member), with the tables.

The ``changes`` view gets the entities ``wallet_coin`` (key: the coin) and
``wallet_network`` (key ``COIN:NETWORK``, as core.changes joins a key) under the stream
``wallet_networks`` and the market ``spot`` (the wallet is api.binance.com's), as one more
arm with its stream and market as constants. ``CREATE OR REPLACE`` keeps the columns and
the grant; revision 0180's events and arms are imported from it, so they cannot drift.

Revision ID: 0200
Revises: 0180
Create Date: 2026-12-03 11:00:00+00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0200"
down_revision = "0180"
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


R0160 = _revision_module("0160")
R0180 = _revision_module("0180")
R0042 = R0180.R0042


def _coin_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("deposit_all_enable", sa.Boolean(), nullable=True),
        sa.Column("withdraw_all_enable", sa.Boolean(), nullable=True),
        sa.Column("trading", sa.Boolean(), nullable=True),
        sa.Column("is_legal_money", sa.Boolean(), nullable=True),
    ]


def _network_columns() -> list[sa.Column[object]]:
    decimals = (
        "withdraw_fee",
        "withdraw_min",
        "withdraw_max",
        "withdraw_integer_multiple",
        "withdraw_internal_min",
        "deposit_dust",
    )
    return [
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=True),
        sa.Column("deposit_enable", sa.Boolean(), nullable=False),
        sa.Column("withdraw_enable", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.Numeric(), nullable=True) for name in decimals),
        sa.Column("min_confirm", sa.Integer(), nullable=True),
        sa.Column("unlock_confirm", sa.Integer(), nullable=True),
        sa.Column("busy", sa.Boolean(), nullable=True),
        sa.Column("deposit_desc", sa.Text(), nullable=True),
        sa.Column("withdraw_desc", sa.Text(), nullable=True),
        sa.Column("special_tips", sa.Text(), nullable=True),
        sa.Column("special_withdraw_tips", sa.Text(), nullable=True),
        sa.Column("estimated_arrival_time", sa.Integer(), nullable=True),
        sa.Column("same_address", sa.Boolean(), nullable=True),
        sa.Column("contract_address", sa.Text(), nullable=True),
    ]


TABLES = {
    "wallet_coin_versions": ([("coin", sa.Text())], _coin_columns, False),
    "wallet_network_versions": (
        [("coin", sa.Text()), ("network", sa.Text())],
        _network_columns,
        False,
    ),
}

NETWORK_COLUMNS = (
    "coin, network, name, is_default, deposit_enable, withdraw_enable, withdraw_fee,"
    " withdraw_min, withdraw_max, withdraw_integer_multiple, withdraw_internal_min,"
    " deposit_dust, min_confirm, unlock_confirm, busy, deposit_desc, withdraw_desc,"
    " special_tips, special_withdraw_tips, estimated_arrival_time, same_address,"
    " contract_address"
)
COIN_COLUMNS = "coin, name, deposit_all_enable, withdraw_all_enable, trading, is_legal_money"
# name -> (table, columns, what a row is)
OBJECTS = {
    "wallet_networks": (
        "wallet_network_versions",
        NETWORK_COLUMNS,
        "each coin''s deposit and withdrawal switches, fees and minimums per network",
    ),
    "wallet_coins": (
        "wallet_coin_versions",
        COIN_COLUMNS,
        "each coin''s wallet-wide switches (depositAllEnable, withdrawAllEnable, trading)",
    ),
}

# -- the changes view ----------------------------------------------------------------------

NETWORK_KEY = "e.coin || ':' || e.network"
EVENTS = {
    **R0180.EVENTS,
    "wallet_coin_events": R0042._events("wallet_coin_versions", ("coin",)),
    "wallet_network_events": R0042._events("wallet_network_versions", ("coin", "network")),
}
WALLET_BRANCHES = (
    R0042._fields("wallet_coin", "e.coin", R0042._both("wallet_coin_events")),
    R0042._listings("wallet_coin", "e.coin", "wallet_coin_events", "e.old", "e.new"),
    R0042._fields("wallet_network", NETWORK_KEY, R0042._both("wallet_network_events")),
    R0042._listings("wallet_network", NETWORK_KEY, "wallet_network_events", "e.old", "e.new"),
)
MARKET_CHANGES = {**R0180.MARKET_CHANGES, "wallet_changes": "\nUNION ALL\n".join(WALLET_BRANCHES)}
ALL_CHANGES = (
    R0180.ALL_CHANGES
    + "\nUNION ALL\nSELECT c.*, 'wallet_networks'::text, 'spot'::text FROM wallet_changes c"
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
    " commissions, system status and delistings, and of the wallet''s coins and networks"
    " (wallet_coin, wallet_network keyed COIN:NETWORK), field by field (balances excluded);"
    " market: spot, usdm or coinm; ORDER BY changed_at, entity, key, field'"
)


def upgrade() -> None:
    for table, shape in TABLES.items():
        R0160.TABLES[table] = shape  # 0160's builder (this import's copy), with these tables
        R0160._create(table)
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {ROLE}")
    for name, (table, columns, what) in OBJECTS.items():
        select = f"SELECT {columns}, valid_from, valid_to, raw FROM {table} v"
        op.execute(f"CREATE VIEW {name}_current AS {select} WHERE v.valid_to IS NULL")
        op.execute(
            f"CREATE FUNCTION {name}_as_of(as_of timestamptz) RETURNS SETOF {name}_current"
            f" LANGUAGE sql STABLE AS $fn$ {select}"
            " WHERE tstzrange(v.valid_from, v.valid_to) @> as_of $fn$"
        )
        op.execute(f"COMMENT ON VIEW {name}_current IS '{what}, now'")
        op.execute(f"COMMENT ON FUNCTION {name}_as_of(timestamptz) IS '{what}, at the instant'")
        op.execute(f"GRANT SELECT ON {name}_current TO {ROLE}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {name}_as_of(timestamptz) TO {ROLE}")
    op.execute(VIEW)
    op.execute(COMMENT)


def downgrade() -> None:
    op.execute(R0180.VIEW)
    op.execute(R0180.COMMENT)
    for name in reversed(OBJECTS):
        op.execute(f"DROP FUNCTION {name}_as_of(timestamptz)")
        op.execute(f"DROP VIEW {name}_current")
    for table in reversed(TABLES):
        op.drop_table(table)
