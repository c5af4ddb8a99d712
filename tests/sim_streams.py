"""Reading binance_sim's WebSocket streams and steering them through its control API."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import requests
from sqlalchemy import Engine, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from binance_sim.server import SimServer
from binance_sim.state import Market
from core.config import Settings, replace_section
from poller.runner import Poller, build_poller
from tests.builders import poller_settings

TIMEOUT = 10


def control(sim: SimServer, method: str, path: str, body: object) -> Any:
    """One control call under /_sim/streams; asserts it was taken."""
    response = requests.request(method, f"{sim.url}/_sim/streams{path}", json=body, timeout=TIMEOUT)
    assert response.status_code in (200, 201), response.text
    return response.json()


def set_cadence(sim: SimServer, symbol: str, seconds: float) -> None:
    control(sim, "PUT", f"/cadences/{symbol}", {"seconds": seconds})


def stream_fault(sim: SimServer, kind: str, **more: object) -> None:
    control(sim, "POST", "/faults", {"kind": kind, **more})


def messages(connection: ClientConnection, seconds: float) -> list[Any]:
    """Every message received within ``seconds`` (fewer if the connection closes)."""
    received: list[Any] = []
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        try:
            received.append(orjson.loads(connection.recv(timeout=left)))
        except TimeoutError:
            break
        except ConnectionClosed:
            break
    return received


def first(connection: ClientConnection, seconds: float, **wanted: object) -> dict[str, Any]:
    """The first message (unwrapped from a combined stream) whose keys hold ``wanted``."""
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        message = orjson.loads(connection.recv(timeout=left))
        event = message.get("data", message) if isinstance(message, dict) else message
        if isinstance(event, dict) and all(event.get(k) == v for k, v in wanted.items()):
            return event
    raise AssertionError(f"no message with {wanted} within {seconds}s")


def closing(connection: ClientConnection) -> ConnectionClosed:
    """How the connection ends: read (and drop) messages until it closes."""
    ends = time.monotonic() + TIMEOUT
    while time.monotonic() < ends:
        try:
            connection.recv(timeout=TIMEOUT)
        except ConnectionClosed as closed:
            return closed
    raise AssertionError(f"the connection was still open after {TIMEOUT}s")


def realtime_settings(sim: SimServer, interval: float = 30.0, **realtime: Any) -> Settings:
    """A poller aimed at ``sim`` on every market, polling slowly (so that only a listener
    can explain a prompt change), with its realtime listeners on the sim's streams."""
    settings = poller_settings(sim.url)
    settings = replace_section(
        settings,
        "poller",
        exchange_info_interval=interval,
        usdm_exchange_info_interval=interval,
        coinm_exchange_info_interval=interval,
        system_status_interval=interval,
    )
    urls = {f"{m.value}_stream_url": sim.stream_url(m) for m in Market}
    return replace_section(settings, "realtime", enabled=True, **{**urls, **realtime})


@contextmanager
def polling(settings: Settings, engine: Engine, replica_id: str = "r0") -> Iterator[Poller]:
    """A replica polling and listening in the background, shut down however the test ends."""
    poller = build_poller(settings, engine, replica_id)
    poller.start()
    try:
        yield poller
    finally:
        assert poller.shutdown(settings.poller.shutdown_grace_seconds)


def wait_until(condition: Callable[[], bool], seconds: float = TIMEOUT) -> float:
    """Seconds until ``condition()`` held (probed every 10 ms); fails past ``seconds``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true within {seconds}s")
        time.sleep(0.01)
    return time.monotonic() - started


def listener_connected(engine: Engine, market: str, reconnects: int = 0) -> bool:
    """Whether ``market``'s listener says it is connected, after at least ``reconnects``."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT connected, reconnects FROM stream_listeners WHERE market = :m"),
            {"m": market},
        ).one_or_none()
    return row is not None and row.connected and row.reconnects >= reconnects
