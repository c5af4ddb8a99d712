"""Response models: the shape of every answer, as the OpenAPI document shows it.

Routes build plain dicts (``api.render``) rather than instances of these models: a
whole-exchange answer holds ~2,300 symbols and ~16,000 filters, and validating each on
the way out would cost more than the query. The tests validate real answers against
these models (``extra="forbid"``), so the documented shape and the served one agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, create_model
from sqlalchemy import ARRAY, Boolean, DateTime, Integer, Numeric, String

from core.models import VERSIONED_TABLES, typed_columns
from core.streams import FEED_ENTITIES, STREAMS

Instant = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        json_schema_extra={"format": "date-time"},
        examples=["2024-05-01T12:00:00.000Z"],
    ),
]
DecimalText = Annotated[
    str,
    Field(
        pattern=r"^-?\d+(\.\d+)?$",
        description="a decimal number as text, exactly as precise as Binance sent it",
        examples=["0.01000000"],
    ),
]


def operation_id(*, name: str = "", **_: str) -> str:
    """Operation ids are the view functions' names (``get_symbol``): short, stable for clients."""
    return name


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Model):
    code: str = Field(examples=["invalid_time"])
    message: str


class ErrorResponse(Model):
    error: ErrorDetail


class ChangeWindow(Model):
    """When the version's change began, as a realtime listener saw it coming."""

    since: Instant = Field(
        description="the earliest time Binance's side puts on the change: a pushed event's"
        " time, or the last market data before the symbol went silent"
    )
    seen_at: Instant = Field(description="the instant of the poll that saw it (valid_from)")
    signal: Literal["contract_info", "silence", "resumed", "account_update", "balance_update"]
    says: str = Field(
        examples=[
            "changed between 2026-12-03T14:03:07.200Z and 2026-12-03T14:03:07.900Z (market"
            " stream went silent at 2026-12-03T14:03:07.200Z, poll confirmed at"
            " 2026-12-03T14:03:07.900Z)"
        ]
    )


class Evidence(Model):
    """How sure the answer is: the successful observations around the instant."""

    observed_before: Instant | None = Field(
        description="the last successful observation at or before the instant"
    )
    observed_after: Instant | None = Field(description="the first successful one after it")
    gap: bool = Field(description="true if no success was seen for over 3 intervals around it")
    gap_from: Instant | None
    gap_to: Instant | None
    imported: bool = Field(
        description="true if observed_before was read from an archive (exmeta import), not polled"
    )
    change: ChangeWindow | None = Field(
        default=None,
        description="single-symbol answers: present when a realtime listener saw the change"
        " of the version in force coming, a tighter window than the polls around it",
    )


class FilterRules(Model):
    """One filter in force; only the typed fields the filter has are present."""

    min_price: DecimalText | None = None
    max_price: DecimalText | None = None
    tick_size: DecimalText | None = None
    min_qty: DecimalText | None = None
    max_qty: DecimalText | None = None
    step_size: DecimalText | None = None
    min_notional: DecimalText | None = None
    max_notional: DecimalText | None = None
    apply_min_to_market: bool | None = None
    apply_max_to_market: bool | None = None
    avg_price_mins: int | None = None
    multiplier_up: DecimalText | None = None
    multiplier_down: DecimalText | None = None
    bid_multiplier_up: DecimalText | None = None
    bid_multiplier_down: DecimalText | None = None
    ask_multiplier_up: DecimalText | None = None
    ask_multiplier_down: DecimalText | None = None
    max_position: DecimalText | None = None
    parts_limit: int | None = None
    max_num_orders: int | None = None
    max_num_algo_orders: int | None = None
    max_num_iceberg_orders: int | None = None
    valid_from: Instant
    valid_to: Instant | None
    raw: dict[str, Any] = Field(description="the filter object as Binance sent it")


