"""Parsing and formatting the instants users type (DESIGN §7).

Only unambiguous input is accepted: RFC 3339 with an explicit offset or ``Z``, or
integer epoch milliseconds. A naive time would silently mean the server's zone, and
words like ``now`` or ``infinity`` (which PostgreSQL would happily accept) hide intent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)
_EPOCH_MS = re.compile(r"-?\d{1,15}")
MAX_INPUT = 64


class TimeParseError(ValueError):
    """The text is not an instant we accept; the message says what is expected."""


def parse_instant(value: str) -> datetime:
    """An aware UTC datetime from RFC 3339 (with offset or Z) or epoch milliseconds."""
    if len(value) > MAX_INPUT:
        raise TimeParseError("timestamp is too long")
    text = value.strip()
    if _EPOCH_MS.fullmatch(text):
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(text))
        except OverflowError:
            raise TimeParseError(f"epoch milliseconds out of range: {text}") from None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise TimeParseError(
            "expected RFC 3339 with an offset or Z (e.g. 2024-05-01T12:00:00.000Z)"
            " or integer epoch milliseconds"
        )
    tz = match["tz"].upper()
    if tz != "Z":
        hours, minutes = int(tz[1:3]), int(tz[4:6])
        if hours > 23 or minutes > 59:
            raise TimeParseError(f"offset out of range: {tz}")
    frac = (match["frac"] or "")[:7]  # microseconds; finer digits are truncated
    try:
        parsed = datetime.fromisoformat(
            f"{match['date']}T{match['time']}{frac}{tz.replace('Z', '+00:00')}"
        )
    except ValueError as exc:
        raise TimeParseError(f"not a valid date or time: {exc}") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise TimeParseError("timestamp out of range") from None


def format_instant(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, the one format every answer uses."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    # Not strftime: its %Y drops the zero padding of years before 1000 ("1-01-01").
    return utc.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
