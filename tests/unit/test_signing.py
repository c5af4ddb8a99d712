"""Signing reproduces Binance's published vectors byte for byte (binance-api-notes §7.1)."""

from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.config import BinanceSettings, Secret
from poller.signing import (
    Signer,
    SigningKeyError,
    ed25519_signature,
    encode_query,
    hmac_signature,
    load_ed25519_key,
    signed_query,
    signer_from_settings,
)

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "signing"
HMAC = orjson.loads((VECTORS / "hmac_sha256_docs_vectors.json").read_bytes())
ED25519 = orjson.loads((VECTORS / "ed25519_vectors.json").read_bytes())


def ed25519_key() -> Ed25519PrivateKey:
    key = load_pem_private_key(ED25519["privateKeyPem"].encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@pytest.mark.parametrize("vector", HMAC["vectors"], ids=lambda v: v["name"])
def test_hmac_reproduces_the_docs_vectors(vector: dict[str, Any]) -> None:
    assert hmac_signature(HMAC["secretKey"], vector["payload"]) == vector["signature"]


@pytest.mark.parametrize(
    "vector", [v for v in ED25519["vectors"] if "payload" in v], ids=lambda v: v["name"]
)
def test_ed25519_reproduces_the_vectors(vector: dict[str, Any]) -> None:
    assert ed25519_signature(ed25519_key(), vector["payload"]) == vector["signature_base64"]
    assert encode_query([("signature", vector["signature_base64"])]) == (
        "signature=" + vector["signature_percent_encoded"]
    )


def test_ed25519_reproduces_the_fix_docs_vector() -> None:
    vector = ED25519["vectors"][0]
    payload = "\x01".join(vector["payload_fields_joined_by_SOH_0x01"])
    assert ed25519_signature(ed25519_key(), payload) == vector["signature_base64"]


def test_signed_query_puts_recv_window_timestamp_then_signature() -> None:
    signer = Signer(hmac_secret=Secret(HMAC["secretKey"]))
    query = signed_query([("omitZeroBalances", "true")], signer, 1499827319559, 5000)
    expected = next(v for v in HMAC["vectors"] if v["name"] == "account_omitZeroBalances")
    assert query == f"{expected['payload']}&signature={expected['signature']}"

    ed = signed_query(
        [("omitZeroBalances", "true")], Signer(private_key=ed25519_key()), 1499827319559, 5000
    )
    ed_expected = next(v for v in ED25519["vectors"] if v["name"] == "account_omitZeroBalances")
    assert ed == f"{ed_expected['payload']}&signature={ed_expected['signature_percent_encoded']}"


def test_non_ascii_values_are_percent_encoded_before_signing() -> None:
    signer = Signer(hmac_secret=Secret(HMAC["secretKey"]))
    params = [
        ("symbol", "".join(chr(c) for c in range(0xFF11, 0xFF17))),  # fullwidth 1-6
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "1"),
        ("price", "0.1"),
    ]
    query = signed_query(params, signer, 1499827319559, 5000)
    assert query.endswith(
        "&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    )


def test_signer_repr_shows_no_key_material() -> None:
    signer = Signer(hmac_secret=Secret(HMAC["secretKey"]))
    assert HMAC["secretKey"] not in repr(signer)
    assert repr(signer) == "Signer(hmac, ***)"


def test_ed25519_key_is_loaded_from_the_configured_pem_file(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_text(ED25519["privateKeyPem"])
    settings = BinanceSettings(api_key=Secret("k"), key_type="ed25519", private_key_path=str(pem))
    signer = signer_from_settings(settings)
    payload = ED25519["vectors"][3]["payload"]
    assert signer.sign(payload) == ED25519["vectors"][3]["signature_base64"]


def test_unusable_pem_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_ed25519_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key") as excinfo:
        load_ed25519_key(garbage)
    assert "not base64" not in str(excinfo.value)
