"""A logging filter that masks secrets and request signatures in every record, and
escapes control characters in its message.

Our own code never logs a key or a signed URL, but libraries do: urllib3 logs every
request line, query string included, at DEBUG, and an exception raised deep in requests
may quote the URL. The filter sits on the handlers, so it sees every record that is
written, whichever logger it came from, and masks the message, its arguments and the
formatted traceback before any formatter writes them out.

Messages quote untrusted text: a request path (``%0a`` decodes to a newline), an error
message a proxy in front of Binance made up. A newline in one would start a line that
looks like a record of its own, so every control character in a message is written
escaped (``\\n``, ``\\x00``): one record, one line. Tracebacks keep their lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from core.config import Secret, Settings

MASK = "***"
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A signature is the value of `signature=` in a query string, HMAC hex or base64 (%-encoded).
_SIGNATURE = re.compile(r"(signature=)[^&\s\"'<>]+", re.IGNORECASE)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """``text`` with each control character written as its escape, so it stays on one line."""
    return _CONTROL.sub(_escaped, text)


class RedactingFilter(logging.Filter):
    """Masks the given secret values and any ``signature=...`` in each record it passes,
    and escapes the control characters of its message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _SIGNATURE.sub(rf"\g<1>{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = escape_controls(self.redact(message))
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def settings_secrets(settings: Settings) -> list[str]:
    """Every configured secret value: key, HMAC secret, API token, database URLs."""
    secrets: list[Secret] = [
        settings.binance.api_key,
        settings.binance.api_secret,
        settings.api.token,
        settings.database.url,
        settings.api.database_url,
    ]
    return [s.reveal() for s in secrets if s]


def install(handlers: Iterable[logging.Handler], secrets: Iterable[str]) -> RedactingFilter:
    """Put one redacting filter on each handler; returns it (to remove it again in tests)."""
    redacting = RedactingFilter(secrets)
    for handler in handlers:
        handler.addFilter(redacting)
    return redacting