class SymbolRules(Model):
    """A symbol's own fields and its filters, all in force at one instant."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    base_asset_precision: int | None
    quote_precision: int | None
    quote_asset_precision: int | None
    base_commission_precision: int | None
    quote_commission_precision: int | None
    order_types: list[str] | None
    iceberg_allowed: bool | None
    oco_allowed: bool | None
    oto_allowed: bool | None
    quote_order_qty_market_allowed: bool | None
    allow_trailing_stop: bool | None
    cancel_replace_allowed: bool | None
    amend_allowed: bool | None
    is_spot_trading_allowed: bool | None
    is_margin_trading_allowed: bool | None
    permissions: list[str] | None
    permission_sets: list[list[str]] | None
    default_self_trade_prevention_mode: str | None
    allowed_self_trade_prevention_modes: list[str] | None
    filters: dict[str, FilterRules] = Field(description="keyed by Binance filterType")
    valid_from: Instant = Field(description="since when this whole rule set has been in force")
    valid_to: Instant | None = Field(description="when any part of it changed next; null: still")
    raw: dict[str, Any] = Field(description="the symbol object as Binance sent it")


class SymbolAsOf(SymbolRules):
    as_of: Instant
    evidence: Evidence


class SymbolList(Model):
    as_of: Instant
    evidence: Evidence
    symbols: list[SymbolRules]


# -- futures contracts: derived from the models (core.models.FuturesSymbolColumns) -------
#
# A USD-M or COIN-M contract has its own fields (pair, contract type, delivery date...),
# so its answers have their own models, built from the table's columns: a column added
# to the model is documented without a list to edit. Spot's answers keep the shape they
# had before markets existed; a futures answer names its ``market``, which is also what
# tells the two shapes apart in the document.


def _column_type(column: Any) -> Any:
    """The JSON shape of one typed column, as api.render serves it."""
    kind = column.type
    if isinstance(kind, Numeric):
        found: Any = DecimalText
    elif isinstance(kind, DateTime):
        found = Instant
    elif isinstance(kind, Boolean):
        found = bool
    elif isinstance(kind, Integer):  # SmallInteger and BigInteger too
        found = int
    elif isinstance(kind, ARRAY):
        found = list[str]
    elif isinstance(kind, String):
        found = str
    else:  # jsonb: permissionSets, a list whose shape Binance varies
        found = list[Any]
    return found | None if column.nullable else found


def _typed_model(name: str, table: str, *, key: bool, optional: bool, **extra: Any) -> Any:
    columns = VERSIONED_TABLES[table].__table__.c  # type: ignore[attr-defined]
    typed = set(typed_columns(table, key=key))
    fields: dict[str, Any] = {
        c.name: (_column_type(c) | None, None) if optional else (_column_type(c), ...)
        for c in columns
        if c.name in typed
    }
    return create_model(name, __base__=Model, **fields, **extra)


FuturesFilterRules = _typed_model(
    "FuturesFilterRules",
    "usdm_symbol_filter_versions",
    key=False,
    optional=True,
    __doc__="One filter of a contract in force; only the typed fields the filter has.",
    valid_from=(Instant, ...),
    valid_to=(Instant | None, ...),
    raw=(dict[str, Any], Field(description="the filter object as Binance sent it")),
)
_FILTERS_BY_TYPE = dict[str, FuturesFilterRules]  # type: ignore[valid-type]
FuturesSymbolRules = _typed_model(
    "FuturesSymbolRules",
    "usdm_symbol_versions",
    key=True,
    optional=False,
    __doc__="A USD-M or COIN-M contract's own fields and its filters, in force at one instant.",
    market=(Literal["usdm", "coinm"], ...),
    filters=(_FILTERS_BY_TYPE, Field(description="keyed by Binance filterType")),
    valid_from=(Instant, Field(description="since when this whole rule set has been in force")),
    valid_to=(Instant | None, Field(description="when any part of it changed next; null: still")),
    raw=(dict[str, Any], Field(description="the contract object as Binance sent it")),
)


class FuturesSymbolAsOf(FuturesSymbolRules):  # type: ignore[misc,valid-type]
    as_of: Instant
    evidence: Evidence


class FuturesSymbolList(Model):
    market: Literal["usdm", "coinm"]
    as_of: Instant
    evidence: Evidence
    symbols: list[FuturesSymbolRules]  # type: ignore[valid-type]


class AnySymbolAsOf(RootModel[SymbolAsOf | FuturesSymbolAsOf]):
    """One symbol's answer: spot's shape, or a futures contract's (it names its market)."""


