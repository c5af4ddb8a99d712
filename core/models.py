"""The mapped tables.

Versioned tables share one shape (``VersionMixin``): the entity key, ``valid_from`` /
``valid_to`` as a half-open range ``[valid_from, valid_to)`` (half-open so that closing a
version and opening its successor at the same instant leaves neither a gap nor an
overlap), the content hash that change detection compares, and the observations that
opened and closed the version. The database itself refuses overlapping versions of one
key (an exclusion constraint over ``tstzrange(valid_from, valid_to)``) and empty ranges
(a check), so no bug in a writer and no race between replicas can corrupt history.

Symbols and their filters are versioned separately: ``MARKET_LOT_SIZE.maxQty`` changes
daily on ~1,400 symbols, and one narrow filter row per change is far cheaper than a copy
of the whole symbol with its permission lists.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = TIMESTAMP(timezone=True)
# ``switched``: the stream's history moved to another source (core.ingest.claim_sources);
# such an observation closes every current version of the stream and opens none.
OUTCOMES = ("changed", "unchanged", "stale", "error", "switched")
SUCCESS_OUTCOMES = ("changed", "unchanged")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: TZ,
        Decimal: Numeric(),
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
    }


class RawBody(Base):
    """A response body, stored once per distinct content (volatile fields blanked)."""

    __tablename__ = "raw_bodies"

    sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Observation(Base):
    """One poll attempt of a stream, successful or not: the evidence behind every answer."""

    __tablename__ = "observations"
    __table_args__ = (
        CheckConstraint(f"outcome IN {OUTCOMES!r}", name="outcome"),
        Index(None, "stream", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    stream: Mapped[str] = mapped_column(Text)
    replica_id: Mapped[str] = mapped_column(Text)
    # The time the observation stands for: Binance's serverTime when the body has one
    # that agrees with the request's window on the database clock (core.dating),
    # otherwise the database clock when it was recorded. Never a replica's own clock.
    observed_at: Mapped[datetime]
    requested_at: Mapped[datetime]  # the replica's clock, for latency forensics only
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    used_weight: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    body_sha256: Mapped[bytes | None] = mapped_column(ForeignKey("raw_bodies.sha256"))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Requests sent for this poll (retries included; 0 when a rate-limit pause sent none)
    # and the time spent backing off between them: what /metrics reports as retries and
    # back-off, read from here because the API process never sees the poller's memory.
    # NULL on observations recorded before retries existed.
    attempts: Mapped[int | None] = mapped_column(SmallInteger)
    backoff_ms: Mapped[int | None] = mapped_column(Integer)
    # The serverTime the body reported when it disagreed with the database clock beyond
    # the tolerance and so did not date the observation (core.dating); NULL otherwise.
    # Kept so that the document served is the one Binance sent, and the glitch can be read.
    server_time: Mapped[datetime | None]
    # Where it was polled from (core.sources: scheme://host:port, never credentials);
    # NULL on observations recorded before sources were (migration 0140) and on one-off
    # writes that name none (tests, imports).
    source: Mapped[str | None] = mapped_column(Text)
    # Where an imported observation was read from (a file's path; `exmeta import`); NULL
    # on live polls. The first observation with none is where an import must stop.
    origin: Mapped[str | None] = mapped_column(Text)


class ObservationRun(Base):
    """Consecutive unchanged successful polls of one stream, folded from ``observations``.

    Each poll keeps its identity and its instant exactly (``first_id``/``first_at`` then
    one step per later poll: id and microseconds since the previous poll), so every
    evidence question is answered as it was; its per-poll detail (requested_at, duration,
    used weight, attempts, back-off) is what folding gives up (core.obslog). A run never
    spans another success or a move of its stream, and runs of a stream never overlap.
    """

    __tablename__ = "observation_runs"
    __table_args__ = (
        CheckConstraint(
            "cardinality(gaps_us) = polls - 1 AND cardinality(id_steps) = polls - 1"
            " AND 0 < ALL(gaps_us) AND last_at >= first_at",
            name="steps",
        ),
        Index(None, "stream", "last_at"),
    )

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(primary_key=True)
    last_at: Mapped[datetime]
    polls: Mapped[int] = mapped_column(Integer)
    first_id: Mapped[int] = mapped_column(BigInteger)
    id_steps: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    gaps_us: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    # What every poll of the run shares; a change of any of them starts another run.
    replica_id: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    body_sha256: Mapped[bytes | None] = mapped_column(ForeignKey("raw_bodies.sha256"))
    source: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str | None] = mapped_column(Text)


class StreamHead(Base):
    """Per-stream write lock and the newest applied state (DESIGN §6).

    Every write of an observation locks its stream's row, so writes of one stream are
    serialised across replicas; ``last_applied_at`` makes an older observation ``stale``;
    ``last_body_sha256`` lets an unchanged poll skip parsing; ``state_observation_id``
    tells a replica whether the current versions it holds in memory are still current.
    """

    __tablename__ = "stream_heads"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    last_applied_at: Mapped[datetime | None]
    last_observation_id: Mapped[int | None] = mapped_column(BigInteger)
    last_body_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    state_observation_id: Mapped[int | None] = mapped_column(BigInteger)
    # Observations whose serverTime did not date them, counted in their write's
    # transaction: /metrics reads one row per stream instead of the observation log.
    server_time_rejections: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The source this stream's history belongs to (core.ingest.claim_sources): claimed by
    # the first poller to start, moved only by an explicit switch. NULL until then, and on
    # databases older than migration 0140, whose first poller after it adopts its own.
    source: Mapped[str | None] = mapped_column(Text)


class PollTotal(Base):
    """Observations of a stream by outcome, error class and duration bucket, with what they
    cost: the counters of ``/metrics``, added to by the writer in each observation's own
    transaction (core.ingest), so a scrape reads a few rows instead of the whole log.

    ``error_class`` is '' for none (a key column cannot be NULL); ``duration_bucket`` is
    the index of the first of ``core.stats.DURATION_BOUNDS_MS`` the duration does not
    exceed (their count: above all). Seeded from the log by migration 0101.
    """

    __tablename__ = "poll_totals"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    outcome: Mapped[str] = mapped_column(Text, primary_key=True)
    error_class: Mapped[str] = mapped_column(Text, primary_key=True)
    duration_bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    polls: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(BigInteger)  # retries included
    retries: Mapped[int] = mapped_column(BigInteger)
    backoff_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)


class VersionTotal(Base):
    """Versions ever written to one versioned table, added to as the writer opens them."""

    __tablename__ = "version_totals"

    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    versions: Mapped[int] = mapped_column(BigInteger)


class StreamLease(Base):
    """Which replica polls a stream's next slot, under which term, until when (DESIGN §6).

    Times are the database clock's. ``term`` grows whenever the lease changes hands or
    lapses; an observation is applied only if its term is still the lease's (core.leases).
    """

    __tablename__ = "stream_leases"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    term: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]
    next_due_at: Mapped[datetime]


class Replica(Base):
    """A poller replica's heartbeat row (core.replicas); database-clock times."""

    __tablename__ = "replicas"

    replica_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


