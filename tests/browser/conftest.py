"""One live console per module: the sim, the story polled into a database of its own,
`exmeta serve` over it, and one headless Chromium; each started once, stopped whatever
happens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from selenium import webdriver

import migrations
from binance_sim.server import SimServer
from core.config import DatabaseSettings
from core.db import create_db_engine
from core.verify import verify_history
from tests.browser_driver import chromium
from tests.conftest import DatabaseServer
from tests.console_story import EXCHANGE_INFO_INTERVAL, Story, play_story
from tests.e2e.processes import ApiServer
from tests.signed_sim import API_TOKEN


@dataclass(frozen=True, slots=True)
class Console:
    url: str  # the API's origin; the console is at {url}/ui/
    story: Story


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    yield from chromium(tmp_path_factory.mktemp("chromium") / "chromedriver.log")


@pytest.fixture(scope="module")
def console(
    browser: webdriver.Chrome, pg_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    database_url = pg_server.create_database("exmeta_console")
    engine = create_db_engine(database_url, DatabaseSettings(), application_name="exmeta-console")
    try:
        migrations.upgrade(engine)
        with SimServer() as sim:
            story = play_story(sim, engine)
        with engine.connect() as conn:
            assert not verify_history(conn)
        serve = ApiServer(
            tmp_path_factory.mktemp("serve"),
            database_url,
            API__TOKEN=API_TOKEN,
            POLLER__EXCHANGE_INFO_INTERVAL=str(EXCHANGE_INFO_INTERVAL),
        )
        with serve as server:
            yield Console(server.url, story)
    finally:
        engine.dispose()