class AnySymbolList(RootModel[SymbolList | FuturesSymbolList]):
    """Every symbol's answer: spot's shape, or a futures market's (it names its market)."""


class FieldChange(Model):
    field: str = Field(examples=["status", "filters.PRICE_FILTER.tickSize"])
    old: Any = Field(description="null when the field appeared")
    new: Any = Field(description="null when the field went away")


class HistoryVersion(Model):
    valid_from: Instant
    valid_to: Instant | None
    observation_id: int
    listed: bool = Field(description="false from the moment the symbol was delisted")
    changes: list[FieldChange]


class SymbolHistory(Model):
    symbol: str
    start: Instant | None = Field(alias="from")
    end: Instant | None = Field(alias="to")
    versions: list[HistoryVersion]
    next: str | None = Field(description="pass as `next` for the following page; null: no more")


class RateLimit(Model):
    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int
    valid_from: Instant
    valid_to: Instant | None


class RateLimitsAsOf(Model):
    as_of: Instant
    evidence: Evidence
    rate_limits: list[RateLimit]


class Observation(Model):
    id: int
    stream: str
    replica_id: str
    observed_at: Instant
    requested_at: Instant | None = Field(
        description="null on a poll folded into a run (README, The observation log),"
        " as are duration_ms, used_weight, attempts and backoff_ms"
    )
    duration_ms: int | None
    outcome: str
    http_status: int | None
    used_weight: int | None
    error_class: str | None
    error_code: int | None
    error_message: str | None
    attempts: int | None = Field(description="requests sent, retries included; 0: paused")
    backoff_ms: int | None = Field(description="time spent backing off between them")
    source: str | None = Field(
        description="scheme://host:port polled (README, Source identity); null: not recorded"
    )


class Gap(Model):
    stream: str
    start: Instant | None = Field(description="the last success before it; null: none ever")
    end: Instant | None = Field(description="the first success after it; null: still open")


class ObservationLog(Model):
    start: Instant = Field(alias="from")
    end: Instant = Field(alias="to")
    observations: list[Observation]
    truncated: bool = Field(description="true if more observations matched than limit")
    gaps: list[Gap]


class CheckedOrder(Model):
    side: Literal["BUY", "SELL"]
    type: str
    quantity: DecimalText | None = Field(description="null when sized by quote_quantity")
    quote_quantity: DecimalText | None = Field(description="a MARKET order's quoteOrderQty")
    price: DecimalText | None
    reference_price: DecimalText | None
    iceberg_quantity: DecimalText | None


class Violation(Model):
    rule: str = Field(
        examples=["PRICE_FILTER.tickSize", "status", "orderTypes", "account.permissions"]
    )
    message: str = Field(description="the numbers that decided it")


class NotChecked(Model):
    rule: str = Field(examples=["PERCENT_PRICE_BY_SIDE", "NOTIONAL.minNotional", "account"])
    reason: str = Field(examples=["needs reference_price", "needs the bearer token"])


class NearestValid(Model):
    price: DecimalText | None = Field(
        description="the valid price nearest the order's: on the tick, within the bounds"
        " checked (null: the order has no price, or no price is valid)"
    )
    quantity: DecimalText | None = Field(
        description="the valid quantity nearest the order's: on the step, within the bounds"
    )