# What a realtime listener saw (core.signals): a push from Binance, a silence that looks
# like a status change, or a reconnection after which events may have been missed.
SIGNAL_KINDS = (
    "contract_info",
    "silence",
    "resumed",
    "reconnected",
    "account_update",
    "balance_update",
)


class StreamSignal(Base):
    """One thing a realtime listener saw, and what the poll it triggered found.

    Only polls write versions: a signal only asks for one, so a false suspicion never
    reaches the history. ``event_at`` is the earliest time Binance's side puts on the
    change (a pushed event's ``E``; for a silence, the symbol's last message), on
    Binance's clock; ``received_at`` is the database clock's. The poll's outcome is filled
    in once it is recorded (NULL while none ran: a suspicion over the weight share)."""

    __tablename__ = "stream_signals"
    __table_args__ = (
        CheckConstraint(f"kind IN {SIGNAL_KINDS!r}", name="kind"),
        # Evidence looks up the signal behind a subject's version (core.signals).
        Index(None, "stream", "symbol", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    stream: Mapped[str] = mapped_column(Text)
    replica_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    symbol: Mapped[str | None] = mapped_column(Text)
    event_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Whether an immediate poll was asked for (false: over the suspicion share).
    polled: Mapped[bool] = mapped_column(Boolean)
    # The triggered poll: its observation (no foreign key: observations may be compacted)
    # and whether it found the change the signal pointed at.
    observation_id: Mapped[int | None] = mapped_column(BigInteger)
    observed_at: Mapped[datetime | None]
    confirmed: Mapped[bool | None] = mapped_column(Boolean)


class StreamListener(Base):
    """A replica's realtime listener of one market, for /readyz and /metrics: the API
    process never sees the poller's memory. Database-clock times."""

    __tablename__ = "stream_listeners"

    replica_id: Mapped[str] = mapped_column(Text, primary_key=True)
    market: Mapped[str] = mapped_column(Text, primary_key=True)
    connected: Mapped[bool] = mapped_column(Boolean)
    connected_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    reconnects: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class RequestBudget(Base):
    """The IP's standing with Binance, shared by every replica (core.request_budget).

    One row per market (core.streams.MARKETS): replicas on one deployment reach Binance
    through what we must assume is one IP, and Binance counts weight and bans per IP and
    per API (spot, USD-M, COIN-M). Times are the database clock's; ``weight_window`` is the
    start of the minute that ``used_weight`` was counted in.
    """

    __tablename__ = "request_budget"

    market: Mapped[str] = mapped_column(Text, primary_key=True)
    used_weight: Mapped[int] = mapped_column(Integer)
    weight_window: Mapped[datetime]
    paused_until: Mapped[datetime]
    pause_reason: Mapped[str] = mapped_column(Text)


_RANGE = text("tstzrange(valid_from, valid_to)")


class VersionMixin:
    """Columns and constraints every versioned table has; ``__key__`` names the key."""

    __key__: tuple[str, ...]
    # Read whole as of an instant (every key at once) in a hot path: such a table gets a
    # GiST index on the range alone. The exclusion constraint's index leads with the key,
    # so a search by the range alone walks most of it.
    __read_whole_as_of__: bool = False

    # sort_order puts key, then validity, then payload, then bookkeeping in `\d table`.
    valid_from: Mapped[datetime] = mapped_column(sort_order=-1)
    valid_to: Mapped[datetime | None] = mapped_column(sort_order=-1)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary, sort_order=1)

    @declared_attr
    def opened_by(cls) -> Mapped[int]:
        return mapped_column(BigInteger, ForeignKey("observations.id"), sort_order=1)

    @declared_attr
    def closed_by(cls) -> Mapped[int | None]:
        return mapped_column(BigInteger, ForeignKey("observations.id"), sort_order=1)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        key = cls.__key__
        name = cls.__tablename__  # type: ignore[attr-defined]
        # After the instant, the key the change feed orders by when it is a symbol (one
        # instant can hold thousands of symbols' versions), byte-ordered like the feed
        # (core.changes). The collation rides in postgresql_ops, which renders after the
        # column: an index expression would differ from what PostgreSQL reflects.
        feed_order = ["symbol"] if "symbol" in key else []
        byte_order = {"symbol": 'COLLATE "C"'} if feed_order else {}
        return (
            # (key, valid_from) doubles as the btree for "latest version before t" lookups.
            PrimaryKeyConstraint(*key, "valid_from"),
            CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="nonempty"),
            ExcludeConstraint(
                *[(k, "=") for k in key],
                (_RANGE, "&&"),
                using="gist",
                name=f"ex_{name}_no_overlap",
            ),
            Index(
                f"ux_{name}_current",
                *key,
                unique=True,
                postgresql_where=text("valid_to IS NULL"),
            ),
            # The change feed's window: versions that open, or close, between two instants,
            # per symbol in the feed's byte order where a table is keyed by symbol.
            Index(f"ix_{name}_valid_from", "valid_from", *feed_order, postgresql_ops=byte_order),
            Index(
                f"ix_{name}_valid_to",
                "valid_to",
                *feed_order,
                postgresql_where=text("valid_to IS NOT NULL"),
                postgresql_ops=byte_order,
            ),
            # Folding old polls deletes observations (core.obslog), and each delete looks
            # for a version that references it in every version table: without these,
            # each look reads a whole table.
            Index(f"ix_{name}_opened_by", "opened_by"),
            Index(
                f"ix_{name}_closed_by",
                "closed_by",
                postgresql_where=text("closed_by IS NOT NULL"),
            ),
            *(
                [Index(f"ix_{name}_range", _RANGE, postgresql_using="gist")]
                if cls.__read_whole_as_of__
                else []
            ),
        )


