"""Which source a stream's observations come from (DESIGN §2: one history per source).

A source is the scheme, host and port of the base URL a poller is configured with, e.g.
``https://api.binance.com:443``. Credentials, path, query and fragment are dropped: the
source names *where* the answers come from, and a ``user:password@`` in a URL (a proxy's,
say) must never reach the database. The default port is written out and the host is
lower-cased, so ``https://API.binance.com`` and ``https://api.binance.com:443/`` are one
source and a history does not split over how a URL was spelled.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class SourceError(ValueError):
    """The URL names no source; the message never repeats the URL (it may hold a password)."""


def source_of(base_url: str) -> str:
    """``scheme://host:port`` of ``base_url``; raises SourceError if it has no http(s) host."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise SourceError("must start with http:// or https://")
    host = parts.hostname  # lower-cased, userinfo and IPv6 brackets removed
    if not host:
        raise SourceError("has no host")
    try:
        port = parts.port
    except ValueError:
        raise SourceError("has a port that is not a number in 0..65535") from None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"