class OrderCheck(Model):
    symbol: str
    as_of: Instant
    evidence: Evidence
    order: CheckedOrder
    accepted: bool = Field(description="true if the order breaks none of the rules checked")
    violations: list[Violation]
    not_checked: list[NotChecked] = Field(
        description="rules that apply but could not be checked, and why: not passed either"
    )
    nearest: NearestValid


class ReplicaEntry(Model):
    replica_id: str
    version: str
    started_at: Instant
    last_seen_at: Instant = Field(description="its last heartbeat, by the database clock")
    stopped_at: Instant | None = Field(description="when it stopped gracefully; null: did not")
    seconds_since_seen: float = Field(description="since its last heartbeat, when answered")
    leases: list[str] = Field(description="streams whose unexpired lease it holds now")


class ReplicaList(Model):
    replicas: list[ReplicaEntry]


def _one_of(known: Sequence[str], value: str) -> str:
    if value not in known:
        raise ValueError(f"must be one of {', '.join(known)}")
    return value


# The stream catalogue's names (core.streams), documented as an enum and checked like a
# Literal: a Literal cannot be built from names known only when the catalogue is read.
FeedStream = Annotated[
    str, AfterValidator(partial(_one_of, STREAMS)), Field(json_schema_extra={"enum": list(STREAMS)})
]
FeedEntity = Annotated[
    str,
    AfterValidator(partial(_one_of, FEED_ENTITIES)),
    Field(json_schema_extra={"enum": list(FEED_ENTITIES)}),
]


class Change(Model):
    changed_at: Instant = Field(description="the observation that first saw the change")
    observed_before: Instant | None = Field(
        description="the last successful observation before it: the change happened in between"
    )
    observation_id: int
    stream: FeedStream
    entity: FeedEntity
    key: str = Field(
        examples=[
            "BTCUSDT",
            "REQUEST_WEIGHT:MINUTE:1",
            "EXCHANGE_MAX_NUM_ORDERS",
            "spot",
            "exchange_info:symbols[].filters[NOTIONAL]",
        ],
        description="a `schema` key is `<stream>:<path>`: a field path of that stream's"
        " documents (see /v1/schema)",
    )
    field: str = Field(
        examples=[
            "status",
            "filters.PRICE_FILTER.tickSize",
            "limit",
            "canTrade",
            "standardCommission.taker",
            "delistTime",
            "listed",
            "types",
        ],
        description="`listed`: a listing (old null, new the object) or a delisting (reverse);"
        " for a `delisting`, its announcement and its withdrawal from the schedule; for a"
        " `schema` path, Binance starting or ceasing to send it (`types`: its JSON types"
        " changed)",
    )
    old: Any
    new: Any


class ChangeFeed(Model):
    start: Instant = Field(alias="from")
    end: Instant = Field(alias="to")
    streams: list[FeedStream] = Field(
        description="the streams listed, all of one market: account and account_commission"
        " only with the token"
    )
    changes: list[Change]
    next: str | None = Field(description="pass as `next` for the following page; null: no more")


class EntityChange(Model):
    key: str = Field(examples=["BTCUSDT", "REQUEST_WEIGHT:MINUTE:1"])
    changes: list[FieldChange]


class EntityDiff(Model):
    added: list[str] = Field(description="keys in force at `to` but not at `from`")
    removed: list[str] = Field(description="keys in force at `from` but not at `to`")
    changed: list[EntityChange] = Field(description="keys in force at both, with what differs")


class DiffEvidence(Model):
    start: Evidence = Field(alias="from")
    end: Evidence = Field(alias="to")