class SymbolVersion(VersionMixin, Base):
    """A symbol's own fields (everything but its filters) over a validity range."""

    __tablename__ = "symbol_versions"
    __key__ = ("symbol",)

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    status: Mapped[str] = mapped_column(Text)
    base_asset: Mapped[str] = mapped_column(Text)
    quote_asset: Mapped[str] = mapped_column(Text)
    base_asset_precision: Mapped[int | None] = mapped_column(SmallInteger)
    quote_precision: Mapped[int | None] = mapped_column(SmallInteger)
    quote_asset_precision: Mapped[int | None] = mapped_column(SmallInteger)
    base_commission_precision: Mapped[int | None] = mapped_column(SmallInteger)
    quote_commission_precision: Mapped[int | None] = mapped_column(SmallInteger)
    order_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    iceberg_allowed: Mapped[bool | None] = mapped_column(Boolean)
    oco_allowed: Mapped[bool | None] = mapped_column(Boolean)
    oto_allowed: Mapped[bool | None] = mapped_column(Boolean)
    quote_order_qty_market_allowed: Mapped[bool | None] = mapped_column(Boolean)
    allow_trailing_stop: Mapped[bool | None] = mapped_column(Boolean)
    cancel_replace_allowed: Mapped[bool | None] = mapped_column(Boolean)
    amend_allowed: Mapped[bool | None] = mapped_column(Boolean)
    is_spot_trading_allowed: Mapped[bool | None] = mapped_column(Boolean)
    is_margin_trading_allowed: Mapped[bool | None] = mapped_column(Boolean)
    permissions: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    permission_sets: Mapped[list[Any] | None]
    default_self_trade_prevention_mode: Mapped[str | None] = mapped_column(Text)
    allowed_self_trade_prevention_modes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    raw: Mapped[dict[str, Any]]


