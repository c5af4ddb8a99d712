"""``/ui/``: the incident console, a static page served by the API's own process.

The page (``api/console_assets``) is HTML, CSS and JavaScript that reads the same /v1
routes as any client, with the same token rule: the account's parts appear only when the
viewer gives the token, which the page keeps in the tab's sessionStorage and sends as the
routes' bearer header. Nothing is built at install or run time and nothing is fetched from
elsewhere: every asset, the charting library included (uPlot, vendored as its pinned
built file beside its licence), ships in the package, and the Content-Security-Policy on
every answer here lets the page reach its own origin only.

The one thing the page cannot learn from a /v1 route is the stream catalogue (which
markets exist, which stream is a market's exchangeInfo, which streams are private): the
index carries it, rendered from core.streams, so the page declares none of it again.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
from flask import Blueprint, Response
from werkzeug.security import safe_join

from api.errors import ApiError
from core import streams

ASSETS = "console_assets"
CATALOGUE_MARK = "<!--catalogue-->"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}

console = Blueprint("console", __name__)


def catalogue() -> dict[str, Any]:
    """What the page needs of the stream catalogue, in its order."""
    return {
        "default_market": streams.DEFAULT_MARKET,
        "markets": [
            {"name": m.name, "exchange_info": m.exchange_info} for m in streams.MARKET_DECLARATIONS
        ],
        "streams": [
            {"name": s.name, "market": s.market, "private": s.private} for s in streams.CATALOGUE
        ],
    }


@cache
def asset(name: str) -> bytes:
    """A packaged asset's bytes; 404 ``not_found`` for anything else, ``..`` included."""
    path = safe_join(ASSETS, name)
    found = resources.files("api").joinpath(path) if path is not None else None
    if found is None or not found.is_file():
        raise ApiError(404, "not_found", f"no console asset {name}")
    return found.read_bytes()


@cache
def index() -> bytes:
    page = asset("index.html")
    data = orjson.dumps(catalogue()).replace(b"<", b"\\u003c")
    tag = b'<script id="catalogue" type="application/json">' + data + b"</script>"
    return page.replace(CATALOGUE_MARK.encode(), tag)


def _answer(body: bytes, name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in TYPES:
        raise ApiError(404, "not_found", f"no console asset {name}")
    return Response(body, content_type=TYPES[suffix], headers=HEADERS)


@console.get("/ui/")
def console_page() -> Response:
    return _answer(index(), "index.html")


@console.get("/ui/<path:name>")
def console_asset(name: str) -> Response:
    """A packaged asset (``/ui`` itself is redirected to ``/ui/`` by Flask's routing)."""
    return _answer(index() if name == "index.html" else asset(name), name)