class StateDiff(Model):
    start: Instant = Field(alias="from")
    end: Instant = Field(alias="to")
    evidence: DiffEvidence
    symbols: EntityDiff
    rate_limits: EntityDiff
    exchange_filters: EntityDiff
    system_status: EntityDiff = Field(description="key `binance`: fields `status`, `msg`")
    delistings: EntityDiff = Field(description="announced delistings, by symbol: `delistTime`")
    wallet_coins: EntityDiff = Field(
        description="each coin's wallet-wide switches, by coin: `withdrawAllEnable`..."
    )
    wallet_networks: EntityDiff = Field(
        description="each coin's networks, keyed `COIN:NETWORK`: `withdrawEnable`,"
        " `withdrawDesc`, `withdrawFee`..."
    )
    margin_pairs: EntityDiff = Field(
        description="cross margin pairs, by symbol: `isBuyAllowed`, `isSellAllowed`, `delistTime`..."
    )
    margin_isolated_pairs: EntityDiff = Field(
        description="isolated margin pairs, by symbol: `isBuyAllowed`, `isSellAllowed`..."
    )
    margin_delistings: EntityDiff = Field(
        description="announced margin delistings, keyed `cross:ASSET` or `isolated:SYMBOL`:"
        " `delistTime`"
    )
    schema_diff: EntityDiff = Field(
        alias="schema",
        description="field paths of the public streams' documents, keyed `<stream>:<path>`"
        " (see /v1/schema): `types`, their JSON types",
    )
    account: EntityDiff | None = Field(
        description="key `spot`: permissions, flags, commissions; null without the bearer token"
    )
    commissions: EntityDiff | None = Field(
        description="commission rates by symbol; null without the bearer token"
    )


class FuturesStateDiff(Model):
    """A futures market's diff: its contracts, rate limits, exchange filters and assets."""

    market: Literal["usdm", "coinm"]
    start: Instant = Field(alias="from")
    end: Instant = Field(alias="to")
    evidence: DiffEvidence
    symbols: EntityDiff = Field(description="contracts: own fields and `filters.<type>.<field>`")
    rate_limits: EntityDiff
    exchange_filters: EntityDiff
    assets: EntityDiff | None = Field(
        None, description="USD-M's margin assets (Multi-Assets mode); absent on coinm"
    )
    schema_diff: EntityDiff = Field(
        alias="schema", description="field paths of the market's documents, `<stream>:<path>`"
    )


class AnyStateDiff(RootModel[StateDiff | FuturesStateDiff]):
    """Spot's diff, or a futures market's (it names its market)."""


class SchemaPath(Model):
    path: str = Field(
        examples=["symbols[].filters[NOTIONAL].minNotional", "rateLimits[].intervalNum"],
        description="a field path: `[]` any element of an array, `[TYPE]` its elements whose"
        " filterType is TYPE",
    )
    types: list[str] = Field(
        examples=[["string"]], description="the JSON types seen at the path, e.g. string, integer"
    )
    valid_from: Instant = Field(description="since when Binance has sent it with these types")
    valid_to: Instant | None


class SchemaAsOf(Model):
    """The shape of a stream's documents at as_of: every field path Binance sent."""

    stream: str
    as_of: Instant
    evidence: Evidence
    paths: list[SchemaPath]


class Health(Model):
    status: Literal["ok"]


class DatabaseRole(Model):
    """The database the API reads: a primary, or a hot standby and how far behind it is."""

    role: Literal["primary", "standby"]
    replay_lag_seconds: float | None = Field(
        description="standby: 0 if it replayed all the WAL it received, else the age of the"
        " last transaction it replayed; null on a primary"
    )
    replay_pending_bytes: int | None = Field(description="standby: WAL received, not replayed")
    last_replayed_at: Instant | None = Field(
        description="standby: when the last transaction it replayed committed on the primary"
    )
    replay_paused: bool | None = Field(description="standby: replay is paused")


class Readiness(Model):
    status: Literal["ready", "not_ready"]
    reasons: list[str]
    last_successes: dict[str, Instant | None]
    database: DatabaseRole | None = Field(
        default=None, description="absent when the database did not answer"
    )