class SymbolFilterVersion(VersionMixin, Base):
    """One filter of one symbol (keyed by ``filterType``, never by list position)."""

    __tablename__ = "symbol_filter_versions"
    __key__ = ("symbol", "filter_type")
    __read_whole_as_of__ = True  # GET /v1/symbols?as_of=: ~20,000 filters of 3 M versions

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    filter_type: Mapped[str] = mapped_column(Text, sort_order=-2)
    min_price: Mapped[Decimal | None]
    max_price: Mapped[Decimal | None]
    tick_size: Mapped[Decimal | None]
    min_qty: Mapped[Decimal | None]
    max_qty: Mapped[Decimal | None]
    step_size: Mapped[Decimal | None]
    min_notional: Mapped[Decimal | None]
    max_notional: Mapped[Decimal | None]
    apply_min_to_market: Mapped[bool | None] = mapped_column(Boolean)
    apply_max_to_market: Mapped[bool | None] = mapped_column(Boolean)
    avg_price_mins: Mapped[int | None] = mapped_column(Integer)
    multiplier_up: Mapped[Decimal | None]
    multiplier_down: Mapped[Decimal | None]
    bid_multiplier_up: Mapped[Decimal | None]
    bid_multiplier_down: Mapped[Decimal | None]
    ask_multiplier_up: Mapped[Decimal | None]
    ask_multiplier_down: Mapped[Decimal | None]
    max_position: Mapped[Decimal | None]
    parts_limit: Mapped[int | None] = mapped_column(Integer)
    max_num_orders: Mapped[int | None] = mapped_column(Integer)
    max_num_algo_orders: Mapped[int | None] = mapped_column(Integer)
    max_num_iceberg_orders: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]]


class RateLimitColumns:
    """A rate limit of one market's exchangeInfo, keyed by what it limits over which window."""

    __key__: tuple[str, ...] = ("rate_limit_type", "interval", "interval_num")

    rate_limit_type: Mapped[str] = mapped_column(Text, sort_order=-2)
    interval: Mapped[str] = mapped_column(Text, sort_order=-2)
    interval_num: Mapped[int] = mapped_column(Integer, sort_order=-2)
    limit_value: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[dict[str, Any]]


class ExchangeFilterColumns:
    __key__: tuple[str, ...] = ("filter_type",)

    filter_type: Mapped[str] = mapped_column(Text, sort_order=-2)
    raw: Mapped[dict[str, Any]]


