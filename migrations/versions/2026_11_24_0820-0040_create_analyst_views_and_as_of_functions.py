"""Create the analysts' SQL: current-state views and as-of set-returning functions.

``symbols_current`` and ``symbols_as_of(t)`` / ``symbol_as_of(symbol, t)`` return one row
per symbol with its typed columns and the most-queried filter values pivoted in, so an
analyst need not know that filters are versioned apart from symbols. All three are built
from one query text, so the view and the functions cannot drift apart. The as-of forms
test ``tstzrange(valid_from, valid_to) @> t``, the expression the exclusion constraints'
GiST indexes are built on, so they are index lookups rather than scans. The functions are
plain ``LANGUAGE sql STABLE`` (neither STRICT nor SECURITY DEFINER) so that PostgreSQL can
inline them into the caller's query, and so that they read with the caller's privileges.

Revision ID: 0040
Revises: 0031
Create Date: 2026-11-24 08:20:00+00:00
"""

from __future__ import annotations

from alembic import op

revision = "0040"
down_revision = "0031"
branch_labels = None
depends_on = None

SYMBOL_COLUMNS = """
    symbol text, status text, base_asset text, quote_asset text,
    base_asset_precision smallint, quote_precision smallint, quote_asset_precision smallint,
    base_commission_precision smallint, quote_commission_precision smallint,
    order_types text[], iceberg_allowed boolean, oco_allowed boolean, oto_allowed boolean,
    quote_order_qty_market_allowed boolean, allow_trailing_stop boolean,
    cancel_replace_allowed boolean, amend_allowed boolean, is_spot_trading_allowed boolean,
    is_margin_trading_allowed boolean, permissions text[], permission_sets jsonb,
    default_self_trade_prevention_mode text, allowed_self_trade_prevention_modes text[],
    tick_size numeric, min_price numeric, max_price numeric,
    min_qty numeric, max_qty numeric, step_size numeric,
    market_min_qty numeric, market_max_qty numeric,
    min_notional numeric, max_notional numeric,
    valid_from timestamptz, valid_to timestamptz, raw jsonb
"""

# {s} and {f} are the predicates choosing the symbol versions and the filter versions.
# min_notional comes from NOTIONAL, or from MIN_NOTIONAL on symbols from before 2023-08
# that still carry it. valid_from / valid_to bound the instants at which this whole row
# (the symbol and every one of its filters) was in force.
SYMBOLS_QUERY = """
SELECT s.symbol, s.status, s.base_asset, s.quote_asset,
       s.base_asset_precision, s.quote_precision, s.quote_asset_precision,
       s.base_commission_precision, s.quote_commission_precision,
       s.order_types, s.iceberg_allowed, s.oco_allowed, s.oto_allowed,
       s.quote_order_qty_market_allowed, s.allow_trailing_stop,
       s.cancel_replace_allowed, s.amend_allowed, s.is_spot_trading_allowed,
       s.is_margin_trading_allowed, s.permissions, s.permission_sets,
       s.default_self_trade_prevention_mode, s.allowed_self_trade_prevention_modes,
       f.tick_size, f.min_price, f.max_price, f.min_qty, f.max_qty, f.step_size,
       f.market_min_qty, f.market_max_qty,
       coalesce(f.notional_min, f.legacy_min_notional) AS min_notional, f.max_notional,
       greatest(s.valid_from, f.valid_from) AS valid_from,
       least(s.valid_to, f.valid_to) AS valid_to, s.raw
FROM symbol_versions s
CROSS JOIN LATERAL (
    SELECT max(fv.tick_size) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS tick_size,
           max(fv.min_price) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS min_price,
           max(fv.max_price) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS max_price,
           max(fv.min_qty) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS min_qty,
           max(fv.max_qty) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS max_qty,
           max(fv.step_size) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS step_size,
           max(fv.min_qty) FILTER (WHERE fv.filter_type = 'MARKET_LOT_SIZE') AS market_min_qty,
           max(fv.max_qty) FILTER (WHERE fv.filter_type = 'MARKET_LOT_SIZE') AS market_max_qty,
           max(fv.min_notional) FILTER (WHERE fv.filter_type = 'NOTIONAL') AS notional_min,
           max(fv.min_notional) FILTER (WHERE fv.filter_type = 'MIN_NOTIONAL')
               AS legacy_min_notional,
           max(fv.max_notional) FILTER (WHERE fv.filter_type = 'NOTIONAL') AS max_notional,
           max(fv.valid_from) AS valid_from,
           min(fv.valid_to) AS valid_to
    FROM symbol_filter_versions fv
    WHERE fv.symbol = s.symbol AND {f}
) f
WHERE {s}
"""

CURRENT = "{t}.valid_to IS NULL"
AS_OF = "tstzrange({t}.valid_from, {t}.valid_to) @> as_of"


def _symbols(when: str, extra: str = "") -> str:
    return SYMBOLS_QUERY.format(s=when.format(t="s") + extra, f=when.format(t="fv"))


RATE_LIMITS_QUERY = """
SELECT rate_limit_type, "interval", interval_num, limit_value, valid_from, valid_to, raw
FROM rate_limit_versions r
WHERE {when}
"""
RATE_LIMIT_COLUMNS = """
    rate_limit_type text, "interval" text, interval_num integer, limit_value bigint,
    valid_from timestamptz, valid_to timestamptz, raw jsonb
"""


def _comment(kind: str, name: str, text: str) -> str:
    return f"COMMENT ON {kind} {name} IS '{text}'"


def upgrade() -> None:
    op.execute(f"CREATE VIEW symbols_current AS {_symbols(CURRENT)}")
    op.execute(
        "CREATE FUNCTION symbols_as_of(as_of timestamptz)"
        f" RETURNS TABLE ({SYMBOL_COLUMNS}) LANGUAGE sql STABLE"
        f" AS $fn$ {_symbols(AS_OF)} $fn$"
    )
    op.execute(
        "CREATE FUNCTION symbol_as_of(symbol_name text, as_of timestamptz)"
        f" RETURNS TABLE ({SYMBOL_COLUMNS}) LANGUAGE sql STABLE"
        f" AS $fn$ {_symbols(AS_OF, ' AND s.symbol = symbol_name')} $fn$"
    )
    op.execute(
        "CREATE VIEW rate_limits_current AS " + RATE_LIMITS_QUERY.format(when=CURRENT.format(t="r"))
    )
    op.execute(
        "CREATE FUNCTION rate_limits_as_of(as_of timestamptz)"
        f" RETURNS TABLE ({RATE_LIMIT_COLUMNS}) LANGUAGE sql STABLE"
        f" AS $fn$ {RATE_LIMITS_QUERY.format(when=AS_OF.format(t='r'))} $fn$"
    )
    for statement in (
        _comment("VIEW", "symbols_current", "every listed symbol with its main filter values"),
        _comment(
            "FUNCTION",
            "symbols_as_of(timestamptz)",
            "every symbol listed at the instant, shaped like symbols_current",
        ),
        _comment(
            "FUNCTION",
            "symbol_as_of(text, timestamptz)",
            "one symbol at the instant (no row: not listed then)",
        ),
        _comment("VIEW", "rate_limits_current", "the rate limits in force now"),
        _comment("FUNCTION", "rate_limits_as_of(timestamptz)", "the rate limits at the instant"),
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION rate_limits_as_of(timestamptz)")
    op.execute("DROP VIEW rate_limits_current")
    op.execute("DROP FUNCTION symbol_as_of(text, timestamptz)")
    op.execute("DROP FUNCTION symbols_as_of(timestamptz)")
    op.execute("DROP VIEW symbols_current")
