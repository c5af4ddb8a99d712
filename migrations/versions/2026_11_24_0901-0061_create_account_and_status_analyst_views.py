"""Create the analysts' current views and as-of functions of the account-side streams.

For each of the account, balances, commissions, system status and delistings: a view of
the current versions (``account_current``, ``balances_current``, ``commissions_current``,
``system_status_current``, ``delistings_current``) and a function of any instant shaped
like it (``account_as_of(t)``, ``balances_as_of(t)``, ``commissions_as_of(t)``,
``system_status_as_of(t)``, ``delistings_as_of(t)``), returning ``SETOF`` the view's row
type so that the two cannot disagree on their columns. As in revision 0040 the functions
are plain ``LANGUAGE sql STABLE`` (inlinable, run with the caller's privileges) and test
``tstzrange(valid_from, valid_to) @> t``, which each table's no-overlap GiST index
answers. All are granted to ``exmeta_reader``, which could already read the tables.

Revision ID: 0061
Revises: 0060
Create Date: 2026-11-24 09:01:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0061"
down_revision = "0060"
branch_labels = None
depends_on = None

ROLE = "exmeta_reader"
RATES = ", ".join(f"{{g}}_{side}" for side in ("maker", "taker", "buyer", "seller"))
# name -> (table, columns, what a row is)
OBJECTS = {
    "account": (
        "account_versions",
        "account, uid, account_type, maker_commission, taker_commission, buyer_commission,"
        " seller_commission, commission_rate_maker, commission_rate_taker,"
        " commission_rate_buyer, commission_rate_seller, can_trade, can_withdraw,"
        " can_deposit, brokered, require_self_trade_prevention, prevent_sor, permissions",
        "the account (key spot): commissions, permissions and flags",
    ),
    "balances": ("balance_versions", "asset, free, locked", "non-zero balances"),
    "commissions": (
        "commission_versions",
        "symbol, "
        + ", ".join(RATES.format(g=g) for g in ("standard", "special", "tax"))
        + ", discount_enabled_for_account, discount_enabled_for_symbol, discount_asset,"
        " discount",
        "the commission rates of the account per polled symbol",
    ),
    "system_status": (
        "system_status_versions",
        "status, message",
        "the system status: 0 normal, 1 system maintenance",
    ),
    "delistings": (
        "delisting_versions",
        "symbol, delist_time",
        "announced delistings still scheduled (valid_from: first seen; delist_time: effective)",
    ),
}


def upgrade() -> None:
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


def downgrade() -> None:
    for name in reversed(OBJECTS):
        op.execute(f"DROP FUNCTION {name}_as_of(timestamptz)")
        op.execute(f"DROP VIEW {name}_current")
