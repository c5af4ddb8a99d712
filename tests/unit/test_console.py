"""The console's page and assets as the API serves them (api.console): every asset the
page names is packaged and served from /ui/, none comes from another host, and nothing
outside the asset folder can be asked for."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from api import create_app
from api.console import ASSETS, POLICY, catalogue
from core.config import Settings
from core.streams import MARKETS, STREAMS

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "api" / ASSETS
# Text in the assets that looks like a URL but is never fetched: the SVG namespace and
# the vendored library's banner comment naming its home.
NOT_FETCHED = {"http://www.w3.org/2000/svg", "https://github.com/leeoniya/uPlot"}


class References(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("src", "href") and v is not None]


@pytest.fixture
def client() -> FlaskClient:
    # The console's routes read no database: an engine that never connects will do.
    engine = create_engine("postgresql+psycopg://exmeta@127.0.0.1:1/none")
    return create_app(Settings(), engine).test_client()


def page_references(client: FlaskClient) -> list[str]:
    response = client.get("/ui/")
    assert response.status_code == 200
    parser = References()
    parser.feed(response.get_data(as_text=True))
    return parser.found


def test_the_page_carries_the_stream_catalogue_and_a_same_origin_policy(
    client: FlaskClient,
) -> None:
    response = client.get("/ui/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == POLICY
    found = re.search(
        r'<script id="catalogue" type="application/json">(.*?)</script>',
        response.get_data(as_text=True),
    )
    assert found is not None
    data = orjson.loads(found[1])
    assert data == catalogue()
    assert [m["name"] for m in data["markets"]] == list(MARKETS)
    assert [s["name"] for s in data["streams"]] == list(STREAMS)


def test_every_asset_the_page_names_is_served_from_ui(client: FlaskClient) -> None:
    references = page_references(client)
    assets = [r for r in references if not r.startswith("?")]  # the views' own links
    assert "console.js" in assets
    assert any(r.startswith("vendor/uplot") for r in assets)
    for reference in assets:
        assert "//" not in reference, reference
        assert not reference.startswith("/"), reference
        response = client.get(f"/ui/{reference}")
        assert response.status_code == 200, reference
        assert response.headers["Content-Security-Policy"] == POLICY


def test_no_asset_names_another_host() -> None:
    scanned = [p for p in FOLDER.rglob("*") if p.suffix in (".html", ".js", ".css", ".svg")]
    assert {"index.html", "console.js", "uPlot.iife.min.js"} <= {p.name for p in scanned}
    for path in scanned:
        urls = set(re.findall(r"https?://[^\s\"'()<>]+", path.read_text()))
        assert urls <= NOT_FETCHED, (path, urls - NOT_FETCHED)


def test_every_asset_is_package_data() -> None:
    """What a non-editable install copies: the package-data globs of pyproject.toml."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api"]
    files = [p.relative_to(REPO / "api") for p in FOLDER.rglob("*") if p.is_file()]
    assert files
    for file in files:
        # setuptools' "*" stops at a "/": a pattern matches one depth of folders.
        assert any(
            len(Path(p).parts) == len(file.parts)
            and all(
                fnmatch(part, glob) for part, glob in zip(file.parts, Path(p).parts, strict=True)
            )
            for p in patterns
        ), file


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../routes.py",
        "/ui/%2e%2e/routes.py",
        "/ui/..%2f__init__.py",
        "/ui/nothing.js",
        "/ui/vendor",
        "/ui/vendor/uplot-1.6.32/LICENSE",  # packaged, but not a page asset
    ],
)
def test_nothing_else_is_served(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.json is not None
    assert response.json["error"]["code"] == "not_found"


def test_ui_without_its_slash_is_redirected(client: FlaskClient) -> None:
    response = client.get("/ui")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/ui/")
