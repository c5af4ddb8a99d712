"""A requests client bound to a running binance_sim, its fault and request-log controls,
and a clock the sim (or any clocked code under test) can be given."""

from typing import Any

import orjson
import requests

from binance_sim.server import SimServer

TIMEOUT = 10


class Client:
    """A requests session bound to one running sim, with a timeout on every call."""

    def __init__(self, session: requests.Session, url: str) -> None:
        self.session = session
        self.url = url

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=TIMEOUT, **kwargs)

    def exchange_info(self, path: str = "/api/v3/exchangeInfo") -> dict[str, Any]:
        response = self.get(path)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = orjson.loads(response.content)
        return document

    def symbol(self, name: str, path: str = "/api/v3/exchangeInfo") -> dict[str, Any]:
        matches = [s for s in self.exchange_info(path)["symbols"] if s["symbol"] == name]
        assert len(matches) == 1, f"{name} served {len(matches)} times"
        return matches[0]

    def add_fault(self, **fault: Any) -> None:
        response = self.request("POST", "/_sim/faults", json=fault)
        assert response.status_code == 201, response.text


class FakeClock:
    """A clock that only moves when told to, for exact serverTime and weight windows."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_fault(sim: SimServer, **fault: object) -> None:
    """Queue a fault (POST /_sim/faults) on ``sim``."""
    response = requests.post(f"{sim.url}/_sim/faults", json=fault, timeout=TIMEOUT)
    assert response.status_code == 201, response.text


def sim_log(sim: SimServer) -> list[dict[str, Any]]:
    """The requests ``sim`` received, oldest first."""
    records: list[dict[str, Any]] = requests.get(
        f"{sim.url}/_sim/requests", timeout=TIMEOUT
    ).json()["requests"]
    return records