class RateLimitVersion(RateLimitColumns, VersionMixin, Base):
    __tablename__ = "rate_limit_versions"


class ExchangeFilterVersion(ExchangeFilterColumns, VersionMixin, Base):
    __tablename__ = "exchange_filter_versions"


# -- futures: a table per market (bench/README.md, "Futures: one table or one per market") --
#
# USD-M and COIN-M contracts share one shape (COIN-M's ``contractStatus`` is ``status``
# here), so each market's tables are the same mixin under its own name. Written by
# poller.parse_futures' row builders: their keys are these columns.


class FuturesSymbolColumns:
    """A futures contract's own fields (everything but its filters)."""

    __key__: tuple[str, ...] = ("symbol",)

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    status: Mapped[str] = mapped_column(Text)  # COIN-M: contractStatus
    pair: Mapped[str] = mapped_column(Text)
    contract_type: Mapped[str] = mapped_column(Text)  # '' seen on one USD-M contract
    delivery_date: Mapped[datetime]  # 2100-12-25 08:00 UTC for a perpetual
    onboard_date: Mapped[datetime]
    contract_size: Mapped[Decimal | None]  # COIN-M: USD face value of one contract
    margin_asset: Mapped[str] = mapped_column(Text)
    base_asset: Mapped[str] = mapped_column(Text)
    quote_asset: Mapped[str] = mapped_column(Text)
    underlying_type: Mapped[str | None] = mapped_column(Text)
    underlying_sub_type: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    price_precision: Mapped[int | None] = mapped_column(SmallInteger)
    quantity_precision: Mapped[int | None] = mapped_column(SmallInteger)
    base_asset_precision: Mapped[int | None] = mapped_column(SmallInteger)
    quote_precision: Mapped[int | None] = mapped_column(SmallInteger)
    equal_qty_precision: Mapped[int | None] = mapped_column(SmallInteger)
    trigger_protect: Mapped[Decimal | None]
    liquidation_fee: Mapped[Decimal | None]
    market_take_bound: Mapped[Decimal | None]
    maint_margin_percent: Mapped[Decimal | None]
    required_margin_percent: Mapped[Decimal | None]
    max_move_order_limit: Mapped[int | None] = mapped_column(Integer)
    order_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    time_in_force: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    permission_sets: Mapped[list[Any] | None]  # flat on USD-M, nested on spot: jsonb
    raw: Mapped[dict[str, Any]]


class FuturesFilterColumns:
    """One filter of one contract, keyed by ``filterType``."""

    __key__: tuple[str, ...] = ("symbol", "filter_type")
    __read_whole_as_of__: bool = True  # a whole market as of t, as for spot's filters

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    filter_type: Mapped[str] = mapped_column(Text, sort_order=-2)
    min_price: Mapped[Decimal | None]
    max_price: Mapped[Decimal | None]
    tick_size: Mapped[Decimal | None]
    min_qty: Mapped[Decimal | None]
    max_qty: Mapped[Decimal | None]
    step_size: Mapped[Decimal | None]
    notional: Mapped[Decimal | None]  # MIN_NOTIONAL's bound (spot's is minNotional)
    multiplier_up: Mapped[Decimal | None]
    multiplier_down: Mapped[Decimal | None]
    multiplier_decimal: Mapped[int | None] = mapped_column(SmallInteger)
    max_num_orders: Mapped[int | None] = mapped_column(Integer)
    max_num_algo_orders: Mapped[int | None] = mapped_column(Integer)
    position_control_side: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]


class UsdmSymbolVersion(FuturesSymbolColumns, VersionMixin, Base):
    __tablename__ = "usdm_symbol_versions"


class UsdmSymbolFilterVersion(FuturesFilterColumns, VersionMixin, Base):
    __tablename__ = "usdm_symbol_filter_versions"


class UsdmAssetVersion(VersionMixin, Base):
    """A margin asset of USD-M's Multi-Assets mode (COIN-M's documented body has none)."""

    __tablename__ = "usdm_asset_versions"
    __key__ = ("asset",)

    asset: Mapped[str] = mapped_column(Text, sort_order=-2)
    margin_available: Mapped[bool | None] = mapped_column(Boolean)
    auto_asset_exchange: Mapped[Decimal | None]
    raw: Mapped[dict[str, Any]]


