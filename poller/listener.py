"""Realtime listeners: one WebSocket connection per market, on a thread of its own.

Binance pushes some changes (futures ``!contractInfo``) and hints at others (spot market
data stops for a symbol in BREAK, notes §11). A listener turns either into a signal
(core.signals) and a request for an immediate poll (poller.triggers); it never writes a
version, so the history keeps one source of truth and a false suspicion costs one poll.

A connection is kept alive by websockets' keepalive (our pings; a missing pong closes it)
and replaced when it ends: at once after a clean close (Binance's 24 h limit, a
``serverShutdown`` event), after a back-off with full jitter after a failure. Events sent
while no connection was open are lost, so each reconnection asks for a poll too.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from core import signals
from core.config import RealtimeSettings, Settings
from poller.parse import ms_to_datetime
from poller.signing import Signer, signer_from_settings
from poller.triggers import ImmediatePolls

log = logging.getLogger(__name__)

# How long a read waits before the listener looks at the time (silences, heartbeat, stop).
_READ_SECONDS: Final = 0.05
# Messages read back to back, at most, before silences are looked at again: a stream that
# never lets the reader catch up must not hide its silences for good.
_BACKLOG_MESSAGES: Final = 1000
# Close codes of a connection ended on purpose (Binance's 24 h limit, serverShutdown):
# reconnect at once rather than back off.
_CLEAN_CLOSES: Final = frozenset({1000, 1001})
# Gaps a symbol's cadence is learnt from before a silence can count as a suspicion.
MIN_GAPS: Final = 3
# Weight of the newest gap in a symbol's learnt cadence (an exponential average).
CADENCE_ALPHA: Final = 0.2


class SignalSink(Protocol):
    """Where handlers send what they saw (``Signals``; a recorder in unit tests)."""

    def signal(
        self, stream: str, kind: str, symbol: str | None = None, event_ms: int | None = None
    ) -> None: ...


class Signals:
    """Asks for a signal's poll, if the share of the weight budget allows, and records it.

    The poll is asked for first: the record is a commit on this thread, and the poll that
    answers the signal ties it to itself once it is recorded (poller.triggers).
    """

    def __init__(self, engine: Engine, replica_id: str, immediate: ImmediatePolls) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.immediate = immediate

    def signal(
        self, stream: str, kind: str, symbol: str | None = None, event_ms: int | None = None
    ) -> None:
        polled = self.immediate.allow(stream)
        ticket = self.immediate.ask(stream) if polled else None
        event_at = None if event_ms is None else _event_time(event_ms)
        signal_id = None
        try:
            with self.engine.begin() as conn:
                signal_id = signals.record(
                    conn,
                    stream,
                    self.replica_id,
                    kind,
                    symbol=symbol,
                    event_at=event_at,
                    polled=polled,
                )
        except SQLAlchemyError as exc:
            # The poll matters more than its record: it was asked for all the same.
            log.warning("%s %s signal not recorded: %s", stream, kind, exc)
        finally:
            if ticket is not None:  # its poll waits for this, recorded or not
                self.immediate.recorded(stream, ticket, signal_id)
        log.info(
            "%s %s%s: %s",
            stream,
            kind,
            f" {symbol}" if symbol else "",
            "immediate poll" if polled else "over the weight share, not polled",
        )


def _event_time(ms: int) -> datetime | None:
    try:
        return ms_to_datetime(ms)
    except (OverflowError, ValueError, OSError):
        return None


class Handler(Protocol):
    """What one market's listener does with what it hears."""

    streams: tuple[str, ...]  # Binance's stream names to subscribe to

    def opened(self, connection: ClientConnection) -> None:
        """Anything to send once connected (a subscription request)."""

    def connected(self, first: bool, now: float) -> None: ...

    def event(self, event: dict[str, Any], now: float) -> None: ...

    def tick(self, now: float) -> None: ...


class ContractInfo:
    """Futures: each ``!contractInfo`` event asks for a poll of the market's exchangeInfo."""

    def __init__(self, stream: str, sink: SignalSink) -> None:
        self.stream = stream
        self.sink = sink
        self.streams: tuple[str, ...] = ("!contractInfo",)

    def opened(self, connection: ClientConnection) -> None:
        """Market streams are subscribed to by their URL."""

    def connected(self, first: bool, now: float) -> None:
        if not first:
            self.sink.signal(self.stream, "reconnected")

    def event(self, event: dict[str, Any], now: float) -> None:
        if event.get("e") != "contractInfo" or not isinstance(event.get("s"), str):
            return
        event_ms = event.get("E")
        self.sink.signal(
            self.stream,
            "contract_info",
            event["s"],
            event_ms if isinstance(event_ms, int) else None,
        )

    def tick(self, now: float) -> None:
        """Nothing to infer: the contract events are pushed."""


