import logging

from core.config import Secret, Settings, replace_section
from core.redact import MASK, RedactingFilter, settings_secrets


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_secrets_and_signatures_are_masked_in_message_and_arguments() -> None:
    redacting = RedactingFilter(["k3y", "s3cret"])
    rec = record("GET %s key=%s", "/api/v3/account?timestamp=1&signature=ab%2Bc%3D%3D", "k3y")
    assert redacting.filter(rec)
    assert rec.getMessage() == f"GET /api/v3/account?timestamp=1&signature={MASK} key={MASK}"


def test_tracebacks_are_masked_too() -> None:
    try:
        raise RuntimeError("failed: https://h/x?signature=deadbeef with s3cret")
    except RuntimeError as exc:
        rec = record("boom", exc=exc)
    RedactingFilter(["s3cret"]).filter(rec)
    assert rec.exc_text is not None
    assert "deadbeef" not in rec.exc_text
    assert "s3cret" not in rec.exc_text
    assert f"signature={MASK}" in rec.exc_text


def test_settings_secrets_lists_only_the_configured_ones() -> None:
    settings = replace_section(Settings(), "binance", api_key=Secret("k"), api_secret=Secret("s"))
    assert settings_secrets(settings) == ["k", "s"]