class UsdmRateLimitVersion(RateLimitColumns, VersionMixin, Base):
    __tablename__ = "usdm_rate_limit_versions"


class UsdmExchangeFilterVersion(ExchangeFilterColumns, VersionMixin, Base):
    __tablename__ = "usdm_exchange_filter_versions"


class CoinmSymbolVersion(FuturesSymbolColumns, VersionMixin, Base):
    __tablename__ = "coinm_symbol_versions"


class CoinmSymbolFilterVersion(FuturesFilterColumns, VersionMixin, Base):
    __tablename__ = "coinm_symbol_filter_versions"


class CoinmRateLimitVersion(RateLimitColumns, VersionMixin, Base):
    __tablename__ = "coinm_rate_limit_versions"


class CoinmExchangeFilterVersion(ExchangeFilterColumns, VersionMixin, Base):
    __tablename__ = "coinm_exchange_filter_versions"


ACCOUNT_KEY = "spot"  # the one account polled: the spot account of the configured key


class AccountVersion(VersionMixin, Base):
    """The account's commissions, permissions and flags (its balances are separate rows).

    ``raw`` is the account object without ``balances`` (versioned per asset) and without
    ``updateTime``: Binance bumps it on every fill, and a timestamp alone is not a change
    of anything in force. The whole body, ``updateTime`` included, is in ``raw_bodies``.
    """

    __tablename__ = "account_versions"
    __key__ = ("account",)

    account: Mapped[str] = mapped_column(Text, sort_order=-2)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    account_type: Mapped[str | None] = mapped_column(Text)
    maker_commission: Mapped[int | None] = mapped_column(Integer)  # legacy, basis points
    taker_commission: Mapped[int | None] = mapped_column(Integer)
    buyer_commission: Mapped[int | None] = mapped_column(Integer)
    seller_commission: Mapped[int | None] = mapped_column(Integer)
    commission_rate_maker: Mapped[Decimal | None]  # commissionRates, as fractions
    commission_rate_taker: Mapped[Decimal | None]
    commission_rate_buyer: Mapped[Decimal | None]
    commission_rate_seller: Mapped[Decimal | None]
    can_trade: Mapped[bool | None] = mapped_column(Boolean)
    can_withdraw: Mapped[bool | None] = mapped_column(Boolean)
    can_deposit: Mapped[bool | None] = mapped_column(Boolean)
    brokered: Mapped[bool | None] = mapped_column(Boolean)
    require_self_trade_prevention: Mapped[bool | None] = mapped_column(Boolean)
    prevent_sor: Mapped[bool | None] = mapped_column(Boolean)
    permissions: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    raw: Mapped[dict[str, Any]]


class BalanceVersion(VersionMixin, Base):
    """One asset's balance; an asset missing from a poll (omitZeroBalances) is closed: zero."""

    __tablename__ = "balance_versions"
    __key__ = ("asset",)

    asset: Mapped[str] = mapped_column(Text, sort_order=-2)
    free: Mapped[Decimal]
    locked: Mapped[Decimal]
    raw: Mapped[dict[str, Any]]


class CommissionVersion(VersionMixin, Base):
    """The account's commission rates on one symbol (``GET /api/v3/account/commission``)."""

    __tablename__ = "commission_versions"
    __key__ = ("symbol",)

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    standard_maker: Mapped[Decimal | None]
    standard_taker: Mapped[Decimal | None]
    standard_buyer: Mapped[Decimal | None]
    standard_seller: Mapped[Decimal | None]
    special_maker: Mapped[Decimal | None]
    special_taker: Mapped[Decimal | None]
    special_buyer: Mapped[Decimal | None]
    special_seller: Mapped[Decimal | None]
    tax_maker: Mapped[Decimal | None]
    tax_taker: Mapped[Decimal | None]
    tax_buyer: Mapped[Decimal | None]
    tax_seller: Mapped[Decimal | None]
    discount_enabled_for_account: Mapped[bool | None] = mapped_column(Boolean)
    discount_enabled_for_symbol: Mapped[bool | None] = mapped_column(Boolean)
    discount_asset: Mapped[str | None] = mapped_column(Text)
    discount: Mapped[Decimal | None]
    raw: Mapped[dict[str, Any]]


