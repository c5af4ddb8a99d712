"""The stream catalogue: every stream exmeta polls, declared once.

A stream is one kind of thing polled (DESIGN §2). Everything else that needs to know what
the streams are derives from the declarations below: the settings' stream helpers
(enabled streams, intervals, weights), the API's stream enum and its OpenAPI, ``/readyz``
and ``/metrics``, the change feed's tables and entities, the private rule, and the
poller's jobs. Adding a stream is README's "How to add a stream".

core imports neither the poller nor the API, so a parser is named here by its dotted path
(``module:function``); the poller resolves it when it builds its jobs, and a unit test
resolves every declared one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.wallet import without_balances


@dataclass(frozen=True, slots=True)
class Market:
    """One Binance API whose symbols exmeta versions: the word every read takes
    (``market=spot|usdm|coinm``), where it is polled, and where its exchangeInfo goes.

    ``base_url_setting``: the ``[binance]`` setting of its base URL (spot and its sapi on
    api.binance.com, USD-M on fapi, COIN-M on dapi: notes §14); core.config.base_url is the
    one place a stream's base URL is looked up. ``exchange_info``: the stream whose
    observations are the evidence of every symbol answer. The tables: its contracts and
    their filters, its rate limits (its weight budget is sized on its own REQUEST_WEIGHT
    limit), its exchange filters, and its margin assets (USD-M only). A market's symbols
    are its own entities: spot's BTCUSDT and USD-M's are read from different tables.
    ``status_key``: the field of a symbol's source object that holds its status (COIN-M
    says ``contractStatus``), for whatever reads that object as Binance sent it.
    """

    name: str
    base_url_setting: str
    exchange_info: str
    symbols: str
    filters: str
    rate_limits: str
    exchange_filters: str
    assets: str | None = None
    status_key: str = "status"


MARKET_DECLARATIONS: tuple[Market, ...] = (
    Market(
        "spot",
        "base_url",
        "exchange_info",
        "symbol_versions",
        "symbol_filter_versions",
        "rate_limit_versions",
        "exchange_filter_versions",
    ),
    Market(
        "usdm",
        "usdm_base_url",
        "usdm_exchange_info",
        "usdm_symbol_versions",
        "usdm_symbol_filter_versions",
        "usdm_rate_limit_versions",
        "usdm_exchange_filter_versions",
        "usdm_asset_versions",
    ),
    Market(
        "coinm",
        "coinm_base_url",
        "coinm_exchange_info",
        "coinm_symbol_versions",
        "coinm_symbol_filter_versions",
        "coinm_rate_limit_versions",
        "coinm_exchange_filter_versions",
        status_key="contractStatus",
    ),
)
MARKETS = tuple(m.name for m in MARKET_DECLARATIONS)
DEFAULT_MARKET = "spot"  # what every read answers when no market is named
BASE_URL_SETTINGS = {m.name: m.base_url_setting for m in MARKET_DECLARATIONS}
RATE_LIMIT_TABLES = {m.name: m.rate_limits for m in MARKET_DECLARATIONS}


def market(name: str) -> Market:
    """The declaration of market ``name``; KeyError for one that is not declared."""
    for declared in MARKET_DECLARATIONS:
        if declared.name == name:
            return declared
    raise KeyError(name)


@dataclass(frozen=True, slots=True)
class FeedTable:
    """One versioned table as the change feed reports it.

    ``diff``: its section in the whole-state diff (``/v1/diff``); None: compared inside
    another's (a symbol's filters, under ``symbols``).
    ``nested``: report nested objects' fields one by one (``commissionRates.maker``).
    ``feed_key``: the leading key columns that name the entity in the feed (a symbol's
    filters are reported under the symbol); None: the whole key.
    """

    entity: str
    table: str
    diff: str | None
    nested: bool = False
    feed_key: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream: what is polled, how, how often, and where its versions go.

    ``market`` is the API it is polled on: its base URL (``BASE_URL_SETTINGS``) and its
    weight pool, since Binance counts weight per IP and per API (notes §14): each market
    has a weight budget of its own (poller.retry, core.request_budget).
    ``weight`` is Binance's request weight of one call (notes §2), as the weight budget
    counts it (core.weight_plan). ``interval_setting`` names the ``[poller]`` key of its
    interval; two streams may share one (the commissions are polled with the account).
    ``private``: about the configured account, so readable only with the API token, in
    every route, metric and raw document (DESIGN §9). ``tables`` are every versioned table
    it writes; ``feed`` those the change feed reports (balances are left out, see
    core.changes). ``per_commission_symbol``: one call per symbol of ``[poller]
    commission_symbols``, so the stream is off without any and costs ``weight`` each.
    ``redact``: what the writer applies to every body of the stream before it hashes,
    stores or parses it (core.ingest), for a public stream whose endpoint also answers
    with private data (the wallet's balances, core.wallet). A ValueError from it means the
    body cannot be cleaned: none of it is kept. core's own function, so held, not named.
    ``api_key``: sent with the ``X-MBX-APIKEY`` header but not signed (Binance's security
    type MARKET_DATA, notes §16): public data, but Binance wants to know whose key asks,
    so the stream needs a key like a signed one (``needs_key``).
    """

    name: str
    market: str
    path: str
    weight: int
    signed: bool
    private: bool
    interval_setting: str
    parser: str
    tables: tuple[str, ...]
    feed: tuple[FeedTable, ...]
    params: tuple[tuple[str, str], ...] = ()
    per_commission_symbol: bool = False
    redact: Callable[[bytes], bytes] | None = None
    api_key: bool = False

    @property
    def needs_key(self) -> bool:
        """Off without a configured key: signed, or sent with the key header."""
        return self.signed or self.api_key


