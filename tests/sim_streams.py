"""Reading binance_sim's WebSocket streams and steering them through its control API."""

import time
from typing import Any

import orjson
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from binance_sim.server import SimServer

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
