import logging

from core.config import Secret, Settings, replace_section
from core.redact import MASK, RedactingFilter, escape_controls, settings_secrets


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


def test_a_newline_in_an_argument_cannot_forge_a_log_line() -> None:
    rec = record("unexpected error in GET %s", "/v1/x\n2026-12-03 07:00:00 ERROR forged\r\x00")
    RedactingFilter([]).filter(rec)
    assert rec.getMessage() == (
        "unexpected error in GET /v1/x\\n2026-12-03 07:00:00 ERROR forged\\r\\x00"
    )


def test_unicode_line_separators_and_c1_controls_are_escaped_too() -> None:
    assert escape_controls("a\u2028b\u2029c\x85d\x7fe") == "a\\u2028b\\u2029c\\x85d\\x7fe"
    assert escape_controls("BTCUSDT 币安 \t") == "BTCUSDT 币安 \\t"


def test_tracebacks_keep_their_lines() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        rec = record("failed", exc=exc)
    RedactingFilter([]).filter(rec)
    assert rec.exc_text is not None
    assert "\n" in rec.exc_text