EXCHANGE_INFO_RESPONSE: dict[str, Any] = {
    "description": "the exchangeInfo document, byte for byte as Binance sent it",
    "content": {"application/json": {"schema": {"type": "object"}}},
    "headers": {
        "X-Exmeta-Observation-Id": {"schema": {"type": "integer"}},
        "X-Exmeta-Observed-At": {"schema": {"type": "string", "format": "date-time"}},
    },
}


class AccountAsOf(Model):
    """The account's commissions, permissions and flags in force at as_of."""

    uid: int | None
    account_type: str | None
    maker_commission: int | None = Field(description="legacy rate in basis points")
    taker_commission: int | None
    buyer_commission: int | None
    seller_commission: int | None
    commission_rate_maker: DecimalText | None = Field(description="commissionRates.maker")
    commission_rate_taker: DecimalText | None
    commission_rate_buyer: DecimalText | None
    commission_rate_seller: DecimalText | None
    can_trade: bool | None
    can_withdraw: bool | None
    can_deposit: bool | None
    brokered: bool | None
    require_self_trade_prevention: bool | None
    prevent_sor: bool | None
    permissions: list[str] | None
    valid_from: Instant
    valid_to: Instant | None
    raw: dict[str, Any] = Field(description="the account object without balances, updateTime")
    as_of: Instant
    evidence: Evidence


class Balance(Model):
    asset: str
    free: DecimalText
    locked: DecimalText
    valid_from: Instant
    valid_to: Instant | None


class BalancesAsOf(Model):
    """Non-zero balances at as_of; an asset not listed held zero."""

    as_of: Instant
    evidence: Evidence
    balances: list[Balance]


class CommissionAsOf(Model):
    """GET /api/v3/account/commission for one symbol, as in force at as_of."""

    symbol: str
    standard_maker: DecimalText | None
    standard_taker: DecimalText | None
    standard_buyer: DecimalText | None
    standard_seller: DecimalText | None
    special_maker: DecimalText | None
    special_taker: DecimalText | None
    special_buyer: DecimalText | None
    special_seller: DecimalText | None
    tax_maker: DecimalText | None
    tax_taker: DecimalText | None
    tax_buyer: DecimalText | None
    tax_seller: DecimalText | None
    discount_enabled_for_account: bool | None
    discount_enabled_for_symbol: bool | None
    discount_asset: str | None
    discount: DecimalText | None
    valid_from: Instant
    valid_to: Instant | None
    raw: dict[str, Any]
    as_of: Instant
    evidence: Evidence


class SystemStatusAsOf(Model):
    status: int = Field(description="0 normal, 1 system maintenance")
    message: str | None
    valid_from: Instant
    valid_to: Instant | None
    raw: dict[str, Any]
    as_of: Instant
    evidence: Evidence


class Delisting(Model):
    symbol: str
    delist_time: Instant = Field(description="when the delisting takes effect (B)")
    valid_from: Instant = Field(description="when this announcement was first observed (A)")
    valid_to: Instant | None = Field(description="when it left the schedule; null: still there")


class DelistingsAsOf(Model):
    as_of: Instant
    evidence: Evidence
    delistings: list[Delisting]


# -- the wallet: coins and their networks (no balance is ever stored, core.wallet) -------

WalletNetwork = _typed_model(
    "WalletNetwork",
    "wallet_network_versions",
    key=True,
    optional=False,
    __doc__="One coin's network as in force: its deposit and withdrawal switches, their"
    " messages (`withdraw_desc`: why a withdrawal is suspended), fees and minimums. Columns"
    " an era of Binance's answer lacks (2021: busy, same_address...) are null.",
    valid_from=(Instant, Field(description="since when this whole answer has been in force")),
    valid_to=(Instant | None, Field(description="when any of it changed next; null: still")),
)


class WalletNetworksAsOf(Model):
    as_of: Instant
    evidence: Evidence
    networks: list[WalletNetwork]  # type: ignore[valid-type]


