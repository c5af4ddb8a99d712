"""Helpers for tests of the signed streams against the sim: the docs' example key, settings."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import requests

from binance_sim.server import SimServer
from core.config import ApiSettings, BinanceSettings, PollerSettings, Secret, Settings
from core.ingest import StreamWriter
from poller.job import StreamJob
from poller.runner import build_poller, retrying_client
from poller.signed_jobs import signed_jobs
from tests.builders import sim_urls, system_status_job

SIGNING = Path(__file__).parent / "fixtures" / "signing"
HMAC_VECTORS = orjson.loads((SIGNING / "hmac_sha256_docs_vectors.json").read_bytes())
ED25519_VECTORS = orjson.loads((SIGNING / "ed25519_vectors.json").read_bytes())
# Binance's published example credentials: never a real key.
API_KEY: str = HMAC_VECTORS["apiKey"]
API_SECRET: str = HMAC_VECTORS["secretKey"]
API_TOKEN = "t0ken-for-the-account-routes"


def register_key(sim: SimServer, *, ed25519: bool = False, **restrictions: Any) -> None:
    """Make the sim accept the docs' example key (HMAC secret or Ed25519 public key)."""
    body: dict[str, Any] = {"restrictions": restrictions}
    if ed25519:
        body["ed25519_public_key"] = ED25519_VECTORS["publicKeyPem"]
    else:
        body["hmac_secret"] = API_SECRET
    response = requests.put(f"{sim.url}/_sim/keys/{API_KEY}", json=body, timeout=5)
    assert response.status_code == 201, response.text


def sim_settings(
    sim: SimServer, *, binance: dict[str, Any] | None = None, **poller: Any
) -> Settings:
    return Settings(
        binance=BinanceSettings(
            **sim_urls(sim.url),
            api_key=Secret(API_KEY),
            api_secret=Secret(API_SECRET),
            **{
                "connect_timeout_seconds": 1,
                "timeout_seconds": 5,
                "backoff_base_seconds": 0.05,  # retries stay quick in tests
                "backoff_cap_seconds": 0.4,
                **(binance or {}),
            },
        ),
        poller=PollerSettings(**poller),
        api=ApiSettings(token=Secret(API_TOKEN)),
    )


def jobs_by_stream(settings: Settings, engine: Any) -> dict[str, StreamJob]:
    """Every job `exmeta poll` would run for these settings, the signed ones included."""
    client = retrying_client(settings, threading.Event())
    jobs = {job.stream: job for job, _ in signed_jobs(settings, engine, client, "test")}
    jobs["system_status"] = system_status_job(client, StreamWriter(engine, "system_status"), "test")
    return jobs


def control(sim: SimServer, method: str, path: str, body: Any) -> Any:
    response = requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=5)
    assert response.status_code in (200, 201), response.text
    return response.json()


def logged_requests(sim: SimServer, path: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = requests.get(f"{sim.url}/_sim/requests", timeout=5).json()[
        "requests"
    ]
    return [r for r in found if path is None or r["path"] == path]


def query_value(record: dict[str, Any], name: str) -> str:
    return parse_qs(record["query"])[name][0]


def poll_every_stream(sim: SimServer, engine: Any) -> Settings:
    """Every stream `exmeta poll` would run, polled once from the sim; their settings."""
    register_key(sim)
    settings = sim_settings(sim, commission_symbols=("BTCUSDT",))
    for scheduled in build_poller(settings, engine, "test").jobs:
        scheduled.job.run()
    return settings
