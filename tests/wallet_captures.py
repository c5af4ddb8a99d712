"""The two real ``capital/config/getall`` captures (tests/fixtures/wallet_capital_config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
CAPTURE_2021 = REPO / "tests" / "fixtures" / "wallet_capital_config" / "2021-05-15_466.json"
CAPTURE_2026 = REPO / "binance_sim" / "data" / "capital_config_getall_2026-01-20.json"
# Every balance field Binance documents on a coin of this answer.
BALANCES = ("free", "locked", "freeze", "withdrawing", "ipoing", "ipoable", "storage")


def capture(path: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = orjson.loads(path.read_bytes())
    return loaded


def nonzero_balances(doc: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """coin -> its non-zero balance fields: what must never be readable without the token."""
    found: dict[str, dict[str, str]] = {}
    for coin in doc:
        held = {b: coin[b] for b in BALANCES if b in coin and float(coin[b]) != 0}
        if held:
            found[coin["coin"]] = held
    return found
