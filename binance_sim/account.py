"""The simulated account, API keys, system status, delist schedule and wallet (capital
config), and the signature check.

Signed requests are verified the way Binance does it (binance-api-notes §7): the API key
from ``X-MBX-APIKEY``, the signature over the query string exactly as received (everything
before ``&signature=``), then ``timestamp`` against the sim's clock and ``recvWindow``.
The algorithms are implemented here independently of the poller's, so a bug in one side
cannot be mirrored by the other and go unnoticed. Failures carry Binance's real codes
and messages (errors.md).
"""

import base64
import binascii
import hashlib
import hmac
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

JSONObject = dict[str, Any]

DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60_000
FUTURE_TOLERANCE_MS: Final = 1000  # Binance refuses timestamps >= serverTime + 1000
_API_KEY_FORMAT: Final = re.compile(r"[A-Za-z0-9]{1,128}")

# A read-only key restricted to trusted IPs: what a metadata poller should be given.
DEFAULT_RESTRICTIONS: Final[Mapping[str, Any]] = {
    "ipRestrict": True,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": False,
}


class SignedRequestError(Exception):
    """A signed request Binance would refuse: HTTP status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class AccountInputError(ValueError):
    """Control input the sim cannot take; the control API answers 400."""


def _missing(name: str) -> SignedRequestError:
    return SignedRequestError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


@dataclass
class ApiKey:
    hmac_secret: str | None
    ed25519_public_key: Ed25519PublicKey | None
    restrictions: JSONObject = field(default_factory=lambda: dict(DEFAULT_RESTRICTIONS))

    def verify(self, payload: str, signature: str) -> bool:
        if self.hmac_secret is not None:
            expected = hmac.new(
                self.hmac_secret.encode(), payload.encode(), hashlib.sha256
            ).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        assert self.ed25519_public_key is not None
        try:
            self.ed25519_public_key.verify(
                base64.b64decode(signature, validate=True), payload.encode()
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def _packaged(name: str) -> Any:
    return orjson.loads((resources.files("binance_sim") / "data" / name).read_bytes())


# The real capture served by default (tests/fixtures/wallet_capital_config/README.md):
# 667 coins, 1,100 networks, and the capturing account's balances, as Binance sends them.
CAPITAL_CONFIG_FIXTURE: Final = "capital_config_getall_2026-01-20.json"
# Control keys of a network patch -> the Binance field each sets.
NETWORK_SWITCHES: Final[Mapping[str, str]] = {
    "deposit": "depositEnable",
    "withdraw": "withdrawEnable",
    "busy": "busy",
}
NETWORK_TEXTS: Final[Mapping[str, str]] = {
    "deposit_desc": "depositDesc",
    "withdraw_desc": "withdrawDesc",
}
NETWORK_DECIMALS: Final[Mapping[str, str]] = {
    "withdraw_fee": "withdrawFee",
    "withdraw_min": "withdrawMin",
    "withdraw_max": "withdrawMax",
}
NETWORK_PATCH_KEYS: Final = frozenset(
    {*NETWORK_SWITCHES, *NETWORK_TEXTS, *NETWORK_DECIMALS, "fields"}
)
_DECIMAL_TEXT: Final = re.compile(r"\d+(\.\d+)?")


def _check_capital_config(doc: Any) -> None:
    if not isinstance(doc, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("coin"), str)
        and isinstance(c.get("networkList"), list)
        and all(isinstance(n, dict) and isinstance(n.get("network"), str) for n in c["networkList"])
        for c in doc
    ):
        raise AccountInputError(
            "the document must be a list of coins, each {coin, networkList: [{network, ...}]}"
        )


class AccountState:
    """Everything the signed endpoints and the system status serve, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._account: JSONObject = _packaged("account.json")
        self._default_commission: JSONObject = _packaged("account_commission.json")
        self._commissions: dict[str, JSONObject] = {}
        self._system_status: JSONObject = {"status": 0, "msg": "normal"}
        self._delist_schedule: list[JSONObject] = []
        self._capital_config: list[JSONObject] = _packaged(CAPITAL_CONFIG_FIXTURE)

    # -- keys and the signature check ----------------------------------------------------

    def put_key(
        self,
        api_key: str,
        *,
        hmac_secret: str | None = None,
        ed25519_public_key_pem: str | None = None,
        restrictions: Mapping[str, Any] | None = None,
    ) -> None:
        if not _API_KEY_FORMAT.fullmatch(api_key):
            raise AccountInputError("an API key is 1-128 letters and digits")
        if (hmac_secret is None) == (ed25519_public_key_pem is None):
            raise AccountInputError("give exactly one of hmac_secret and ed25519_public_key")
        public = None
        if ed25519_public_key_pem is not None:
            try:
                loaded = load_pem_public_key(ed25519_public_key_pem.encode())
            except ValueError as exc:
                raise AccountInputError(f"ed25519_public_key is not a PEM key: {exc}") from exc
            if not isinstance(loaded, Ed25519PublicKey):
                raise AccountInputError("ed25519_public_key is not an Ed25519 key")
            public = loaded
        key = ApiKey(hmac_secret, public)
        key.restrictions.update(restrictions or {})
        with self._lock:
            self._keys[api_key] = key

    def patch_restrictions(self, api_key: str, changes: Mapping[str, Any]) -> JSONObject:
        with self._lock:
            key = self._keys.get(api_key)
            if key is None:
                raise AccountInputError(f"unknown API key {api_key[:6]}...")
            key.restrictions.update(changes)
            return dict(key.restrictions)

    def known_key(self, api_key: str | None) -> ApiKey:
        """The key of a request that must name one (signed, or MARKET_DATA), else
        SignedRequestError, as Binance refuses a missing or unknown key."""
        if not api_key or not _API_KEY_FORMAT.fullmatch(api_key):
            raise SignedRequestError(401, -2014, "API-key format invalid.")
        with self._lock:
            key = self._keys.get(api_key)
        if key is None:
            raise SignedRequestError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        return key

    def authenticate(
        self, api_key: str | None, raw_query: str, server_time_ms: int
    ) -> tuple[ApiKey, dict[str, str]]:
        """The key and the parameters of a valid signed request, else SignedRequestError."""
        key = self.known_key(api_key)
        payload, found, raw_signature = raw_query.rpartition("&signature=")
        if not found or not raw_signature or "&" in raw_signature:
            raise _missing("signature")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        if not key.verify(payload, unquote(raw_signature)):
            raise SignedRequestError(400, -1022, "Signature for this request is not valid.")
        _check_time(params, server_time_ms)
        return key, params

    # -- what the endpoints serve -------------------------------------------------------

    def account(self, *, omit_zero_balances: bool, server_time_ms: int) -> JSONObject:
        with self._lock:
            account: JSONObject = orjson.loads(orjson.dumps(self._account))
        account.setdefault("updateTime", server_time_ms)
        if omit_zero_balances:
            account["balances"] = [
                b for b in account["balances"] if Decimal(b["free"]) or Decimal(b["locked"])
            ]
        return account

    def balances(self) -> dict[str, tuple[str, str]]:
        """Each asset's (free, locked), for the user data stream's events."""
        with self._lock:
            return {b["asset"]: (b["free"], b["locked"]) for b in self._account["balances"]}

    def update_time(self) -> int | None:
        with self._lock:
            updated = self._account.get("updateTime")
        return updated if isinstance(updated, int) else None

    def patch_account(
        self,
        fields: Mapping[str, Any],
        balances: Mapping[str, Mapping[str, str]],
        server_time_ms: int,
    ) -> JSONObject:
        """Merge top-level ``fields``; set each asset's ``{free, locked}`` (zeros included)."""
        if "balances" in fields:
            raise AccountInputError("set balances with 'balances', not 'fields'")
        for asset, balance in balances.items():
            if set(balance) != {"free", "locked"} or not all(
                isinstance(v, str) for v in balance.values()
            ):
                raise AccountInputError(f"balance of {asset} must be {{free, locked}} strings")
        with self._lock:
            self._account.update(orjson.loads(orjson.dumps(dict(fields))))
            by_asset = {b["asset"]: b for b in self._account["balances"]}
            for asset, balance in balances.items():
                by_asset[asset] = {"asset": asset, **balance}
            self._account["balances"] = list(by_asset.values())
            self._account["updateTime"] = server_time_ms
            return dict(self._account)

    def commission(self, symbol: str) -> JSONObject:
        with self._lock:
            found = self._commissions.get(symbol)
            return {**(found or self._default_commission), "symbol": symbol}

    def put_commission(self, symbol: str, commission: Mapping[str, Any]) -> None:
        with self._lock:
            self._commissions[symbol] = orjson.loads(orjson.dumps(dict(commission)))

    def restrictions(self, key: ApiKey) -> JSONObject:
        with self._lock:
            return dict(key.restrictions)

    def system_status(self) -> JSONObject:
        with self._lock:
            return dict(self._system_status)

    def set_system_status(self, status: int, msg: str) -> None:
        with self._lock:
            self._system_status = {"status": status, "msg": msg}

    def delist_schedule(self) -> list[JSONObject]:
        with self._lock:
            return list(self._delist_schedule)

    def set_delist_schedule(self, schedule: list[Any]) -> None:
        for entry in schedule:
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("delistTime"), int)
                or not isinstance(entry.get("symbols"), list)
            ):
                raise AccountInputError("each entry must be {delistTime: ms, symbols: [...]}")
        with self._lock:
            self._delist_schedule = orjson.loads(orjson.dumps(schedule))

    def capital_config(self) -> orjson.Fragment:
        """Every coin with its networks and the account's balances, as Binance answers;
        serialised under the lock, since a control call may be changing a network."""
        with self._lock:
            return orjson.Fragment(orjson.dumps(self._capital_config))

    def set_capital_config(self, doc: Any) -> None:
        _check_capital_config(doc)
        with self._lock:
            self._capital_config = orjson.loads(orjson.dumps(doc))

    def patch_network(self, coin: str, network: str, changes: Mapping[str, Any]) -> JSONObject:
        """Switch a network's deposit or withdrawal (with its message), mark it busy, set
        its fees or any field; answers the network as served from now on.

        Resuming (``deposit``/``withdraw`` true) without a message clears the old one, as
        Binance's answers carry ``""`` on a working network.
        """
        update = _network_update(changes)
        with self._lock:
            for entry in self._capital_config:
                if entry["coin"] != coin:
                    continue
                for item in entry["networkList"]:
                    if item["network"] == network:
                        item.update(orjson.loads(orjson.dumps(update)))
                        return dict(item)
        raise AccountInputError(f"no network {network} of coin {coin}")