@dataclass
class _Track:
    """What is known of one symbol's market data: when it last came, how often it does."""

    last: float
    last_event_ms: int | None = None
    cadence: float | None = None
    gaps: int = 0
    suspected: bool = False
    # When its silence becomes a suspicion (None: cadence not learnt yet).
    deadline: float | None = None


def silence_limit(cadence: float, factor: float, floor: float) -> float:
    """How long a symbol may stay silent before a status change is suspected."""
    return max(floor, factor * cadence)


class SpotSilences:
    """Spot: learns each symbol's cadence from its market data and suspects a status
    change (BREAK stops market data, notes §11) when it is silent well beyond it.

    ``<symbol>@trade`` for the symbols named, ``!miniTicker@arr`` (at most once a second)
    for the rest; a symbol followed by trade ignores its miniTicker entries, whose cadence
    is another. One suspicion per silence; the symbol's next message ends it, and is a
    signal too (``resumed``): a symbol back from BREAK trades again.

    Deadlines wait in a heap, so that a tick costs only the silences that are due: the
    listener ticks every few dozen milliseconds, spot has thousands of symbols, and this
    thread shares the interpreter with the polls it asks for.
    """

    def __init__(
        self,
        stream: str,
        sink: SignalSink,
        trade_symbols: tuple[str, ...],
        factor: float,
        floor: float,
    ) -> None:
        self.stream = stream
        self.sink = sink
        self.factor = factor
        self.floor = floor
        self._traded = frozenset(trade_symbols)
        self.streams = ("!miniTicker@arr", *(f"{s.lower()}@trade" for s in trade_symbols))
        self.tracks: dict[str, _Track] = {}
        self._deadlines: list[tuple[float, str]] = []

    def opened(self, connection: ClientConnection) -> None:
        """Market streams are subscribed to by their URL."""

    def connected(self, first: bool, now: float) -> None:
        # The time without a connection is no silence of the symbols'.
        self._deadlines.clear()
        for symbol, track in self.tracks.items():
            track.last = now
            track.suspected = False
            self._schedule(symbol, track)
        if not first:
            self.sink.signal(self.stream, "reconnected")

    def event(self, event: dict[str, Any], now: float) -> None:
        kind, symbol = event.get("e"), event.get("s")
        if not isinstance(symbol, str):
            return
        if kind == "24hrMiniTicker" and symbol in self._traded:
            return
        if kind not in ("trade", "24hrMiniTicker"):
            return
        event_ms = event.get("E")
        track = self.tracks.get(symbol)
        if track is None:
            self.tracks[symbol] = _Track(now, event_ms if isinstance(event_ms, int) else None)
            return
        gap = now - track.last
        if not track.suspected:  # a silence says nothing of the cadence
            track.cadence = (
                gap
                if track.cadence is None
                else track.cadence + CADENCE_ALPHA * (gap - track.cadence)
            )
            track.gaps += 1
        track.last = now
        track.last_event_ms = event_ms if isinstance(event_ms, int) else None
        self._schedule(symbol, track)
        if track.suspected:
            track.suspected = False
            self.sink.signal(self.stream, "resumed", symbol, track.last_event_ms)

    def _schedule(self, symbol: str, track: _Track) -> None:
        if track.gaps < MIN_GAPS or track.cadence is None:
            track.deadline = None
            return
        track.deadline = track.last + silence_limit(track.cadence, self.factor, self.floor)
        heapq.heappush(self._deadlines, (track.deadline, symbol))

    def tick(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] < now:
            deadline, symbol = heapq.heappop(self._deadlines)
            track = self.tracks[symbol]
            if track.deadline != deadline or track.suspected:
                continue  # it spoke since: a later deadline is in the heap
            track.suspected = True
            self.sink.signal(self.stream, "silence", symbol, track.last_event_ms)


