"""Small builders for test data: exchangeInfo documents and recorded observations."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from core.bodies import blank_server_time
from core.clock import Clock, utc_now
from core.config import Settings, replace_section
from core.ingest import Fetched, Recorded, Snapshot, StreamWriter
from core.streams import BASE_URL_SETTINGS, stream
from poller.job import StreamJob, stream_job
from poller.parse import parse_exchange_info
from poller.parse_account import (
    parse_account,
    parse_commissions,
    parse_delist_schedule,
    parse_system_status,
)
from poller.parse_futures import parse_coinm_exchange_info, parse_usdm_exchange_info
from poller.parse_margin import parse_cross_pairs
from poller.retry import RetryingClient, SharedBudget
from poller.runner import retrying_client


def sim_urls(url: str) -> dict[str, str]:
    """Every market's ``[binance]`` base URL aimed at one sim (which serves all three), so
    that no test polls the real futures hosts the defaults name."""
    return {key: url for key in BASE_URL_SETTINGS.values()}


def sim_env(url: str) -> dict[str, str]:
    """``sim_urls`` as the ``EXMETA_BINANCE__*`` variables of an ``exmeta`` process."""
    return {f"EXMETA_BINANCE__{key.upper()}": value for key, value in sim_urls(url).items()}


def poller_settings(base_url: str, **binance: Any) -> Settings:
    """Settings for a poller talking to ``base_url`` on every market (the sim serves all
    three), quick to fail and to retry."""
    defaults: dict[str, Any] = {
        "connect_timeout_seconds": 1.0,
        "timeout_seconds": 5.0,
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.4,
    }
    return replace_section(Settings(), "binance", **sim_urls(base_url), **{**defaults, **binance})


def client_for(
    base_url: str,
    stop: threading.Event | None = None,
    shared: SharedBudget | None = None,
    stream: str = "exchange_info",
    **binance: Any,
) -> RetryingClient:
    """The replica's retrying client for ``stream``'s market, as ``exmeta poll`` builds it,
    aimed at ``base_url``."""
    settings = poller_settings(base_url, **binance)
    return retrying_client(settings, stop or threading.Event(), shared, stream)


def exchange_info_job(
    client: RetryingClient,
    writer: StreamWriter,
    replica_id: str,
    clock: Clock = utc_now,
    deadline_seconds: float | None = None,
) -> StreamJob:
    """The spot exchangeInfo job alone, as the tests of one poller path build it."""
    return stream_job(stream("exchange_info"), client, writer, replica_id, clock, deadline_seconds)


def system_status_job(
    client: RetryingClient,
    writer: StreamWriter,
    replica_id: str,
    deadline_seconds: float | None = None,
) -> StreamJob:
    """The system status job alone (unsigned, so with or without a key)."""
    return stream_job(
        stream("system_status"), client, writer, replica_id, deadline_seconds=deadline_seconds
    )


def exchange_info_poll(
    engine: Engine, base_url: str, replica_id: str = "test", **binance: Any
) -> StreamJob:
    """The exchange_info job as `exmeta poll` builds it, aimed at ``base_url``, one attempt
    per poll unless ``max_attempts`` says otherwise."""
    client = client_for(base_url, **{"max_attempts": 1, **binance})
    return exchange_info_job(client, StreamWriter(engine, "exchange_info"), replica_id)


def at(text: str) -> datetime:
    """``at("2024-01-01T00:00:00")`` -> that instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def symbol(
    name: str,
    *,
    status: str = "TRADING",
    base: str | None = None,
    quote: str = "USDT",
    tick_size: str = "0.01000000",
    min_qty: str = "0.00100000",
    step_size: str = "0.00100000",
    market_max_qty: str = "1000.00000000",
    min_notional: str = "5.00000000",
) -> dict[str, Any]:
    return {
        "symbol": name,
        "status": status,
        "baseAsset": base or name.removesuffix(quote),
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": tick_size,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": min_qty,
                "maxQty": "9000.00000000",
                "stepSize": step_size,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": market_max_qty,
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": ["SPOT"],
    }


def exchange_info(*symbols: dict[str, Any], weight_limit: int = 6000) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": 0,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ],
        "exchangeFilters": [],
        "symbols": [copy.deepcopy(s) for s in symbols],
    }


def record_body(
    engine: Engine,
    stream: str,
    body: bytes,
    when: datetime,
    parse: Callable[[bytes], Snapshot],
    *,
    writer: StreamWriter | None = None,
    replica_id: str = "test",
    sent_monotonic: float | None = None,
) -> Recorded:
    """Record ``body`` as the successful answer ``stream`` got at ``when``.

    With ``sent_monotonic`` (a request sent then), as a poller records it: ``when`` dates
    it only if it agrees with the database clock (core.dating).
    """
    fetched = answered(stream, body, when, replica_id=replica_id, sent_monotonic=sent_monotonic)
    return (writer or StreamWriter(engine, stream)).record(fetched, parse)