def _network_update(changes: Mapping[str, Any]) -> JSONObject:
    """The Binance fields a network patch sets (``AccountState.patch_network``)."""
    unknown = sorted(set(changes) - NETWORK_PATCH_KEYS)
    if unknown:
        raise AccountInputError(
            f"unknown keys {unknown}; expected some of {sorted(NETWORK_PATCH_KEYS)}"
        )
    update: JSONObject = {}
    for key, field_name in NETWORK_SWITCHES.items():
        if key in changes:
            if not isinstance(changes[key], bool):
                raise AccountInputError(f"{key} must be true or false")
            update[field_name] = changes[key]
    for key, field_name in NETWORK_TEXTS.items():
        if key in changes:
            if not isinstance(changes[key], str):
                raise AccountInputError(f"{key} must be a string")
            update[field_name] = changes[key]
        elif changes.get(key.removesuffix("_desc")) is True:
            update[field_name] = ""
    for key, field_name in NETWORK_DECIMALS.items():
        if key in changes:
            value = changes[key]
            if not isinstance(value, str) or not _DECIMAL_TEXT.fullmatch(value):
                raise AccountInputError(f"{key} must be a decimal in a string")
            update[field_name] = value
    fields = changes.get("fields", {})
    if not isinstance(fields, dict):
        raise AccountInputError("fields must be a JSON object")
    update.update(fields)
    return update


def _check_time(params: Mapping[str, str], server_time_ms: int) -> None:
    raw_timestamp = params.get("timestamp", "")
    if not raw_timestamp.isdigit():
        raise _missing("timestamp")
    raw_window = params.get("recvWindow")
    try:
        window = DEFAULT_RECV_WINDOW_MS if raw_window is None else float(raw_window)
    except ValueError:
        raise _missing("recvWindow") from None
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise SignedRequestError(400, -1131, "recvWindow must be less than 60000")
    timestamp = int(raw_timestamp)
    if timestamp >= server_time_ms + FUTURE_TOLERANCE_MS:
        raise SignedRequestError(
            400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if server_time_ms - timestamp > window:
        raise SignedRequestError(
            400, -1021, "Timestamp for this request is outside of the recvWindow."
        )