SYSTEM_STATUS_KEY = "binance"  # one status for the whole exchange


class SystemStatusVersion(VersionMixin, Base):
    """Whether Binance is operational: status 0 normal, 1 system maintenance."""

    __tablename__ = "system_status_versions"
    __key__ = ("system",)

    system: Mapped[str] = mapped_column(Text, sort_order=-2)
    status: Mapped[int] = mapped_column(SmallInteger)
    message: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]


class DelistingVersion(VersionMixin, Base):
    """An announced delisting of one symbol (``GET /sapi/v1/spot/delist-schedule``).

    Keyed by symbol: ``valid_from`` is when the announcement was first observed, and
    ``delist_time`` when it takes effect; a postponement is a new version, and the
    version closes when Binance drops the entry from its schedule.
    """

    __tablename__ = "delisting_versions"
    __key__ = ("symbol",)

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    delist_time: Mapped[datetime]
    raw: Mapped[dict[str, Any]]


class WalletCoinVersion(VersionMixin, Base):
    """A coin's wallet-wide switches (``GET /sapi/v1/capital/config/getall``).

    ``raw`` is the coin object without its ``networkList`` (each network is versioned
    apart) and without the account's balances, which are never kept (core.wallet).
    """

    __tablename__ = "wallet_coin_versions"
    __key__ = ("coin",)

    coin: Mapped[str] = mapped_column(Text, sort_order=-2)
    name: Mapped[str | None] = mapped_column(Text)
    deposit_all_enable: Mapped[bool | None] = mapped_column(Boolean)
    withdraw_all_enable: Mapped[bool | None] = mapped_column(Boolean)
    trading: Mapped[bool | None] = mapped_column(Boolean)
    is_legal_money: Mapped[bool | None] = mapped_column(Boolean)
    raw: Mapped[dict[str, Any]]


class WalletNetworkVersion(VersionMixin, Base):
    """Whether a coin could be deposited and withdrawn by one network, at what fees.

    A suspension is ``withdraw_enable`` (or ``deposit_enable``) going false, usually with
    its reason in ``withdraw_desc``. Columns a capture era lacks (2021's bodies have no
    ``busy``, ``sameAddress``, ``withdrawInternalMin``...) are NULL; ``raw`` is the network
    object as Binance sent it.
    """

    __tablename__ = "wallet_network_versions"
    __key__ = ("coin", "network")

    coin: Mapped[str] = mapped_column(Text, sort_order=-2)
    network: Mapped[str] = mapped_column(Text, sort_order=-2)
    name: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool | None] = mapped_column(Boolean)
    deposit_enable: Mapped[bool] = mapped_column(Boolean)
    withdraw_enable: Mapped[bool] = mapped_column(Boolean)
    withdraw_fee: Mapped[Decimal | None]
    withdraw_min: Mapped[Decimal | None]
    withdraw_max: Mapped[Decimal | None]
    withdraw_integer_multiple: Mapped[Decimal | None]
    withdraw_internal_min: Mapped[Decimal | None]
    deposit_dust: Mapped[Decimal | None]
    min_confirm: Mapped[int | None] = mapped_column(Integer)
    unlock_confirm: Mapped[int | None] = mapped_column(Integer)
    busy: Mapped[bool | None] = mapped_column(Boolean)
    deposit_desc: Mapped[str | None] = mapped_column(Text)
    withdraw_desc: Mapped[str | None] = mapped_column(Text)
    special_tips: Mapped[str | None] = mapped_column(Text)
    special_withdraw_tips: Mapped[str | None] = mapped_column(Text)
    estimated_arrival_time: Mapped[int | None] = mapped_column(Integer)
    same_address: Mapped[bool | None] = mapped_column(Boolean)
    contract_address: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]


