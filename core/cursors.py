"""Opaque page cursors: a position in an answer's order, handed out and taken back as text.

A cursor is the sort key of the last item a page returned; the next page starts after
it, so pages never repeat or skip an item whatever their size. Base64 of JSON keeps the
token opaque to clients (they pass it back, never build it) without signing it: a forged
token can only ask for a position, which any caller may ask for anyway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime

import orjson


class CursorError(ValueError):
    """A ``next`` token that was not handed out as this answer's cursor."""


def encode_position(at: datetime, parts: Sequence[str]) -> str:
    payload = orjson.dumps([at.isoformat(), *parts])
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_position(token: str, size: int, answer: str) -> tuple[datetime, list[str]]:
    """The instant and the ``size`` strings after it; ``answer`` names it in the error."""
    refused = CursorError(f"next: not a cursor returned by {answer}")
    try:
        payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = orjson.loads(payload)
        when = datetime.fromisoformat(values[0])
    except (binascii.Error, ValueError, TypeError, IndexError, KeyError) as exc:
        raise refused from exc
    parts = values[1:]
    if when.tzinfo is None or len(parts) != size or not all(isinstance(x, str) for x in parts):
        raise refused
    return when, parts