# In this order the API lists the streams (the feed's `streams`, the OpenAPI enums).
CATALOGUE: tuple[Stream, ...] = (
    Stream(
        name="exchange_info",
        market="spot",
        path="/api/v3/exchangeInfo",
        weight=20,
        signed=False,
        private=False,
        interval_setting="exchange_info_interval",
        parser="poller.parse:parse_exchange_info",
        tables=(
            "symbol_versions",
            "symbol_filter_versions",
            "rate_limit_versions",
            "exchange_filter_versions",
        ),
        feed=(
            FeedTable("symbol", "symbol_versions", "symbols"),
            FeedTable("symbol", "symbol_filter_versions", None, feed_key=("symbol",)),
            FeedTable("rate_limit", "rate_limit_versions", "rate_limits"),
            FeedTable("exchange_filter", "exchange_filter_versions", "exchange_filters"),
        ),
    ),
    Stream(
        name="account",
        market="spot",
        path="/api/v3/account",
        weight=20,
        signed=True,
        private=True,
        interval_setting="account_interval",
        parser="poller.parse_account:parse_account",
        tables=("account_versions", "balance_versions"),
        feed=(FeedTable("account", "account_versions", "account", nested=True),),
        params=(("omitZeroBalances", "true"),),
    ),
    Stream(
        name="account_commission",
        market="spot",
        path="/api/v3/account/commission",
        weight=20,
        signed=True,
        private=True,
        interval_setting="account_interval",
        parser="poller.parse_account:parse_commissions",
        tables=("commission_versions",),
        feed=(FeedTable("commission", "commission_versions", "commissions", nested=True),),
        per_commission_symbol=True,
    ),
    Stream(
        name="system_status",
        market="spot",
        path="/sapi/v1/system/status",
        weight=1,
        signed=False,
        private=False,
        interval_setting="system_status_interval",
        parser="poller.parse_account:parse_system_status",
        tables=("system_status_versions",),
        feed=(FeedTable("system_status", "system_status_versions", "system_status"),),
    ),
    Stream(
        name="delistings",
        market="spot",
        path="/sapi/v1/spot/delist-schedule",
        weight=100,
        signed=True,
        private=False,
        interval_setting="delistings_interval",
        parser="poller.parse_account:parse_delist_schedule",
        tables=("delisting_versions",),
        feed=(FeedTable("delisting", "delisting_versions", "delistings"),),
    ),
    Stream(
        name="wallet_networks",
        market="spot",
        path="/sapi/v1/capital/config/getall",
        weight=10,
        signed=True,
        # Public: the switches are the same for every account, and the balances the
        # endpoint also sends are taken out before anything is kept (core.wallet).
        private=False,
        interval_setting="wallet_networks_interval",
        parser="poller.parse_wallet:parse_capital_config",
        tables=("wallet_coin_versions", "wallet_network_versions"),
        feed=(
            FeedTable("wallet_coin", "wallet_coin_versions", "wallet_coins"),
            FeedTable("wallet_network", "wallet_network_versions", "wallet_networks"),
        ),
        redact=without_balances,
    ),
    # Margin metadata: MARKET_DATA today (key header, no signature; notes §16), though
    # Binance's 2024 docs had the isolated pairs and the delist schedule signed.
    Stream(
        name="margin_pairs",
        market="spot",
        path="/sapi/v1/margin/allPairs",
        weight=1,
        signed=False,
        private=False,
        interval_setting="margin_pairs_interval",
        parser="poller.parse_margin:parse_cross_pairs",
        tables=("margin_pair_versions",),
        feed=(FeedTable("margin_pair", "margin_pair_versions", "margin_pairs"),),
        api_key=True,
    ),
    Stream(
        name="margin_isolated_pairs",
        market="spot",
        path="/sapi/v1/margin/isolated/allPairs",
        weight=10,
        signed=False,
        private=False,
        interval_setting="margin_isolated_pairs_interval",
        parser="poller.parse_margin:parse_isolated_pairs",
        tables=("margin_isolated_pair_versions",),
        feed=(
            FeedTable(
                "margin_isolated_pair", "margin_isolated_pair_versions", "margin_isolated_pairs"
            ),
        ),
        api_key=True,
    ),
    Stream(
        name="margin_delistings",
        market="spot",
        path="/sapi/v1/margin/delist-schedule",
        weight=100,
        signed=False,
        private=False,
        interval_setting="margin_delistings_interval",
        parser="poller.parse_margin:parse_margin_delist_schedule",
        tables=("margin_delisting_versions",),
        feed=(FeedTable("margin_delisting", "margin_delisting_versions", "margin_delistings"),),
        api_key=True,
    ),
    Stream(
        name="usdm_exchange_info",
        market="usdm",
        path="/fapi/v1/exchangeInfo",
        weight=1,
        signed=False,
        private=False,
        interval_setting="usdm_exchange_info_interval",
        parser="poller.parse_futures:parse_usdm_exchange_info",
        tables=(
            "usdm_symbol_versions",
            "usdm_symbol_filter_versions",
            "usdm_asset_versions",
            "usdm_rate_limit_versions",
            "usdm_exchange_filter_versions",
        ),
        feed=(
            FeedTable("symbol", "usdm_symbol_versions", "symbols"),
            FeedTable("symbol", "usdm_symbol_filter_versions", None, feed_key=("symbol",)),
            FeedTable("rate_limit", "usdm_rate_limit_versions", "rate_limits"),
            FeedTable("exchange_filter", "usdm_exchange_filter_versions", "exchange_filters"),
            FeedTable("asset", "usdm_asset_versions", "assets"),
        ),
    ),
    Stream(
        name="coinm_exchange_info",
        market="coinm",
        path="/dapi/v1/exchangeInfo",
        weight=1,
        signed=False,
        private=False,
        interval_setting="coinm_exchange_info_interval",
        parser="poller.parse_futures:parse_coinm_exchange_info",
        tables=(
            "coinm_symbol_versions",
            "coinm_symbol_filter_versions",
            "coinm_rate_limit_versions",
            "coinm_exchange_filter_versions",
        ),
        feed=(
            FeedTable("symbol", "coinm_symbol_versions", "symbols"),
            FeedTable("symbol", "coinm_symbol_filter_versions", None, feed_key=("symbol",)),
            FeedTable("rate_limit", "coinm_rate_limit_versions", "rate_limits"),
            FeedTable("exchange_filter", "coinm_exchange_filter_versions", "exchange_filters"),
        ),
    ),
)

