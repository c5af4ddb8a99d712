"""The capital config body (``GET /sapi/v1/capital/config/getall``) without the balances.

Binance answers that call with every coin's deposit and withdrawal switches, the same for
every account, and, on the same coin objects, the calling account's balances (``free``,
``locked``, ``freeze``, ``withdrawing``, ``ipoing``, ``ipoable``, ``storage``). exmeta keeps
the switches as a public stream, so the balances are taken out of the body before the
writer hashes, stores or parses it (core.ingest): no table, raw body, schema path or
observation of the stream holds one. As the hash is of the cleaned body, a poll that
differs only in a balance is ``unchanged`` and writes nothing, so the observation log does
not tell when the account traded either.

Known balance fields are dropped by name; a coin-level field Binance adds later is dropped
too when its value is a decimal in text, as every balance is and no coin metadata is: a new
kind of balance must not leak for want of a name in a list, while a new flag is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

BALANCE_FIELDS = frozenset(
    {"free", "locked", "freeze", "withdrawing", "ipoing", "ipoable", "storage"}
)
# The coin-level metadata of the documented and captured bodies: kept whatever they hold.
COIN_FIELDS = frozenset(
    {"coin", "name", "depositAllEnable", "withdrawAllEnable", "trading", "isLegalMoney"}
)
NETWORKS = "networkList"
_DECIMAL_TEXT = re.compile(r"-?\d+(\.\d+)?")


def is_balance(name: str, value: Any) -> bool:
    """Whether a coin object's field is (or may be) the account's money."""
    if name in BALANCE_FIELDS:
        return True
    if name in COIN_FIELDS or name == NETWORKS:
        return False
    return isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value) is not None


def coin_without_balances(coin: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in coin.items() if not is_balance(name, value)}


def without_balances(body: bytes) -> bytes:
    """``body`` with every coin's balances taken out, re-serialised (key order kept).

    Raises ValueError for a body that is not JSON (a truncated one, an HTML error page):
    what cannot be read cannot be cleaned, so none of it may be kept.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"capital config body is not valid JSON: {exc}") from None
    if isinstance(doc, list):
        doc = [coin_without_balances(c) if isinstance(c, dict) else c for c in doc]
    elif isinstance(doc, dict):  # Binance's {"code", "msg"}: cleaned all the same
        doc = coin_without_balances(doc)
    return orjson.dumps(doc)