# The user data stream's events (notes §17) and the signal each is.
_ACCOUNT_EVENTS: Final = {
    "outboundAccountPosition": "account_update",
    "balanceUpdate": "balance_update",
}


class AccountEvents:
    """The user data stream (spot's WebSocket API, notes §17): each balance event asks for an
    immediate account poll, and its time tightens the evidence of the balances it moved.

    Subscribed with ``userDataStream.subscribe.signature`` (the listenKey flow is gone
    since 2026-02-20): the key and a signature over the request's parameters, as a signed
    REST request is signed.
    """

    def __init__(
        self, sink: SignalSink, api_key: str, signer: Signer, clock: Callable[[], float] = time.time
    ) -> None:
        self.sink = sink
        self.api_key = api_key
        self.signer = signer
        self.clock = clock
        self.streams: tuple[str, ...] = ()

    def opened(self, connection: ClientConnection) -> None:
        params = {"apiKey": self.api_key, "timestamp": str(int(self.clock() * 1000))}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["signature"] = self.signer.sign(payload)
        request = {"id": "exmeta-user-data", "method": SUBSCRIBE_METHOD, "params": params}
        connection.send(orjson.dumps(request).decode())

    def connected(self, first: bool, now: float) -> None:
        if not first:
            self.sink.signal("account", "reconnected")

    def event(self, event: dict[str, Any], now: float) -> None:
        kind = _ACCOUNT_EVENTS.get(str(event.get("e")))
        event_ms = event.get("E") if isinstance(event.get("E"), int) else None
        if kind is None:
            if event.get("status") not in (None, 200):
                log.warning("user data stream refused: %s", event.get("error"))
            return
        moved = event.get("B") if kind == "account_update" else [{"a": event.get("a")}]
        for balance in moved if isinstance(moved, list) else []:
            if isinstance(balance, dict) and isinstance(balance.get("a"), str):
                self.sink.signal("account", kind, balance["a"], event_ms)

    def tick(self, now: float) -> None:
        """Nothing to infer: balance events are pushed."""


# Binance's WebSocket API method that subscribes a signed session to the user data stream.
SUBSCRIBE_METHOD: Final = "userDataStream.subscribe.signature"


