"""Binance's WebSocket market streams over a SimState, on a port of their own.

Binance pushes what the realtime listeners react to (notes §11, §17): spot market data
(``<symbol>@trade``, ``!miniTicker@arr``), which stops for a symbol in BREAK and goes on in
HALT, and the futures markets' ``!contractInfo``, an event whenever a contract's status or
dates change. The sim derives all of it from the books, so a test steers one thing (a
status through the control API) and sees both the document and the streams change.

Each market is served under its own path prefix (``/spot``, ``/usdm``, ``/coinm``), since
Binance serves them from different hosts: ``<prefix>/ws/<stream>`` is a raw stream,
``<prefix>/stream?streams=a/b`` a combined one (``{"stream", "data"}``). ``/ws-api/v3`` is
spot's WebSocket API, of which the sim knows the one request that subscribes to the user
data stream (``userDataStream.subscribe.signature``, notes §17): after it, every change of
the account's balances through the control API is an ``outboundAccountPosition`` event. The connection
faults (a dropped socket, ``serverShutdown``, silence) and the lifetime after which
Binance closes a connection are ordered through the state's ``StreamControls``.

One feed thread decides every event (a trade when a symbol's cadence is due, a
miniTicker array every second, a contractInfo when a contract changed), and each
connection's own thread (websockets' synchronous server) sends what was queued for it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.sync.server import Server, ServerConnection, serve

from binance_sim.account import SignedRequestError
from binance_sim.state import (
    DEFAULT_CADENCE_SECONDS,
    STATUS_KEYS,
    ConnectionFault,
    ConnectionOrder,
    Market,
    SimState,
)

log = logging.getLogger(__name__)

# Notes §11: BREAK stops a symbol's market data; HALT does not (the book stays open).
SILENT_STATUSES: Final = frozenset({"BREAK"})
MINI_TICKER_STREAM: Final = "!miniTicker@arr"
CONTRACT_INFO_STREAM: Final = "!contractInfo"
MINI_TICKER_PERIOD_SECONDS: Final = 1.0
# The feed's resolution: a cadence is kept to within this.
_TICK_SECONDS: Final = 0.01
# How often an idle connection's thread looks for orders, its lifetime and the stop.
_IDLE_SECONDS: Final = 0.05
WS_API_PATH: Final = "/ws-api/v3"
SUBSCRIBE_METHOD: Final = "userDataStream.subscribe.signature"
_USER_DATA: Final = "userData"
# What a contractInfo event carries (notes §17), from the exchangeInfo keys it mirrors.
_CONTRACT_KEYS: Final = ("pair", "contractType", "deliveryDate", "onboardDate")


def _contract_keys(market: Market) -> tuple[str, ...]:
    return (*_CONTRACT_KEYS, STATUS_KEYS[market])


class _Subscriber:
    """One open connection: the streams it asked for and the texts waiting to be sent."""

    def __init__(self, market: Market, streams: frozenset[str], combined: bool) -> None:
        self.market = market
        self.streams = streams
        self.combined = combined
        self.outbox: queue.SimpleQueue[str] = queue.SimpleQueue()

    def push(self, stream: str, event: Any) -> None:
        if stream not in self.streams:
            return
        payload = {"stream": stream, "data": event} if self.combined else event
        self.outbox.put(orjson.dumps(payload).decode())


class _TradeSchedule:
    """When each trading symbol trades next, in a heap: a real snapshot has thousands of
    symbols and the feed looks a hundred times a second, so a look costs only the trades
    that are due. Every symbol is planned again when a status or a cadence changes (a new
    cadence counts from the symbol's last trade)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._next: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._statuses: dict[str, tuple[Any, ...]] | None = None
        self._cadences: dict[str, float] = {}

    def due(
        self, now: float, statuses: dict[str, tuple[Any, ...]], cadences: dict[str, float]
    ) -> list[str]:
        if statuses is not self._statuses or cadences != self._cadences:
            self._plan(now, statuses, cadences)
        trading: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, symbol = heapq.heappop(self._heap)
            if self._next.get(symbol) != at:
                continue  # planned again since
            trading.append(symbol)
            self._last[symbol] = now
            self._put(symbol, now + cadences.get(symbol, DEFAULT_CADENCE_SECONDS))
        return trading

    def _plan(
        self, now: float, statuses: dict[str, tuple[Any, ...]], cadences: dict[str, float]
    ) -> None:
        self._statuses, self._cadences = statuses, cadences
        for symbol, (status,) in statuses.items():
            if status in SILENT_STATUSES:
                self._next.pop(symbol, None)
                continue
            last = self._last.get(symbol)
            at = now if last is None else last + cadences.get(symbol, DEFAULT_CADENCE_SECONDS)
            if self._next.get(symbol) != at:
                self._put(symbol, at)

    def _put(self, symbol: str, at: float) -> None:
        self._next[symbol] = at
        heapq.heappush(self._heap, (at, symbol))


class StreamServer:
    """The sim's WebSocket streams on ``host:port`` (0 = any free port), in the background."""

    def __init__(self, state: SimState, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: set[_Subscriber] = set()
        self._handshake_seq: dict[int, int] = {}
        self._trade_ids = itertools.count(1)
        # Each market's symbol fields as of a document version: read again only once the
        # document changed, since a real snapshot has thousands of symbols and the feed
        # looks a hundred times a second.
        self._fields: dict[Market, tuple[int, dict[str, tuple[Any, ...]]]] = {}

    def url(self, market: Market) -> str:
        """Where ``market``'s streams are served, e.g. ``ws://127.0.0.1:54321/usdm``."""
        if self._server is None:
            raise RuntimeError("the stream server is not running")
        port = self._server.socket.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{port}/{market.value}"

    def ws_api_url(self) -> str:
        """Where spot's WebSocket API (the user data stream's subscription) is served."""
        return self.url(Market.SPOT).rsplit("/", 1)[0] + WS_API_PATH

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the stream server is already running")
        self._stop.clear()
        server = serve(
            self._serve,
            self._host,
            self._port,
            compression=None,
            process_request=self._handshaking,
        )
        self._server = server
        self._threads = [
            threading.Thread(target=server.serve_forever, name="binance_sim ws", daemon=True),
            threading.Thread(target=self._feed, name="binance_sim feed", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Close every connection and the socket and wait for the threads; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- one connection --------------------------------------------------------------------

    def _handshaking(self, connection: ServerConnection, _request: Request) -> None:
        """Note which connection faults were ordered before this one opened: the client
        may order one as soon as its handshake is answered, before our handler runs."""
        with self._lock:
            self._handshake_seq[id(connection)] = self.state.streams.last_seq()

    def _seen_at_handshake(self, connection: ServerConnection) -> int:
        with self._lock:
            return self._handshake_seq.pop(id(connection), self.state.streams.last_seq())

    def _serve(self, connection: ServerConnection) -> None:
        request = connection.request
        if request is not None and request.path == WS_API_PATH:
            self._serve_ws_api(connection)
            return
        parsed = _parse_path("" if request is None else request.path)
        if parsed is None:
            connection.close(1008, "unknown stream path")
            return
        subscriber = _Subscriber(*parsed)
        seen = self._seen_at_handshake(connection)
        opened = time.monotonic()
        with self._lock:
            self._subscribers.add(subscriber)
        try:
            while not self._stop.is_set():
                try:
                    text: str | None = subscriber.outbox.get(timeout=_IDLE_SECONDS)
                except queue.Empty:
                    text = None
                # Looked at between taking a message and sending it: whatever was queued
                # after a fault was ordered is lost with the connection, as on Binance.
                orders = self.state.streams.orders_after(seen, subscriber.market)
                if orders:
                    self._obey(connection, subscriber, orders[0])
                    return
                lifetime = self.state.streams.lifetime
                if lifetime is not None and time.monotonic() - opened >= lifetime:
                    connection.close(1000, "connection lifetime reached")
                    return
                if text is not None:
                    connection.send(text)
        except ConnectionClosed:
            return
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)

    def _serve_ws_api(self, connection: ServerConnection) -> None:
        """Answer subscription requests; once subscribed, send the account's events."""
        subscriber: _Subscriber | None = None
        seen = self._seen_at_handshake(connection)
        try:
            while not self._stop.is_set():
                try:
                    raw = connection.recv(timeout=_IDLE_SECONDS)
                except TimeoutError:
                    raw = None
                if raw is not None:
                    answer, subscribed = self._ws_api_request(raw)
                    connection.send(orjson.dumps(answer).decode())
                    if subscribed and subscriber is None:
                        subscriber = _Subscriber(Market.SPOT, frozenset({_USER_DATA}), False)
                        with self._lock:
                            self._subscribers.add(subscriber)
                orders = self.state.streams.orders_after(seen, Market.SPOT)
                if orders:
                    self._obey(
                        connection,
                        subscriber or _Subscriber(Market.SPOT, frozenset(), False),
                        orders[0],
                    )
                    return
                while subscriber is not None and not subscriber.outbox.empty():
                    connection.send(subscriber.outbox.get())
        except ConnectionClosed:
            return
        finally:
            if subscriber is not None:
                with self._lock:
                    self._subscribers.discard(subscriber)

    def _ws_api_request(self, raw: str | bytes) -> tuple[dict[str, Any], bool]:
        """The answer to one WebSocket API request, and whether it subscribed."""
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _ws_api_error(None, 400, -1100, "Malformed request."), False
        request_id = message.get("id") if isinstance(message, dict) else None
        if not isinstance(message, dict) or message.get("method") != SUBSCRIBE_METHOD:
            return _ws_api_error(request_id, 400, -1100, "Unknown method."), False
        params = message.get("params")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return _ws_api_error(request_id, 400, -1100, "Malformed params."), False
        # Binance signs every parameter but the signature, sorted by name (notes §17).
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        try:
            self.state.account.authenticate(
                params.get("apiKey"),
                f"{payload}&signature={params.get('signature', '')}",
                self.state.server_time_ms(),
            )
        except SignedRequestError as exc:
            return _ws_api_error(request_id, exc.status, exc.code, exc.msg), False
        return {"id": request_id, "status": 200, "result": {"subscriptionId": 0}}, True

    def _obey(
        self, connection: ServerConnection, subscriber: _Subscriber, order: ConnectionOrder
    ) -> None:
        if order.fault is ConnectionFault.DROP:
            # No close frame: the peer learns it from TCP, as after a network failure.
            connection.socket.shutdown(socket.SHUT_RDWR)
        elif order.fault is ConnectionFault.SHUTDOWN:
            event = {"e": "serverShutdown", "E": self.state.server_time_ms()}
            payload = {"stream": "!serverShutdown", "data": event} if subscriber.combined else event
            connection.send(orjson.dumps(payload).decode())
            connection.close(1001, "server shutdown")
        else:
            # Holding the protocol's lock keeps websockets' reader from answering pings
            # (or sending anything): from outside, the server has gone silent.
            with connection.protocol_mutex:
                self._stop.wait(order.seconds)
            connection.socket.shutdown(socket.SHUT_RDWR)

    # -- the feed --------------------------------------------------------------------------

    def _symbol_fields(self, market: Market, keys: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
        book = self.state.book(market)
        version = book.version
        cached = self._fields.get(market)
        if cached is None or cached[0] != version:
            cached = (version, book.symbol_fields(keys))
            self._fields[market] = cached
        return cached[1]

    def _publish(self, market: Market, stream: str, event: Any) -> None:
        with self._lock:
            subscribers = [s for s in self._subscribers if s.market is market]
        for subscriber in subscribers:
            subscriber.push(stream, event)

    def _feed(self) -> None:
        schedule = _TradeSchedule()
        ticked: dict[str, str] = {}
        next_mini = time.monotonic() + MINI_TICKER_PERIOD_SECONDS
        contracts = {
            market: self._symbol_fields(market, _contract_keys(market))
            for market in (Market.USDM, Market.COINM)
        }
        balances = self.state.account.balances()
        while not self._stop.wait(_TICK_SECONDS):
            now = time.monotonic()
            balances = self._balance_changes(balances)
            self._trades(now, schedule, ticked)
            if now >= next_mini:
                next_mini = now + MINI_TICKER_PERIOD_SECONDS
                self._mini_tickers(ticked)
                ticked.clear()
            for market, before in contracts.items():
                contracts[market] = self._contract_changes(market, before)

    def _trades(self, now: float, schedule: _TradeSchedule, ticked: dict[str, str]) -> None:
        """A trade for each trading symbol whose cadence is due; none in BREAK, and a
        symbol back from BREAK trades at once."""
        statuses = self._symbol_fields(Market.SPOT, ("status",))
        for symbol in schedule.due(now, statuses, self.state.streams.cadences()):
            at = self.state.server_time_ms()
            price = f"{1 + (next(self._trade_ids) % 100) / 100:.8f}"
            ticked[symbol] = price
            trade = {
                "e": "trade",
                "E": at,
                "s": symbol,
                "t": next(self._trade_ids),
                "p": price,
                "q": "1.00000000",
                "T": at,
                "m": False,
                "M": True,
            }
            self._publish(Market.SPOT, f"{symbol.lower()}@trade", trade)

    def _mini_tickers(self, ticked: Mapping[str, str]) -> None:
        """Binance's array carries only the symbols that changed in the last second."""
        if not ticked:
            return
        at = self.state.server_time_ms()
        tickers = [
            {"e": "24hrMiniTicker", "E": at, "s": symbol, "c": price, "o": price, "h": price}
            | {"l": price, "v": "1.00000000", "q": price}
            for symbol, price in ticked.items()
        ]
        self._publish(Market.SPOT, MINI_TICKER_STREAM, tickers)

    def _balance_changes(self, before: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """An ``outboundAccountPosition`` with the assets whose balance changed."""
        now = self.state.account.balances()
        changed = [
            {"a": asset, "f": free, "l": locked}
            for asset, (free, locked) in now.items()
            if before.get(asset) != (free, locked)
        ]
        if changed:
            at = self.state.server_time_ms()
            event = {
                "e": "outboundAccountPosition",
                "E": at,
                "u": self.state.account.update_time() or at,
                "B": changed,
            }
            self._publish(Market.SPOT, _USER_DATA, {"subscriptionId": 0, "event": event})
        return now

    def _contract_changes(
        self, market: Market, before: dict[str, tuple[Any, ...]]
    ) -> dict[str, tuple[Any, ...]]:
        """A contractInfo event for each contract listed or changed since ``before``."""
        now = self._symbol_fields(market, _contract_keys(market))
        if now is before:
            return now
        for symbol, values in now.items():
            if before.get(symbol) == values:
                continue
            pair, contract_type, delivery, onboard, status = values
            event = {
                "e": "contractInfo",
                "E": self.state.server_time_ms(),
                "s": symbol,
                "ps": pair,
                "ct": contract_type,
                "dt": delivery,
                "ot": onboard,
                "cs": status,
                "bks": [],
            }
            self._publish(market, CONTRACT_INFO_STREAM, event)
        return now


def _ws_api_error(request_id: Any, status: int, code: int, msg: str) -> dict[str, Any]:
    return {"id": request_id, "status": status, "error": {"code": code, "msg": msg}}


def _parse_path(path: str) -> tuple[Market, frozenset[str], bool] | None:
    """(market, streams, combined) of ``/<market>/ws/<stream>`` or
    ``/<market>/stream?streams=a/b``; None for any other path."""
    parts = urlsplit(path)
    segments = parts.path.strip("/").split("/", 2)
    try:
        market = Market(segments[0])
    except ValueError:
        return None
    if len(segments) == 3 and segments[1] == "ws" and segments[2]:
        return market, frozenset({segments[2]}), False
    if len(segments) == 2 and segments[1] == "stream":
        names = parse_qs(parts.query).get("streams", [""])[0]
        streams = frozenset(n for n in names.split("/") if n)
        return (market, streams, True) if streams else None
    return None
