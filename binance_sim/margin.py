"""The simulated margin metadata: cross and isolated pairs, the margin delist schedule.

Served as Binance serves them today (security type MARKET_DATA, notes §16): the caller's
API key in ``X-MBX-APIKEY`` must be one the sim knows, nothing is signed. Binance never
answered us here, so the packaged documents are written after its documented shapes
(``*_from_docs.json``; tests/fixtures/margin/README.md says where each came from).

The control API switches a pair's buying, selling or margin trading, sets or clears its
``delistTime``, adds and removes pairs, and replaces the delist schedule
(binance_sim.margin_routes).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final, TypeVar, cast

import orjson

JSONObject = dict[str, Any]
T = TypeVar("T")

PAIR_TYPES: Final = ("cross", "isolated")
PACKAGED: Final[Mapping[str, str]] = {
    "cross": "margin_all_pairs_from_docs.json",
    "isolated": "margin_isolated_all_pairs_from_docs.json",
}
DELIST_SCHEDULE_FIXTURE: Final = "margin_delist_schedule_from_docs.json"
# Control keys of a pair patch -> the Binance flag each sets.
PAIR_SWITCHES: Final[Mapping[str, str]] = {
    "buy": "isBuyAllowed",
    "sell": "isSellAllowed",
    "margin_trade": "isMarginTrade",
}
PAIR_PATCH_KEYS: Final = frozenset({*PAIR_SWITCHES, "delist_time", "fields"})
SCHEDULE_LISTS: Final = ("crossMarginAssets", "isolatedMarginSymbols")


class MarginInputError(ValueError):
    """A pair, patch or schedule the sim cannot take; the control API says 400."""


def _packaged(name: str) -> Any:
    return orjson.loads((resources.files("binance_sim") / "data" / name).read_bytes())


def _copy(value: T) -> T:
    """A deep copy, as JSON: what the sim keeps and serves is never shared with a caller."""
    return cast(T, orjson.loads(orjson.dumps(value)))


def _pair_type(kind: str) -> str:
    if kind not in PAIR_TYPES:
        raise MarginInputError(f"unknown pair type {kind!r}; expected cross or isolated")
    return kind


def _pair_update(changes: Mapping[str, Any]) -> tuple[JSONObject, bool]:
    """The Binance fields a pair patch sets, and whether it removes ``delistTime``."""
    unknown = sorted(set(changes) - PAIR_PATCH_KEYS)
    if unknown:
        raise MarginInputError(
            f"unknown keys {unknown}; expected some of {sorted(PAIR_PATCH_KEYS)}"
        )
    update: JSONObject = {}
    for key, field_name in PAIR_SWITCHES.items():
        if key in changes:
            if not isinstance(changes[key], bool):
                raise MarginInputError(f"{key} must be true or false")
            update[field_name] = changes[key]
    clear = False
    if "delist_time" in changes:
        value = changes["delist_time"]
        if value is None:
            clear = True
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            update["delistTime"] = value
        else:
            raise MarginInputError("delist_time must be a positive integer (s or ms) or null")
    fields = changes.get("fields", {})
    if not isinstance(fields, dict):
        raise MarginInputError("fields must be a JSON object")
    update.update(fields)
    return update, clear


class MarginState:
    """Each pair type's pairs by symbol (in the order served) and the delist schedule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict[str, dict[str, JSONObject]] = {
            kind: {p["symbol"]: p for p in _packaged(name)} for kind, name in PACKAGED.items()
        }
        self._schedule: list[JSONObject] = _packaged(DELIST_SCHEDULE_FIXTURE)

    def pairs(self, kind: str) -> list[JSONObject]:
        with self._lock:
            return _copy(list(self._pairs[_pair_type(kind)].values()))

    def patch_pair(self, kind: str, symbol: str, changes: Mapping[str, Any]) -> JSONObject:
        """Switch the pair's flags, set (served as given: seconds or milliseconds) or clear
        (null) its ``delistTime``, set any field; answers the pair as served from now on."""
        update, clear = _pair_update(changes)
        with self._lock:
            pair = self._pairs[_pair_type(kind)].get(symbol)
            if pair is None:
                raise MarginInputError(f"no {kind} margin pair {symbol}")
            pair.update(_copy(update))
            if clear:
                pair.pop("delistTime", None)
            return _copy(pair)

    def put_pair(self, kind: str, symbol: str, pair: Any) -> None:
        if not isinstance(pair, dict) or pair.get("symbol") != symbol:
            raise MarginInputError(f"the pair must be a JSON object with symbol {symbol!r}")
        with self._lock:
            self._pairs[_pair_type(kind)][symbol] = _copy(pair)

    def delete_pair(self, kind: str, symbol: str) -> None:
        with self._lock:
            if self._pairs[_pair_type(kind)].pop(symbol, None) is None:
                raise MarginInputError(f"no {kind} margin pair {symbol}")

    def schedule(self) -> list[JSONObject]:
        with self._lock:
            return _copy(self._schedule)

    def set_schedule(self, schedule: Any) -> None:
        if not isinstance(schedule, list) or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("delistTime"), int)
            and all(isinstance(entry.get(name, []), list) for name in SCHEDULE_LISTS)
            for entry in schedule
        ):
            raise MarginInputError(
                "'schedule' must be a list of {delistTime: ms, crossMarginAssets: [...],"
                " isolatedMarginSymbols: [...]}"
            )
        with self._lock:
            self._schedule = _copy(schedule)
