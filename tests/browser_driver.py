"""A real headless Chromium for the console's tests: Debian's ``chromium`` driven through
its ``chromium-driver``, never a browser fetched at run time.

Both paths are given to selenium, so selenium-manager (which would look for, and may
download, a browser and a driver) is never consulted. Without them the browser tests
skip with one line saying what to install, unless ``EXMETA_REQUIRE_BROWSER`` is set
(``.ci/run`` sets it), where a missing browser is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"
REQUIRE = "EXMETA_REQUIRE_BROWSER"
SCREENSHOTS = "EXMETA_SCREENSHOTS"
REPO = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 20
LOCAL_ZONE = "Europe/Paris"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return None
    return f"browser tests need {' and '.join(missing)}: {INSTALL}"


def require_browser() -> None:
    """Skip the calling test module (or, with EXMETA_REQUIRE_BROWSER set, fail its
    collection) when Chromium is not installed: called at the module's top, the skip is
    one line of the summary, not one per test."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE):
        pytest.fail(f"{REQUIRE} is set and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def screenshot_dir() -> Path:
    """Where the tests leave a picture of each page: $EXMETA_SCREENSHOTS or build/screenshots."""
    folder = Path(os.environ.get(SCREENSHOTS) or REPO / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    # The network log (performance) shows every request the page made; the browser log
    # its console messages.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return options


def chromium(log: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium, quit whatever happens; chromedriver logs to ``log``."""
    # Local time is shown beside UTC: a zone of its own shows them apart in screenshots.
    env = {**os.environ, "TZ": LOCAL_ZONE}
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log), env=env)
    driver = webdriver.Chrome(service=service, options=chromium_options())
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page asked for since the last call (the log is drained on read)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = orjson.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: list[str], origin: str) -> list[str]:
    """Those of ``urls`` that leave ``origin`` (scheme, host and port)."""
    own = urlsplit(origin)
    return [
        url
        for url in urls
        if (urlsplit(url).scheme, urlsplit(url).netloc) != (own.scheme, own.netloc)
    ]


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The console messages of level SEVERE since the last call."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_until(driver: webdriver.Chrome, condition: Any, what: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message=what)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page (not only the window) as ``<screenshot_dir>/<name>.png``."""
    width, height = driver.get_window_size().values()
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, int(full) + 140))
    try:
        path = screenshot_dir() / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        return path
    finally:
        driver.set_window_size(width, height)


def rendered(driver: webdriver.Chrome) -> None:
    """Wait until the console has drawn the view its URL names (body[data-ready=true])."""
    wait_until(
        driver,
        lambda d: d.execute_script("return document.body.dataset.ready") == "true",
        "the console never finished drawing",
    )


# WCAG 2's contrast ratio of every element's own text against the first opaque background
# behind it; the elements below 4.5:1 (3:1 for large text), as [text, ratio].
LOW_CONTRAST_JS = """
const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
const luminance = ([r, g, b]) => {
  const [R, G, B] = [r, g, b].map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * R + 0.7152 * G + 0.0722 * B;
};
const background = (node) => {
  for (let n = node; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const low = [];
for (const node of document.querySelectorAll("body *")) {
  const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
  if (!own || !node.getClientRects().length) continue;
  const style = getComputedStyle(node);
  const [a, b] = [luminance(rgb(style.color)), luminance(background(node))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) low.push([node.textContent.trim().slice(0, 40), ratio]);
}
return low;
"""

# Every form control without a label (its own <label>, or aria-label).
UNLABELLED_JS = """
return [...document.querySelectorAll("input, select, textarea")]
  .filter((c) => c.type !== "hidden" && !c.labels.length && !c.getAttribute("aria-label"))
  .map((c) => c.outerHTML);
"""