class WalletSwitch(Model):
    enabled: bool
    message: str | None = Field(description="Binance's depositDesc / withdrawDesc then")
    since: Instant = Field(
        description="since when it has been in this position: the first observation of the"
        " unbroken run of answers that said so (it changed between that observation and the"
        " one before, see the history)"
    )
    since_first_seen: bool = Field(
        description="true: the run reaches back to the first answer recorded for this network"
        " (its listing, or exmeta's first poll): what it was before is not known"
    )


class WalletCoinNetwork(Model):
    network: str
    name: str | None
    is_default: bool | None
    deposit: WalletSwitch
    withdraw: WalletSwitch
    busy: bool | None
    withdraw_fee: DecimalText | None
    withdraw_min: DecimalText | None
    withdraw_max: DecimalText | None
    withdraw_integer_multiple: DecimalText | None
    withdraw_internal_min: DecimalText | None
    min_confirm: int | None
    unlock_confirm: int | None
    estimated_arrival_time: int | None
    valid_from: Instant
    valid_to: Instant | None


class WalletCoinAsOf(Model):
    """By which networks the coin could be deposited and withdrawn at as_of."""

    coin: str
    name: str | None
    deposit_all_enable: bool | None
    withdraw_all_enable: bool | None
    trading: bool | None
    is_legal_money: bool | None
    deposit_networks: list[str] = Field(description="networks whose deposits were enabled")
    withdraw_networks: list[str] = Field(description="networks whose withdrawals were enabled")
    networks: list[WalletCoinNetwork]
    valid_from: Instant = Field(description="since when the coin's own switches were in force")
    valid_to: Instant | None
    as_of: Instant
    evidence: Evidence


class WalletNetworkHistory(Model):
    coin: str
    network: str
    start: Instant | None = Field(alias="from")
    end: Instant | None = Field(alias="to")
    versions: list[HistoryVersion] = Field(
        description="`listed` false: the network was gone from Binance's answer from then"
    )
    next: str | None = Field(description="pass as `next` for the following page; null: no more")


# -- margin: pairs and the margin delist schedule ---------------------------------------

MarginPair = _typed_model(
    "MarginPair",
    "margin_pair_versions",
    key=True,
    optional=False,
    __doc__="A margin pair as in force: could it be margined (`is_margin_trade`), bought,"
    " sold, and its announced delisting (`delist_time`, null: none). `pair_id` is Binance's"
    " `id` (cross pairs only).",
    valid_from=(Instant, Field(description="since when this whole answer has been in force")),
    valid_to=(Instant | None, Field(description="when any of it changed next; null: still")),
    raw=(dict[str, Any], Field(description="the pair object as Binance sent it")),
)


class MarginPairsAsOf(Model):
    type: Literal["cross", "isolated"]
    as_of: Instant
    evidence: Evidence
    pairs: list[MarginPair]  # type: ignore[valid-type]


class MarginPairHistory(Model):
    symbol: str
    type: Literal["cross", "isolated"]
    start: Instant | None = Field(alias="from")
    end: Instant | None = Field(alias="to")
    versions: list[HistoryVersion] = Field(
        description="`listed` false: the pair was gone from Binance's answer from then"
    )
    next: str | None = Field(description="pass as `next` for the following page; null: no more")


class MarginDelisting(Model):
    type: Literal["cross", "isolated"] = Field(
        description="`cross`: a cross margin asset; `isolated`: an isolated margin symbol"
    )
    name: str = Field(description="the asset (cross) or the symbol (isolated)")
    delist_time: Instant = Field(description="when the delisting takes effect (B)")
    valid_from: Instant = Field(description="when this announcement was first observed (A)")
    valid_to: Instant | None = Field(description="when it left the schedule; null: still there")


class MarginDelistingsAsOf(Model):
    as_of: Instant
    evidence: Evidence
    delistings: list[MarginDelisting]
