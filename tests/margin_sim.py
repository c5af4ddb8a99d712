"""Helpers for tests of the margin streams against the sim."""

from __future__ import annotations

from typing import Any

from binance_sim.server import SimServer
from tests.signed_sim import control

# The margin streams, in catalogue order: on with a key (MARKET_DATA), off without.
MARGIN_STREAMS = ("margin_pairs", "margin_isolated_pairs", "margin_delistings")


def patch_pair(sim: SimServer, kind: str, symbol: str, body: dict[str, Any]) -> Any:
    return control(sim, "PATCH", f"/margin/pairs/{kind}/{symbol}", body)