def backoff_seconds(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^failures)], so that many replicas
    cut off together do not all come back in step."""
    return rng.uniform(0, min(cap, base * 2.0**failures))


def stream_path(streams: tuple[str, ...]) -> str:
    """A combined stream's path: events come as ``{"stream", "data"}`` whatever their
    number."""
    return "/stream?streams=" + "/".join(streams)


class MarketListener:
    """One market's connection, kept open on a thread of its own until ``stop``."""

    def __init__(
        self,
        market: str,
        handler: Handler,
        settings: RealtimeSettings,
        engine: Engine,
        replica_id: str,
        stop: threading.Event,
        heartbeat_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        url: str | None = None,
    ) -> None:
        self.market = market
        self.handler = handler
        self.settings = settings
        self.engine = engine
        self.replica_id = replica_id
        self.stop = stop
        self.heartbeat_seconds = heartbeat_seconds
        self.clock = clock
        self.url = url or settings.stream_url(market) + stream_path(handler.streams)
        self.reconnects = 0
        self._connected_at: float | None = None
        self._last_message: float | None = None
        self._beaten = float("-inf")
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"listen {market}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        first = True
        while not self.stop.is_set():
            clean = False
            try:
                with connect(
                    self.url,
                    open_timeout=self.settings.ping_timeout_seconds,
                    ping_interval=self.settings.ping_interval_seconds,
                    ping_timeout=self.settings.ping_timeout_seconds,
                    close_timeout=1,
                    compression=None,
                    max_size=None,
                ) as connection:
                    failures = 0
                    self.handler.opened(connection)
                    self._opened(first)
                    first = False
                    clean = self._read(connection)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                log.warning("%s stream: cannot connect to %s: %s", self.market, self.url, exc)
            except Exception:
                # A bug in a handler must not end the listening for good: log, reconnect.
                log.exception("%s stream listener failed; reconnecting", self.market)
            lasted = 0.0 if self._connected_at is None else self.clock() - self._connected_at
            self._connected_at = None
            self._beat(force=True)
            # A server that closes every connection at once is failing, not cycling.
            if clean and lasted >= self.settings.reconnect_base_seconds:
                continue
            delay = backoff_seconds(
                failures,
                self.settings.reconnect_base_seconds,
                self.settings.reconnect_cap_seconds,
                self._rng,
            )
            failures += 1
            self.stop.wait(delay)

    def _opened(self, first: bool) -> None:
        now = self.clock()
        if not first:
            self.reconnects += 1
        self._connected_at = now
        log.info("%s stream connected (%s)", self.market, "first" if first else "again")
        self._beat(force=True)
        self.handler.connected(first, now)

    def _read(self, connection: ClientConnection) -> bool:
        """Hand every event to the handler until the connection ends or ``stop``; True if
        it ended cleanly (reconnect at once).

        Silences are looked at only once the messages already received are read: after
        this thread was held up (a busy machine, the interpreter busy with a poll), the
        messages that queued meanwhile would otherwise make every symbol behind them look
        silent, and ask for polls for nothing.
        """
        backlog = 0
        while not self.stop.is_set():
            try:
                raw = connection.recv(timeout=0 if backlog else _READ_SECONDS)
            except TimeoutError:
                raw = None
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                log.info("%s stream closed (%s)", self.market, code or "no close frame")
                return code in _CLEAN_CLOSES
            now = self.clock()
            if raw is not None:
                self._last_message = now
                if self._dispatch(raw, now):
                    log.info("%s stream: serverShutdown; reconnecting", self.market)
                    return True
                backlog += 1
                if backlog < _BACKLOG_MESSAGES:
                    continue
            backlog = 0
            self.handler.tick(now)
            self._beat()
        return True

    def _dispatch(self, raw: str | bytes, now: float) -> bool:
        """Hand the message's events over; True on ``serverShutdown``."""
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("%s stream: a message that is not JSON", self.market)
            return False
        data = message.get("data", message) if isinstance(message, dict) else message
        if isinstance(data, dict) and "event" in data:  # the WebSocket API's envelope
            data = data["event"]
        events = data if isinstance(data, list) else [data]
        for event in events:
            if not isinstance(event, dict):
                continue
            if event.get("e") == "serverShutdown":
                return True
            self.handler.event(event, now)
        return False

    def _beat(self, *, force: bool = False) -> None:
        """The listener's row for health (core.signals), every heartbeat and on changes."""
        now = self.clock()
        if not force and now - self._beaten < self.heartbeat_seconds:
            return
        self._beaten = now
        try:
            with self.engine.begin() as conn:
                signals.beat(
                    conn,
                    self.replica_id,
                    self.market,
                    connected=self._connected_at is not None,
                    connected_ago=None if self._connected_at is None else now - self._connected_at,
                    message_ago=None if self._last_message is None else now - self._last_message,
                    reconnects=self.reconnects,
                )
        except SQLAlchemyError as exc:
            log.debug("%s listener heartbeat not written: %s", self.market, exc)


def build_listeners(
    all_settings: Settings,
    engine: Engine,
    replica_id: str,
    immediate: ImmediatePolls,
    stop: threading.Event,
) -> list[MarketListener]:
    """A listener for each market whose exchangeInfo is polled (spot infers, the futures
    markets hear ``!contractInfo``), and one on the user data stream when the account is
    polled."""
    settings = all_settings.realtime
    enabled_streams = all_settings.enabled_streams()
    heartbeat_seconds = all_settings.poller.heartbeat_seconds
    sink = Signals(engine, replica_id, immediate)
    handlers: dict[str, Handler] = {}
    if "exchange_info" in enabled_streams:
        handlers["spot"] = SpotSilences(
            "exchange_info",
            sink,
            settings.spot_symbols,
            settings.silence_factor,
            settings.min_silence_seconds,
        )
    for market in ("usdm", "coinm"):
        stream = f"{market}_exchange_info"
        if stream in enabled_streams:
            handlers[market] = ContractInfo(stream, sink)
    listeners = [
        MarketListener(market, handler, settings, engine, replica_id, stop, heartbeat_seconds)
        for market, handler in handlers.items()
    ]
    if "account" in enabled_streams:
        account = AccountEvents(
            sink,
            all_settings.binance.api_key.reveal(),
            signer_from_settings(all_settings.binance),
        )
        listeners.append(
            MarketListener(
                "account",
                account,
                settings,
                engine,
                replica_id,
                stop,
                heartbeat_seconds,
                url=settings.spot_api_url,
            )
        )
    return listeners
