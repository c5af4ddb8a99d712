"""The signed streams' jobs (account, commissions, delistings) and the key-safety gate.

A metadata poller needs a key that can read and nothing else: a leaked read-only key
costs privacy, a leaked trading or withdrawal key costs money. So before the first
signed poll the key's own restrictions are read (``/sapi/v1/account/apiRestrictions``)
and a key that can do more is refused unless the operator explicitly allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import Engine

from core import streams as catalogue
from core.clock import Clock, utc_now
from core.config import Settings
from core.ingest import Snapshot, StreamWriter
from core.streams import Stream
from poller.binance import Response, binance_error, deadline_seconds
from poller.job import StreamJob, resolve_parser
from poller.keyed import KeyedStreamJob
from poller.retry import RetryingClient
from poller.signed_client import SignedClient
from poller.signing import Params, signer_from_settings

log = logging.getLogger(__name__)

API_RESTRICTIONS_PATH = "/sapi/v1/account/apiRestrictions"

# Restriction flags that only let the key read; any other enable*/permits* flag that is
# true (withdrawals, transfers, spot/margin/futures/options trading, and any flag Binance
# adds later) is a power this poller does not need.
READ_ONLY_FLAGS = frozenset({"enableReading", "enableFixReadOnly"})


class UnsafeKeyError(Exception):
    """The API key may do more than read, or its restrictions could not be read."""


class SignedStreamJob(StreamJob):
    """A stream whose endpoint is signed: every poll is signed afresh by ``signed``."""

    def __init__(
        self,
        stream: str,
        path: str,
        params: Params,
        parse: Callable[[bytes], Snapshot],
        signed: SignedClient,
        writer: StreamWriter,
        replica_id: str,
        clock: Clock = utc_now,
        deadline_seconds: float | None = None,
    ) -> None:
        super().__init__(
            stream, path, parse, signed.retrying, writer, replica_id, clock, deadline_seconds
        )
        self.signed = signed
        self.params = list(params)

    def fetch(self) -> Response:
        return self.signed.get(self.path, self.params, self.deadline())


class CommissionJob(SignedStreamJob):
    """Commissions of the configured symbols, recorded together as one observation.

    One observation holds every symbol's answer (a JSON list of the bodies as sent),
    because a snapshot closes what it lacks: recorded one by one, each symbol's answer
    would close all the others. Any failed call fails the observation; nothing closes.
    The calls share one deadline, the poll's: N symbols never take N deadlines.
    """

    def __init__(
        self,
        declared: Stream,
        symbols: tuple[str, ...],
        signed: SignedClient,
        writer: StreamWriter,
        replica_id: str,
        clock: Clock = utc_now,
        deadline_seconds: float | None = None,
    ) -> None:
        super().__init__(
            declared.name,
            declared.path,
            declared.params,
            resolve_parser(declared.parser),
            signed,
            writer,
            replica_id,
            clock,
            deadline_seconds,
        )
        self.symbols = symbols

    def fetch(self) -> Response:
        bodies: list[bytes] = []
        duration = attempts = backoff_ms = 0
        used_weight = None
        deadline = self.deadline()
        for symbol in self.symbols:
            response = self.signed.get(self.path, [("symbol", symbol)], deadline)
            duration += response.duration_ms
            attempts += response.attempts
            backoff_ms += response.backoff_ms
            if not response.ok or response.body is None:
                return replace(
                    response, duration_ms=duration, attempts=attempts, backoff_ms=backoff_ms
                )
            bodies.append(response.body)
            used_weight = response.used_weight
        return Response(
            200,
            b"[" + b",".join(bodies) + b"]",
            duration,
            used_weight,
            attempts=attempts,
            backoff_ms=backoff_ms,
        )


def unsafe_permissions(restrictions: Mapping[str, Any]) -> list[str]:
    """The restriction flags that let the key do more than read."""
    return sorted(
        name
        for name, value in restrictions.items()
        if name.startswith(("enable", "permits")) and value is True and name not in READ_ONLY_FLAGS
    )


def check_key(signed: SignedClient, *, allow_unsafe: bool) -> None:
    """Refuse (UnsafeKeyError) a key that can do more than read, unless allowed; warn."""
    response = signed.get(API_RESTRICTIONS_PATH)
    restrictions: Any = None
    if response.ok and response.body is not None:
        try:
            restrictions = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            restrictions = None
    if not isinstance(restrictions, dict):
        code, msg = binance_error(response.body)
        reason = f"Binance error {code}: {msg}" if code is not None else response.error_message
        problem = f"cannot read the API key's restrictions ({reason or 'no valid answer'})"
        if not allow_unsafe:
            raise UnsafeKeyError(f"{problem}; refusing to poll the account")
        log.warning("%s; polling anyway because [binance] allow_unsafe_key = true", problem)
        return
    unsafe = unsafe_permissions(restrictions)
    if unsafe:
        problem = f"the API key can do more than read ({', '.join(unsafe)})"
        if not allow_unsafe:
            raise UnsafeKeyError(
                f"{problem}: give exmeta a read-only key, or set [binance] allow_unsafe_key = true"
            )
        log.warning("%s; polling anyway because [binance] allow_unsafe_key = true", problem)
    if not restrictions.get("ipRestrict"):
        log.warning("the API key has no IP restriction: restrict it to this host's addresses")


def _signed_job(
    declared: Stream,
    settings: Settings,
    signed: SignedClient,
    writer: StreamWriter,
    replica_id: str,
    deadline_seconds: float,
) -> StreamJob:
    if not declared.signed:
        return KeyedStreamJob(
            declared,
            signed.retrying,
            settings.binance.api_key,
            writer,
            replica_id,
            deadline_seconds,
        )
    if declared.per_commission_symbol:
        return CommissionJob(
            declared,
            settings.poller.commission_symbols,
            signed,
            writer,
            replica_id,
            deadline_seconds=deadline_seconds,
        )
    return SignedStreamJob(
        declared.name,
        declared.path,
        declared.params,
        resolve_parser(declared.parser),
        signed,
        writer,
        replica_id,
        deadline_seconds=deadline_seconds,
    )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def signed_jobs(
    settings: Settings, engine: Engine, client: RetryingClient, replica_id: str
) -> list[tuple[StreamJob, float]]:
    """The enabled jobs of the streams that need the key (signed, or sent with the key
    header: poller.keyed) with their intervals, after the key passed the safety check.

    Raises SigningKeyError (unusable private key) or UnsafeKeyError; with no key
    configured, says so once and returns no jobs.
    """
    enabled = settings.enabled_streams()
    if not settings.binance.has_key():
        off = [
            s.name
            for s in catalogue.CATALOGUE
            if s.needs_key and (not s.per_commission_symbol or settings.poller.commission_symbols)
        ]
        log.info(
            "%s streams are off: no API key configured"
            " (set EXMETA_BINANCE__API_KEY and EXMETA_BINANCE__API_SECRET)",
            _listed(off),
        )
        return []
    signed = SignedClient.from_settings(
        settings.binance, client, signer_from_settings(settings.binance)
    )
    signed.clock.sync()
    check_key(signed, allow_unsafe=settings.binance.allow_unsafe_key)
    tolerance = settings.poller.server_time_tolerance()
    intervals = settings.stream_intervals()
    return [
        (
            _signed_job(
                declared,
                settings,
                signed,
                StreamWriter(engine, declared.name, tolerance),
                replica_id,
                deadline_seconds(settings.binance, intervals[declared.name]),
            ),
            intervals[declared.name],
        )
        for declared in catalogue.CATALOGUE
        if declared.needs_key and declared.name in enabled
    ]
