"""Raw bodies as stored: volatile fields blanked so identical content hashes alike.

Binance stamps every exchangeInfo body with ``serverTime``; left in, no two polls would
ever share a hash and an unchanged exchange could not be recognised without parsing.
The value is kept on the observation and put back when the document is served.
"""

from __future__ import annotations

import re

_SERVER_TIME = re.compile(rb'("serverTime"\s*:\s*)(\d+)')


def blank_server_time(body: bytes) -> tuple[bytes, int | None]:
    match = _SERVER_TIME.search(body)
    if match is None:
        return body, None
    return body[: match.start(2)] + b"0" + body[match.end(2) :], int(match.group(2))


def restore_server_time(body: bytes, server_time_ms: int) -> bytes:
    return _SERVER_TIME.sub(lambda m: m.group(1) + str(server_time_ms).encode(), body, count=1)