STREAMS = tuple(s.name for s in CATALOGUE)
# Streams about the configured account. Not only their versions are private: a balance
# version opens whenever the account trades, so when their polls were ``changed`` (and
# how often) tells when it traded. Only a caller with the API token reads any of it.
PRIVATE_STREAMS = frozenset(s.name for s in CATALOGUE if s.private)
PUBLIC_STREAMS = tuple(s.name for s in CATALOGUE if not s.private)
# The streams the change feed and the diff report: those that declare feed tables. A feed
# or a diff covers one market at a time (``feed_streams``): each market's symbols are its
# own entities, reported under the same names (``symbol``, ``rate_limit``...).
FEED_STREAMS = tuple(s.name for s in CATALOGUE if s.feed)
# Of every market: those whose changes anyone may read (a poll's log line words them).
PUBLIC_FEED_STREAMS = tuple(s.name for s in CATALOGUE if s.feed and not s.private)
# Written by a private stream: even a count of its versions is private.
PRIVATE_TABLES = frozenset(t for s in CATALOGUE if s.private for t in s.tables)
# What the writer does to each body before anything else sees it (Stream.redact).
BODY_REDACTIONS = {s.name: s.redact for s in CATALOGUE if s.redact is not None}
# The shape of every public stream's documents (core.schema): which field paths and filter
# types Binance sends. One table for all streams, keyed (stream, path), written by the
# writer after any public stream's parser rather than declared by one stream; the feed
# lists it only when asked (core.changes), the diff always.
SCHEMA_FEED = FeedTable("schema", "schema_versions", "schema")
# Tables no single stream owns.
SHARED_TABLES = (SCHEMA_FEED.table,)
# Every entity the change feed reports, in catalogue order, the shape last.
FEED_ENTITIES = (
    *dict.fromkeys(f.entity for s in CATALOGUE for f in s.feed),
    SCHEMA_FEED.entity,
)


def feed_streams(market: str = DEFAULT_MARKET, *, private: bool = False) -> tuple[str, ...]:
    """The streams of ``market`` the change feed and the diff report, in catalogue order;
    the private ones (the account's) only with ``private``."""
    return tuple(
        s.name for s in CATALOGUE if s.feed and s.market == market and (private or not s.private)
    )


def diff_sections(market: str = DEFAULT_MARKET) -> tuple[str, ...]:
    """The sections of ``market``'s whole-state diff, in catalogue order, the shape last."""
    return (
        *(f.diff for s in CATALOGUE if s.market == market for f in s.feed if f.diff is not None),
        "schema",
    )


def stream(name: str) -> Stream:
    """The declaration of ``name``; KeyError for a stream that is not declared."""
    for declared in CATALOGUE:
        if declared.name == name:
            return declared
    raise KeyError(name)