def answered(
    stream: str,
    body: bytes,
    when: datetime,
    *,
    replica_id: str = "test",
    sent_monotonic: float | None = None,
) -> Fetched:
    """``body`` as the successful answer ``stream`` got at ``when`` (see record_body)."""
    return Fetched(
        stream=stream,
        replica_id=replica_id,
        requested_at=when,
        duration_ms=1,
        http_status=200,
        used_weight=20,
        body=body,
        server_time=when,  # pins observed_at to the test's timeline (else the database clock)
        sent_monotonic=sent_monotonic,
    )


def exchange_info_answered(document: dict[str, Any], when: datetime) -> Fetched:
    """``document`` as the exchangeInfo answer of ``when``, volatile serverTime blanked."""
    raw = orjson.dumps({**document, "serverTime": int(when.timestamp() * 1000)})
    return answered("exchange_info", blank_server_time(raw)[0], when)


def record_exchange_info(
    engine: Engine,
    document: dict[str, Any] | bytes,
    when: datetime,
    *,
    writer: StreamWriter | None = None,
    replica_id: str = "test",
    sent_monotonic: float | None = None,
) -> Recorded:
    """Record ``document`` as the exchangeInfo Binance served at ``when`` (see record_body)."""
    if isinstance(document, dict):
        document = {**document, "serverTime": int(when.timestamp() * 1000)}
        raw = orjson.dumps(document)
    else:
        raw = document
    body, _ = blank_server_time(raw)
    return record_body(
        engine,
        "exchange_info",
        body,
        when,
        parse_exchange_info,
        writer=writer,
        replica_id=replica_id,
        sent_monotonic=sent_monotonic,
    )


def record_failure(
    engine: Engine, when: datetime, *, error_class: str = "http_error", status: int = 503
) -> Recorded:
    fetched = Fetched(
        stream="exchange_info",
        replica_id="test",
        requested_at=when,
        duration_ms=1,
        http_status=status,
        server_time=when,  # pins observed_at to the test's timeline (else the database clock)
        error_class=error_class,
        error_message="Service Unavailable",
    )
    return StreamWriter(engine, "exchange_info").record(fetched)


STREAM_PARSERS: dict[str, Callable[[bytes], Snapshot]] = {
    "account": parse_account,
    "account_commission": parse_commissions,
    "system_status": parse_system_status,
    "delistings": parse_delist_schedule,
    "margin_pairs": parse_cross_pairs,
    "usdm_exchange_info": parse_usdm_exchange_info,
    "coinm_exchange_info": parse_coinm_exchange_info,
}


def record_stream(engine: Engine, stream: str, document: Any, when: datetime) -> Recorded:
    """Record ``document`` as the answer of ``stream`` (one of STREAM_PARSERS) at ``when``."""
    return record_body(engine, stream, orjson.dumps(document), when, STREAM_PARSERS[stream])


def account_document(
    *,
    can_trade: bool = True,
    permissions: tuple[str, ...] = ("SPOT",),
    maker: str = "0.00100000",
    btc: str = "1.00000000",
    update_time: int = 1,
) -> dict[str, Any]:
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": maker,
            "taker": "0.00100000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": can_trade,
        "canWithdraw": False,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_time,
        "accountType": "SPOT",
        "balances": [{"asset": "BTC", "free": btc, "locked": "0.00000000"}],
        "permissions": list(permissions),
        "uid": 354937868,
    }


def commission_document(symbol: str = "BTCUSDT", taker: str = "0.00100000") -> dict[str, Any]:
    rates = {"maker": "0.00100000", "taker": taker, "buyer": "0.00000000", "seller": "0.00000000"}
    return {
        "symbol": symbol,
        "standardCommission": rates,
        "specialCommission": {k: "0.00000000" for k in rates},
        "taxCommission": {k: "0.00000000" for k in rates},
        "discount": {
            "enabledForAccount": True,
            "enabledForSymbol": True,
            "discountAsset": "BNB",
            "discount": "0.75000000",
        },
    }


def enlarged(document: dict[str, Any], size_bytes: int) -> dict[str, Any]:
    """``document`` with renamed copies of its symbols (``BTCUSDT2``, ...) until its JSON is
    at least ``size_bytes`` long: a body as large as today's largest without storing one."""
    grown = copy.deepcopy(document)
    originals = document["symbols"]
    copies = 0
    while len(orjson.dumps(grown)) < size_bytes:
        copies += 1
        grown["symbols"] += [{**s, "symbol": f"{s['symbol']}{copies + 1}"} for s in originals]
    return grown
