"""Give analysts the futures markets in SQL, by market word; ``changes`` covers them too.

Like revision 0040 for spot: ``futures_symbols_current`` (``market`` first: ``usdm``,
``coinm``), ``futures_symbols_as_of(market, t)`` and ``futures_symbol_as_of(market,
symbol, t)`` return one row per contract with its typed columns and the most-queried
filter values pivoted in; ``market_rate_limits_current`` and an overload
``rate_limits_as_of(market, t)`` answer every market's rate limits (``spot`` included).
Spot's objects keep their names, signatures and rows: the futures shape differs from a
spot symbol's, and an existing ``rate_limits_current`` query must not start summing
three markets. View and functions share one query text per market, the functions
return ``SETOF`` the view's row type, and they are ``LANGUAGE sql STABLE`` with
``tstzrange(valid_from, valid_to) @> as_of``, as in 0040 (inlinable, index lookups).

Each market's rows are one arm of a UNION ALL whose condition names the market as a
constant, so PostgreSQL drops the other markets' arms when it plans a call (and
``WHERE market = 'usdm'`` on a view): asking USD-M reads no COIN-M table. A market word
the function does not know is an error (``checked_market``, SQLSTATE 22023), raised
before anything is read: a typo answering "no contracts" would read as a fact.

The ``changes`` view gets the futures streams' entities with the names and keys of
spot's (``symbol`` with its ``filters.<TYPE>.<field>``, ``rate_limit``,
``exchange_filter``, and USD-M's ``asset``) under their streams
(``usdm_exchange_info``, ``coinm_exchange_info``), and a ``market`` column at the end
(``CREATE OR REPLACE VIEW`` can only append; the grant stays). The branches are
revision 0042's, imported from it and pointed at each market's tables, so a futures
change is built like a spot one; revision 0060's spot rows are kept as they are. A
listing's filters are ordered byte-wise (``COLLATE "C"``), as core.changes orders them.

Revision ID: 0180
Revises: 0171
Create Date: 2026-12-03 08:10:00+00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0180"
down_revision = "0171"
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


R0040 = _revision_module("0040")
R0060 = _revision_module("0060")
R0042 = R0060.R0042

# market -> (its exchangeInfo stream, whether it versions margin assets)
FUTURES = {"usdm": ("usdm_exchange_info", True), "coinm": ("coinm_exchange_info", False)}
RATE_LIMIT_TABLES = {
    "spot": "rate_limit_versions",
    "usdm": "usdm_rate_limit_versions",
    "coinm": "coinm_rate_limit_versions",
}

CHECKED_MARKET = """
CREATE FUNCTION checked_market(market text, known text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    IF market = ANY(known) THEN
        RETURN market;
    END IF;
    RAISE EXCEPTION 'unknown market %: one of %', coalesce(quote_literal(market), 'NULL'),
        array_to_string(known, ', ')
        USING ERRCODE = 'invalid_parameter_value';
END
$fn$
"""

# {s} and {f} choose the contract versions and the filter versions, as in 0040. A
# contract's minimum notional is MIN_NOTIONAL's ``notional`` (spot's NOTIONAL has
# ``minNotional``); named min_notional as on spot, for the same question.
FUTURES_SYMBOLS_QUERY = """
SELECT '{market}'::text AS market, s.symbol, s.status, s.pair, s.contract_type,
       s.delivery_date, s.onboard_date, s.contract_size, s.margin_asset, s.base_asset,
       s.quote_asset, s.underlying_type, s.underlying_sub_type, s.price_precision,
       s.quantity_precision, s.base_asset_precision, s.quote_precision,
       s.equal_qty_precision, s.trigger_protect, s.liquidation_fee, s.market_take_bound,
       s.maint_margin_percent, s.required_margin_percent, s.max_move_order_limit,
       s.order_types, s.time_in_force, s.permission_sets,
       f.tick_size, f.min_price, f.max_price, f.min_qty, f.max_qty, f.step_size,
       f.market_min_qty, f.market_max_qty, f.min_notional,
       f.multiplier_up, f.multiplier_down, f.multiplier_decimal,
       greatest(s.valid_from, f.valid_from) AS valid_from,
       least(s.valid_to, f.valid_to) AS valid_to, s.raw
FROM {market}_symbol_versions s
CROSS JOIN LATERAL (
    SELECT max(fv.tick_size) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS tick_size,
           max(fv.min_price) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS min_price,
           max(fv.max_price) FILTER (WHERE fv.filter_type = 'PRICE_FILTER') AS max_price,
           max(fv.min_qty) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS min_qty,
           max(fv.max_qty) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS max_qty,
           max(fv.step_size) FILTER (WHERE fv.filter_type = 'LOT_SIZE') AS step_size,
           max(fv.min_qty) FILTER (WHERE fv.filter_type = 'MARKET_LOT_SIZE') AS market_min_qty,
           max(fv.max_qty) FILTER (WHERE fv.filter_type = 'MARKET_LOT_SIZE') AS market_max_qty,
           max(fv.notional) FILTER (WHERE fv.filter_type = 'MIN_NOTIONAL') AS min_notional,
           max(fv.multiplier_up) FILTER (WHERE fv.filter_type = 'PERCENT_PRICE')
               AS multiplier_up,
           max(fv.multiplier_down) FILTER (WHERE fv.filter_type = 'PERCENT_PRICE')
               AS multiplier_down,
           max(fv.multiplier_decimal) FILTER (WHERE fv.filter_type = 'PERCENT_PRICE')
               AS multiplier_decimal,
           max(fv.valid_from) AS valid_from,
           min(fv.valid_to) AS valid_to
    FROM {market}_symbol_filter_versions fv
    WHERE fv.symbol = s.symbol AND {f}
) f
WHERE {s}
"""
RATE_LIMITS_QUERY = """
SELECT '{market}'::text AS market, r.rate_limit_type, r."interval", r.interval_num,
       r.limit_value, r.valid_from, r.valid_to, r.raw
FROM {table} r
WHERE {s}
"""


def _known(markets: Iterable[str]) -> str:
    return "'{" + ",".join(markets) + "}'"


def _asked(market: str, known: str) -> str:
    """The arm's condition on the function's ``market``: a constant once planned."""
    return f" AND checked_market(market, {known}) = '{market}'"


def _futures_symbols(when: str, asked: bool = False, extra: str = "") -> str:
    return "\nUNION ALL\n".join(
        FUTURES_SYMBOLS_QUERY.format(
            market=market,
            s=when.format(t="s") + (_asked(market, _known(FUTURES)) if asked else "") + extra,
            f=when.format(t="fv"),
        )
        for market in FUTURES
    )


def _rate_limits(when: str, asked: bool = False) -> str:
    return "\nUNION ALL\n".join(
        RATE_LIMITS_QUERY.format(
            market=market,
            table=table,
            s=when.format(t="r") + (_asked(market, _known(RATE_LIMIT_TABLES)) if asked else ""),
        )
        for market, table in RATE_LIMIT_TABLES.items()
    )


# -- the changes view ----------------------------------------------------------------------


def _market_events(market: str, assets: bool) -> dict[str, str]:
    events = {
        f"{market}_symbol_events": R0042._events(f"{market}_symbol_versions", ("symbol",)),
        f"{market}_filter_events": R0042._events(
            f"{market}_symbol_filter_versions", ("symbol", "filter_type")
        ),
        f"{market}_rate_limit_events": R0042._events(
            f"{market}_rate_limit_versions", ("rate_limit_type", "interval", "interval_num")
        ),
        f"{market}_exchange_filter_events": R0042._events(
            f"{market}_exchange_filter_versions", ("filter_type",)
        ),
    }
    if assets:
        events[f"{market}_asset_events"] = R0042._events(f"{market}_asset_versions", ("asset",))
    return events


def _with_filters(market: str, side: str, bound: str) -> str:
    """The contract's object (``e.old`` or ``e.new``) with the filters that closed or opened
    with it, as 0042 builds a spot symbol's listing."""
    return (
        f"e.{side} || jsonb_build_object('filters', (SELECT coalesce(jsonb_agg(f.raw"
        f" ORDER BY f.filter_type COLLATE \"C\"), '[]') FROM {market}_symbol_filter_versions f"
        f" WHERE f.symbol = e.symbol AND f.{bound} = e.changed_at))"
    )


def _market_branches(market: str, assets: bool) -> tuple[str, ...]:
    symbols, filters = f"{market}_symbol_events", f"{market}_filter_events"
    rate_limits, exchange_filters = (
        f"{market}_rate_limit_events",
        f"{market}_exchange_filter_events",
    )
    # A filter opening or closing with its contract is part of the listing or delisting.
    filter_changes = (
        f"(SELECT f.* FROM {filters} f WHERE NOT EXISTS ("
        f" SELECT FROM {symbols} s WHERE s.symbol = f.symbol AND s.changed_at = f.changed_at"
        " AND (s.old IS NULL OR s.new IS NULL)))"
    )
    branches = (
        R0042._fields("symbol", "e.symbol", R0042._both(symbols)),
        R0042._listings(
            "symbol",
            "e.symbol",
            symbols,
            _with_filters(market, "old", "valid_to"),
            _with_filters(market, "new", "valid_from"),
        ),
        R0042._fields("symbol", "e.symbol", filter_changes, "'filters.' || e.filter_type || '.'"),
        R0042._fields("rate_limit", R0042.RATE_LIMIT_KEY, R0042._both(rate_limits)),
        R0042._listings("rate_limit", R0042.RATE_LIMIT_KEY, rate_limits, "e.old", "e.new"),
        R0042._fields("exchange_filter", "e.filter_type", R0042._both(exchange_filters)),
        R0042._listings("exchange_filter", "e.filter_type", exchange_filters, "e.old", "e.new"),
    )
    if not assets:
        return branches
    return (
        *branches,
        R0042._fields("asset", "e.asset", R0042._both(f"{market}_asset_events")),
        R0042._listings("asset", "e.asset", f"{market}_asset_events", "e.old", "e.new"),
    )


def _ctes(items: dict[str, str]) -> str:
    return ",\n".join(f"{name} AS NOT MATERIALIZED ({sql})" for name, sql in items.items())


EVENTS = {
    **R0060.EVENTS,
    **{
        name: sql
        for market, (_, assets) in FUTURES.items()
        for name, sql in _market_events(market, assets).items()
    },
}
MARKET_CHANGES = {
    "spot_changes": "\nUNION ALL\n".join(R0060.BRANCHES),
    **{
        f"{market}_changes": "\nUNION ALL\n".join(_market_branches(market, assets))
        for market, (_, assets) in FUTURES.items()
    },
}
# Each market's rows are an arm with its market as a constant: WHERE market = ... (or
# stream = ... on the futures streams) leaves the other arms out of the plan.
ALL_CHANGES = "\nUNION ALL\n".join(
    [
        "SELECT c.*, s.stream, 'spot'::text AS market FROM spot_changes c"
        f" JOIN (VALUES {R0060.STREAMS}) AS s(entity, stream) ON s.entity = c.entity",
        *(
            f"SELECT c.*, '{stream}'::text, '{market}'::text FROM {market}_changes c"
            for market, (stream, _) in FUTURES.items()
        ),
    ]
)
VIEW = f"""CREATE OR REPLACE VIEW changes AS WITH {_ctes(EVENTS)},
{_ctes(MARKET_CHANGES)},
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
    " exchange filters and USD-M margin assets of every market, and of the account,"
    " commissions, system status and delistings, field by field (balances excluded);"
    " market: spot, usdm or coinm; ORDER BY changed_at, entity, key, field'"
)

# signature -> (declaration, the view whose rows it returns, query, comment)
FUNCTIONS = {
    "futures_symbols_as_of(text, timestamptz)": (
        "futures_symbols_as_of(market text, as_of timestamptz)",
        "futures_symbols_current",
        _futures_symbols(R0040.AS_OF, asked=True),
        "every contract of the market (usdm, coinm) listed at the instant,"
        " shaped like futures_symbols_current",
    ),
    "futures_symbol_as_of(text, text, timestamptz)": (
        "futures_symbol_as_of(market text, symbol_name text, as_of timestamptz)",
        "futures_symbols_current",
        _futures_symbols(R0040.AS_OF, asked=True, extra=" AND s.symbol = symbol_name"),
        "one contract of the market (usdm, coinm) at the instant (no row: not listed then)",
    ),
    "rate_limits_as_of(text, timestamptz)": (
        "rate_limits_as_of(market text, as_of timestamptz)",
        "market_rate_limits_current",
        _rate_limits(R0040.AS_OF, asked=True),
        "the rate limits of the market (spot, usdm, coinm) at the instant,"
        " shaped like market_rate_limits_current",
    ),
}
VIEWS = {
    "futures_symbols_current": (
        _futures_symbols(R0040.CURRENT),
        "every listed contract of USD-M (usdm) and COIN-M (coinm) with its main filter values",
    ),
    "market_rate_limits_current": (
        _rate_limits(R0040.CURRENT),
        "the rate limits in force now on every market (spot, usdm, coinm)",
    ),
}


def upgrade() -> None:
    op.execute(CHECKED_MARKET)
    op.execute(
        "COMMENT ON FUNCTION checked_market(text, text[]) IS 'the market word if it is one of"
        " known, else an error (SQLSTATE 22023): how the by-market functions refuse a typo'"
    )
    for name, (query, what) in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
        op.execute(f"COMMENT ON VIEW {name} IS '{what}'")
    for signature, (declaration, view, query, what) in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {declaration} RETURNS SETOF {view}"
            f" LANGUAGE sql STABLE AS $fn$ {query} $fn$"
        )
        op.execute(f"COMMENT ON FUNCTION {signature} IS '{what}'")
    op.execute(VIEW)
    op.execute(COMMENT)
    op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO {ROLE}")
    op.execute(
        f"GRANT EXECUTE ON FUNCTION checked_market(text, text[]), {', '.join(FUNCTIONS)} TO {ROLE}"
    )


def downgrade() -> None:
    # The view loses a column: CREATE OR REPLACE cannot drop one, so it is made anew.
    op.execute("DROP VIEW changes")
    op.execute(R0060.VIEW)
    op.execute(R0060.COMMENT)
    op.execute(f"GRANT SELECT ON changes TO {ROLE}")
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP FUNCTION checked_market(text, text[])")
