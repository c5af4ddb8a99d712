"""Without Chromium the browser tests skip with one line naming what to install, unless
EXMETA_REQUIRE_BROWSER (set by .ci/run) makes that a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import browser_driver
from tests.browser_driver import INSTALL, REQUIRE, browser_missing, require_browser


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser_driver, "CHROMIUM", tmp_path / "chromium")


def test_without_chromium_the_browser_tests_skip_saying_what_to_install(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_browser()
    assert INSTALL in str(skipped.value)
    assert "\n" not in str(skipped.value)


def test_without_chromium_a_required_browser_fails(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_browser()
    assert INSTALL in str(failed.value)


def test_a_missing_driver_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser_driver, "CHROMEDRIVER", tmp_path / "chromedriver")
    reason = browser_missing()
    assert reason is not None
    assert str(tmp_path / "chromedriver") in reason
