"""Raw bodies as stored: volatile fields blanked so identical content hashes alike.

Binance stamps every exchangeInfo body with ``serverTime``; left in, no two polls would
ever share a hash and an unchanged exchange could not be recognised without parsing.
The value is kept on the observation and put back when the document is served.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

_SERVER_TIME = re.compile(rb'("serverTime"\s*:\s*)(\d+)')


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_shared = threading.local()


@contextmanager
def documents_shared() -> Iterator[None]:
    """Within it, ``load_document`` parses a body object once on this thread and hands
    every reader the same document: a changed poll's parser and its shape
    (core.ingest) read one 3.7 MB body, which cost a second parse (~22 ms) and a second
    tree in memory. Readers must not change what they are handed."""
    _shared.documents = {}
    try:
        yield
    finally:
        del _shared.documents


def load_document(body: bytes) -> Any:
    """A whole response body parsed; ValueError if it is not JSON (NaN and Infinity are not).

    The standard library's parser rather than orjson's for documents of megabytes:
    orjson builds its own tree of the document before the Python objects, and for a
    3.7 MB exchangeInfo body that peaks at ~59 MB against ~16 MB (tracemalloc), at the same
    speed here (24 vs 22 ms): a changed poll's peak is what the poller's resident memory
    settles at (P9). Small bodies and events keep orjson.
    """
    documents: dict[int, tuple[bytes, Any]] | None = getattr(_shared, "documents", None)
    if documents is None:
        return json.loads(body, parse_constant=_no_constant)
    held = documents.get(id(body))
    if held is None or held[0] is not body:
        held = documents[id(body)] = (body, json.loads(body, parse_constant=_no_constant))
    return held[1]


def blank_server_time(body: bytes) -> tuple[bytes, int | None]:
    match = _SERVER_TIME.search(body)
    if match is None:
        return body, None
    return body[: match.start(2)] + b"0" + body[match.end(2) :], int(match.group(2))


def restore_server_time(body: bytes, server_time_ms: int) -> bytes:
    return _SERVER_TIME.sub(lambda m: m.group(1) + str(server_time_ms).encode(), body, count=1)
