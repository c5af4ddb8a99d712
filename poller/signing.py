"""Request signing for Binance's USER_DATA endpoints (binance-api-notes §7).

Binance signs the query string exactly as sent: parameters percent-encoded first (since
2026-01-15 an unencoded payload is ``-1022``), then signed, then ``signature`` appended
last. The functions here are pure so the docs' vectors can pin them down; the key
material sits in ``Signer``, whose repr never shows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlencode

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.config import BinanceSettings, Secret

Params = Iterable[tuple[str, str]]


class SigningKeyError(ValueError):
    """The configured key cannot be used; the message names the setting, never the key."""


def hmac_signature(secret: str, payload: str) -> str:
    """HMAC-SHA256 of the payload, lowercase hex (Binance accepts either case)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ed25519_signature(private_key: Ed25519PrivateKey, payload: str) -> str:
    """Ed25519 over the payload bytes, base64 (percent-encoded later, with the query)."""
    return base64.b64encode(private_key.sign(payload.encode())).decode()


def encode_query(params: Params) -> str:
    """Percent-encode every value (UTF-8), spaces as %20: the bytes that are signed and sent."""
    return urlencode(list(params), quote_via=quote, safe="")


class Signer:
    """One API key's signing secret (HMAC secret or Ed25519 private key), kept out of reprs."""

    __slots__ = ("_hmac_secret", "_private_key", "kind")

    def __init__(
        self, *, hmac_secret: Secret | None = None, private_key: Ed25519PrivateKey | None = None
    ) -> None:
        if (hmac_secret is None) == (private_key is None):
            raise ValueError("a Signer needs exactly one of hmac_secret and private_key")
        self._hmac_secret = hmac_secret
        self._private_key = private_key
        self.kind = "hmac" if hmac_secret is not None else "ed25519"

    def sign(self, payload: str) -> str:
        if self._hmac_secret is not None:
            return hmac_signature(self._hmac_secret.reveal(), payload)
        assert self._private_key is not None
        return ed25519_signature(self._private_key, payload)

    def __repr__(self) -> str:
        return f"Signer({self.kind}, ***)"


def signed_query(params: Params, signer: Signer, timestamp_ms: int, recv_window_ms: int) -> str:
    """The full query string: params, ``recvWindow``, ``timestamp``, then ``signature``.

    Called once per attempt, so a retry never resends an expired timestamp or a
    signature over one.
    """
    payload = encode_query(
        [*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))]
    )
    return f"{payload}&{encode_query([('signature', signer.sign(payload))])}"


def load_ed25519_key(path: Path) -> Ed25519PrivateKey:
    """The unencrypted PKCS#8 PEM private key at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(
            f"[binance] private_key_path: cannot read {path}: {exc.strerror}"
        ) from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The library's message may quote the file; ours names only the path.
        raise SigningKeyError(
            f"[binance] private_key_path: {path} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"[binance] private_key_path: {path} is not an Ed25519 key")
    return key


def signer_from_settings(settings: BinanceSettings) -> Signer:
    """The signer for the configured key type (settings validation ensured the parts exist)."""
    if settings.key_type == "ed25519":
        return Signer(private_key=load_ed25519_key(Path(settings.private_key_path).expanduser()))
    return Signer(hmac_secret=settings.api_secret)