class MarginPairColumns:
    """What Binance says of a margin pair, cross (``GET /sapi/v1/margin/allPairs``) or
    isolated (``GET /sapi/v1/margin/isolated/allPairs``): the same object, the isolated one
    without ``id``.

    ``delist_time`` is the pair's announced delisting, read from either unit Binance has
    documented (poller.parse_margin.delist_instant: its docs' example is in seconds, every
    other time of the API in milliseconds); ``raw`` keeps the number as sent.
    """

    symbol: Mapped[str] = mapped_column(Text, sort_order=-2)
    pair_id: Mapped[int | None] = mapped_column(BigInteger)
    base: Mapped[str | None] = mapped_column(Text)
    quote: Mapped[str | None] = mapped_column(Text)
    is_margin_trade: Mapped[bool] = mapped_column(Boolean)
    is_buy_allowed: Mapped[bool] = mapped_column(Boolean)
    is_sell_allowed: Mapped[bool] = mapped_column(Boolean)
    delist_time: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]]


class MarginPairVersion(MarginPairColumns, VersionMixin, Base):
    """A cross-margin pair: could it be margined, bought, sold, and its delist time.

    Cross and isolated pairs are two tables, not one keyed by type: each is written by its
    own stream (its own call), and a snapshot closes what its answer lacks in its tables,
    so a table shared by two streams would have each close the other's pairs.
    """

    __tablename__ = "margin_pair_versions"
    __key__ = ("symbol",)


class MarginIsolatedPairVersion(MarginPairColumns, VersionMixin, Base):
    """An isolated-margin pair (``pair_id`` NULL: Binance gives these no id)."""

    __tablename__ = "margin_isolated_pair_versions"
    __key__ = ("symbol",)


class MarginDelistingVersion(VersionMixin, Base):
    """An announced margin delisting (``GET /sapi/v1/margin/delist-schedule``): a cross
    margin asset (``type`` ``cross``, ``name`` the asset) or an isolated margin symbol
    (``isolated``, the symbol). As with the spot schedule, ``valid_from`` is when the
    announcement was first observed and ``delist_time`` when it takes effect; a
    postponement is a new version, and the version closes when the entry leaves the
    schedule."""

    __tablename__ = "margin_delisting_versions"
    __key__ = ("type", "name")

    type: Mapped[str] = mapped_column(Text, sort_order=-2)
    name: Mapped[str] = mapped_column(Text, sort_order=-2)
    delist_time: Mapped[datetime]
    raw: Mapped[dict[str, Any]]


class SchemaVersion(VersionMixin, Base):
    """A field path of a stream's documents and the JSON types it held (core.schema).

    One table for every stream, keyed by stream: a stream writes, and closes, only its
    own paths (core.ingest). A path absent from a complete response is closed: Binance
    stopped sending it.
    """

    __tablename__ = "schema_versions"
    __key__ = ("stream", "path")

    stream: Mapped[str] = mapped_column(Text, sort_order=-2)
    path: Mapped[str] = mapped_column(Text, sort_order=-2)
    types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    raw: Mapped[dict[str, Any]]


VERSIONED_TABLES: dict[str, type[VersionMixin]] = {
    cls.__tablename__: cls
    for cls in (
        SymbolVersion,
        SymbolFilterVersion,
        RateLimitVersion,
        ExchangeFilterVersion,
        UsdmSymbolVersion,
        UsdmSymbolFilterVersion,
        UsdmAssetVersion,
        UsdmRateLimitVersion,
        UsdmExchangeFilterVersion,
        CoinmSymbolVersion,
        CoinmSymbolFilterVersion,
        CoinmRateLimitVersion,
        CoinmExchangeFilterVersion,
        AccountVersion,
        BalanceVersion,
        CommissionVersion,
        SystemStatusVersion,
        DelistingVersion,
        WalletCoinVersion,
        WalletNetworkVersion,
        MarginPairVersion,
        MarginIsolatedPairVersion,
        MarginDelistingVersion,
        SchemaVersion,
    )
}

# Columns every versioned table has (VersionMixin) besides its typed ones.
_VERSION_BOOKKEEPING = frozenset(
    {"valid_from", "valid_to", "content_hash", "opened_by", "closed_by", "raw"}
)


def typed_columns(table: str, *, key: bool = True) -> list[str]:
    """The typed columns of a versioned table in its model's order (key first), for every
    reader and parser that lists them; ``key=False`` leaves the key out."""
    model = VERSIONED_TABLES[table]
    skip = _VERSION_BOOKKEEPING if key else _VERSION_BOOKKEEPING | set(model.__key__)
    columns = model.__table__.c  # type: ignore[attr-defined]
    return [c.name for c in columns if c.name not in skip]
