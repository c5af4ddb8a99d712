"""Parsing and formatting the instants users type (DESIGN §7).

Only unambiguous input is accepted: RFC 3339 with an explicit offset or ``Z``, or
integer epoch milliseconds. A naive time would silently mean the server's zone, and
words like ``now`` or ``infinity`` (which PostgreSQL would happily accept) hide intent.

Epoch milliseconds must have 12 or 13 digits, the first not 0 (1973-03-03T09:46:40Z to
2286-11-20T17:46:39.999Z): a shorter integer is most likely epoch *seconds* (today's have
10 digits), which read as milliseconds would silently ask about January 1970. No integer
accepted can be meant as seconds: 12 digits of seconds are past year 5000. Every instant
Binance (2017) can have is inside the range, and RFC 3339 reaches the rest.

What is accepted is exactly what ``INSTANT_PATTERN`` matches, and the OpenAPI document
publishes that pattern: a client or a fuzzer that checks its input against the document
is never refused by the parser, and never accepted where the document says no. So the
pattern admits only real calendar dates (leap days included) and only instants a
``datetime`` can hold, and digits are ASCII only (``\\d`` and ``int()`` also read
fullwidth and Arabic-Indic digits, and ``int()`` reads '1_000').
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"  # every month has days 1 to 28
    "|(?:0[13-9]|1[0-2])-(?:29|30)"  # every month but February has 29 and 30
    "|(?:0[13578]|1[02])-31)"
)
# Divisible by 4 but not by 100, or by 400: the years with a February 29.
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_INNER_YEAR = (
    "(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
)
_TIME = r"[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_OFFSET = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# In years 1 and 9999 an offset could carry the instant out of datetime's range, so
# there only UTC and the offsets that move it inwards are accepted.
_RFC3339 = (
    f"(?:{_INNER_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_TIME}(?:[Zz]|[+-]{_OFFSET})"
    f"|0001-{_MONTH_DAY}{_TIME}(?:[Zz]|-{_OFFSET})"
    f"|9999-{_MONTH_DAY}{_TIME}(?:[Zz]|\\+{_OFFSET})"
)
_EPOCH_MS = "[1-9][0-9]{11,12}"
INSTANT_PATTERN = f"^(?:{_EPOCH_MS}|{_RFC3339})$"
_INSTANT = re.compile(INSTANT_PATTERN)
_EPOCH = re.compile(_EPOCH_MS)
# Integers refused as epoch milliseconds, to explain why; ASCII digits as everywhere.
_INTEGER = re.compile("-?[0-9]+")
# 9 or 10 digits: epoch seconds from 1973 to 2286 (times 1000, epoch milliseconds).
_SECONDS = re.compile("[1-9][0-9]{8,9}")
# An offset's "+" that arrived as a space: an unencoded "+" in a URL's query means one.
_SPACE_FOR_PLUS = re.compile(r":[0-5][0-9](?:\.[0-9]+)? (?:[01][0-9]|2[0-3]):?[0-5][0-9]$")
MAX_INPUT = 64
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeParseError(ValueError):
    """The text is not an instant we accept; the message says what is expected."""


def parse_instant(value: str) -> datetime:
    """An aware UTC datetime from RFC 3339 (with offset or Z) or epoch milliseconds."""
    if len(value) > MAX_INPUT:
        raise TimeParseError("timestamp is too long")
    if _INSTANT.fullmatch(value) is None:
        raise TimeParseError(_why_refused(value))
    if _EPOCH.fullmatch(value):
        return _UNIX_EPOCH + timedelta(milliseconds=int(value))
    # The pattern fixed every position: date, time, then fraction and offset.
    rest = value[19:]
    frac, offset = (rest[:-1], "+00:00") if rest[-1] in "Zz" else (rest[:-6], rest[-6:])
    frac = frac[:7]  # microseconds; finer digits are truncated
    return datetime.fromisoformat(f"{value[:10]}T{value[11:19]}{frac}{offset}").astimezone(UTC)


def _why_refused(value: str) -> str:
    expected = (
        "expected RFC 3339 with an offset or Z (e.g. 2024-05-01T12:00:00.000Z), a real"
        " date in years 1 to 9999, or integer epoch milliseconds (12 or 13 digits)"
    )
    if _SECONDS.fullmatch(value):
        as_seconds = _UNIX_EPOCH + timedelta(seconds=int(value))
        return (
            f"{value} looks like epoch seconds ({format_instant(as_seconds)}); epoch"
            f" milliseconds have 12 or 13 digits: {value}000 (read as milliseconds it would be"
            " an instant in 1970, refused so as not to answer about it silently)"
        )
    if _INTEGER.fullmatch(value):
        return f"{expected}, no sign and no leading zero (from 1973-03-03T09:46:40Z)"
    if _SPACE_FOR_PLUS.search(value):
        return (
            f"{expected}; the space before the offset was probably a '+' sent unencoded"
            " (in a URL's query '+' means a space): encode it as %2B"
        )
    return expected


def format_instant(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, the one format every answer uses."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    # Not strftime: its %Y drops the zero padding of years before 1000 ("1-01-01").
    return utc.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)


def window_before(end: datetime, length: timedelta) -> datetime:
    """The start of a window of ``length`` ending at ``end``, cut at year 1: the instants
    parse_instant accepts begin there, and a datetime before it overflows."""
    return end - min(length, end - _FIRST_INSTANT)
