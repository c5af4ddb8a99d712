"""The incident console (/ui/) in a real headless Chromium, against a live `exmeta serve`
over a history the sim made and the real jobs polled (tests/console_story.py): a tick-size
change, a HALT, a delisting announcement and a gap.

Every test also checks, on leaving, that the page asked nothing of any origin but the
API's and logged no error (the autouse fixture ``watched``); each leaves a screenshot in
build/screenshots (or $EXMETA_SCREENSHOTS).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from core.timeparse import format_instant
from tests.browser.conftest import Console
from tests.browser_driver import (
    LOW_CONTRAST_JS,
    UNLABELLED_JS,
    console_errors,
    foreign,
    rendered,
    requested_urls,
    require_browser,
    screenshot,
    wait_until,
)
from tests.console_story import CHURNING, NEW_TICK, OLD_TICK, SYMBOL
from tests.signed_sim import API_TOKEN

require_browser()
MS = timedelta(milliseconds=1)


@pytest.fixture(autouse=True)
def watched(browser: webdriver.Chrome, console: Console) -> Iterator[list[str]]:
    """The URLs the page requests during the test; none may leave the API's origin, and
    the browser's console must stay free of errors."""
    requested_urls(browser)
    console_errors(browser)
    seen: list[str] = []
    yield seen
    seen.extend(requested_urls(browser))
    assert foreign(seen, console.url) == []
    assert console_errors(browser) == []


def open_view(browser: webdriver.Chrome, console: Console, **params: str) -> None:
    browser.get(f"{console.url}/ui/?{urlencode(params)}")
    rendered(browser)


def at(instant: datetime) -> str:
    found = format_instant(instant)
    assert found is not None
    return found


def cell(browser: webdriver.Chrome, symbol: str, field: str) -> str:
    return str(
        browser.find_element(
            By.CSS_SELECTOR, f'#symbols-table tr[data-symbol="{symbol}"] td[data-field="{field}"]'
        ).text
    )


def evidence_times(browser: webdriver.Chrome, container: str) -> list[str]:
    """The instants (datetime attributes) of the evidence shown in ``container``."""
    return [
        str(t.get_attribute("datetime"))
        for t in browser.find_elements(By.CSS_SELECTOR, f"#{container} .evidence time")
    ]


def changes_counted(summary: str) -> int:
    """N of the activity view's "N changes from ..." line."""
    count, _, rest = summary.partition(" changes from ")
    assert rest, summary
    return int(count)


def submit(browser: webdriver.Chrome, form: str, **values: str) -> None:
    for name, value in values.items():
        field = browser.find_element(By.CSS_SELECTOR, f'#{form} [name="{name}"]')
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, f'#{form} button[type="submit"]').click()
    rendered(browser)


def test_instant_view_shows_the_rules_in_force_at_the_chosen_instant(
    browser: webdriver.Chrome, console: Console
) -> None:
    story = console.story
    before = story.tick_changed - MS
    open_view(browser, console, view="instant", at=at(before), symbols=SYMBOL)
    assert cell(browser, SYMBOL, "status") == "TRADING"
    assert cell(browser, SYMBOL, "tick size") == OLD_TICK
    # The evidence: the first poll after is the one that saw the new tick size.
    assert at(story.tick_changed) in evidence_times(browser, "instant-evidence")
    after = browser.find_element(By.ID, "instant-after").text
    assert "filters.PRICE_FILTER.tickSize" in after
    assert NEW_TICK in after
    assert f"symbol {CHURNING}" not in after  # another symbol's change, left out

    # Another instant typed into the form: the HALT and the new tick size, the delisting
    # announced by then, and the poll that saw the HALT as the evidence.
    submit(browser, "instant-form", at=at(story.delisting_announced + MS))
    assert cell(browser, SYMBOL, "status") == "HALT"
    assert cell(browser, SYMBOL, "tick size") == NEW_TICK
    assert at(story.halted) in evidence_times(browser, "instant-evidence")
    delistings = browser.find_element(By.ID, "delistings").text
    assert SYMBOL in delistings
    assert "normal" in browser.find_element(By.ID, "system-status").text
    exchange = browser.find_element(By.ID, "instant-exchange").text
    for part in ("Rate limits (spot)", "Wallet", "Margin, cross", "Margin, isolated"):
        assert part in exchange
    assert not browser.find_element(By.ID, "instant-account-section").is_displayed()
    assert parse_qs(urlsplit(browser.current_url).query)["at"] == [
        at(story.delisting_announced + MS)
    ]
    screenshot(browser, "instant")


def test_an_instant_in_the_gap_says_so(browser: webdriver.Chrome, console: Console) -> None:
    story = console.story
    middle = story.gap_from + (story.resumed - story.gap_from) / 2
    open_view(browser, console, view="instant", at=at(middle), symbols=SYMBOL)
    evidence = browser.find_element(By.ID, "instant-evidence").text
    assert "yes: no successful poll" in evidence
    assert evidence_times(browser, "instant-evidence")[:2] == [
        at(story.gap_from),
        at(story.resumed),
    ]


def test_order_check_reports_the_tick_size_violation(
    browser: webdriver.Chrome, console: Console
) -> None:
    story = console.story
    when = at(story.tick_changed + MS)
    open_view(browser, console, view="instant", at=when, symbols=SYMBOL)
    order = {"side": "BUY", "type": "LIMIT", "quantity": "0.1", "price": "100.05"}
    submit(browser, "check-form", symbol=SYMBOL, **order)
    verdict = browser.find_element(By.ID, "check-verdict").text
    assert verdict.startswith("Rejected")
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#check-violations tbody tr")
    ]
    assert [rule for rule, _ in rows] == ["PRICE_FILTER.tickSize"]
    assert NEW_TICK in rows[0][1]
    assert "100.05" in rows[0][1]
    answer = requests.get(
        f"{console.url}/v1/symbols/{SYMBOL}/check",
        params={"as_of": when, **order},
        timeout=10,
    ).json()
    assert browser.find_element(By.ID, "check-nearest-price").text == answer["nearest"]["price"]
    assert answer["nearest"]["price"] != "100.05"
    screenshot(browser, "order-check")


def test_a_pasted_link_restores_the_same_view(browser: webdriver.Chrome, console: Console) -> None:
    story = console.story
    open_view(browser, console, view="instant", symbols=SYMBOL)
    submit(browser, "instant-form", at=at(story.tick_changed + MS))
    submit(browser, "check-form", symbol=SYMBOL, quantity="0.1", price="100.05")
    link = browser.current_url
    shown = browser.find_element(By.ID, "main").text
    assert "PRICE_FILTER.tickSize" in shown

    browser.get("about:blank")
    browser.get(link)
    rendered(browser)
    assert browser.find_element(By.ID, "main").text == shown

    open_view(browser, console, view="timeline", symbol=SYMBOL)
    browser.find_element(By.CSS_SELECTOR, '[data-zoom="in"]').click()
    first_halt = browser.find_element(
        By.CSS_SELECTOR, '#timeline-marks li[data-kind="status"] button'
    )
    first_halt.click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "point-raw"), "no point detail")
    link = browser.current_url
    shown = browser.find_element(By.ID, "view-timeline").text
    browser.get("about:blank")
    browser.get(link)
    rendered(browser)
    wait_until(browser, lambda d: d.find_elements(By.ID, "point-raw"), "no point detail")
    assert browser.find_element(By.ID, "view-timeline").text == shown


def test_timeline_marks_the_halt_at_its_instant(
    browser: webdriver.Chrome, console: Console
) -> None:
    story = console.story
    open_view(browser, console, view="timeline", symbol=SYMBOL)
    [halt] = browser.find_elements(By.CSS_SELECTOR, '.band[data-status="HALT"]')
    assert halt.get_attribute("data-from") == at(story.halted)
    assert halt.get_attribute("data-to") == at(story.resumed)
    assert halt.is_displayed()
    assert halt.size["width"] > 0
    # The change that made it is marked at the same instant, at the same place on the axis.
    [status_change] = browser.find_elements(
        By.CSS_SELECTOR, f'.chart[data-rule="status"] .mark[data-at="{at(story.halted)}"]'
    )
    assert "status" in str(status_change.get_attribute("data-fields")).split()
    assert abs(status_change.location["x"] - halt.location["x"]) <= 1
    # The tick size: a step line of its own, its change marked; the delisting news and
    # the gap on the status chart.
    tick = f'.chart[data-rule="filters.PRICE_FILTER.tickSize"] .mark[data-at="{at(story.tick_changed)}"]'
    assert browser.find_elements(By.CSS_SELECTOR, tick)
    delisting = f'.mark-delisting[data-at="{at(story.delisting_announced)}"]'
    assert browser.find_elements(By.CSS_SELECTOR, delisting)
    gaps = browser.find_elements(By.CSS_SELECTOR, '.chart[data-rule="status"] .gap')
    assert (at(story.gap_from), at(story.resumed)) in [
        (g.get_attribute("data-from"), g.get_attribute("data-to")) for g in gaps
    ]
    screenshot(browser, "timeline")

    # Click the middle of the HALT band: the rules and the document in force then. The
    # window is the story's own (from the URL), so the band is wide however long ago it was.
    window = {"from": at(story.first_poll), "to": at(story.last_poll + timedelta(seconds=1))}
    open_view(browser, console, view="timeline", symbol=SYMBOL, **window)
    [halt] = browser.find_elements(By.CSS_SELECTOR, '.band[data-status="HALT"]')
    assert halt.size["width"] > 100
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", halt)
    overlay = browser.find_element(By.CSS_SELECTOR, '.chart[data-rule="status"] .u-over')
    offset = halt.location["x"] + halt.size["width"] / 2 - overlay.location["x"]
    webdriver.ActionChains(browser).move_to_element_with_offset(
        overlay, int(offset - overlay.size["width"] / 2), 0
    ).click().perform()
    wait_until(browser, lambda d: d.find_elements(By.ID, "point-raw"), "no point detail")
    assert cell(browser, SYMBOL, "status") == "HALT"
    assert '"status": "HALT"' in browser.find_element(By.ID, "point-raw").text
    chosen = parse_qs(urlsplit(browser.current_url).query)["at"][0]
    assert story.halted <= datetime.fromisoformat(chosen) < story.resumed
    screenshot(browser, "timeline-point")


def test_timeline_zooms_and_pans(browser: webdriver.Chrome, console: Console) -> None:
    open_view(browser, console, view="timeline", symbol=SYMBOL)

    def window() -> tuple[datetime, datetime]:
        query = parse_qs(urlsplit(browser.current_url).query)
        return datetime.fromisoformat(query["from"][0]), datetime.fromisoformat(query["to"][0])

    browser.find_element(By.CSS_SELECTOR, '[data-zoom="out"]').click()
    wide = window()
    browser.find_element(By.CSS_SELECTOR, '[data-zoom="in"]').click()
    browser.find_element(By.CSS_SELECTOR, '[data-zoom="in"]').click()
    narrow = window()
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3
    charts = browser.find_element(By.ID, "timeline-charts")
    charts.send_keys(Keys.ARROW_LEFT)
    panned = window()
    assert panned[0] < narrow[0]
    # The same span, but for the rounding of each end to the URL's milliseconds.
    assert abs((panned[1] - panned[0]) - (narrow[1] - narrow[0])) <= 2 * MS


def test_exchange_activity_counts_changes_and_coverage(
    browser: webdriver.Chrome, console: Console
) -> None:
    story = console.story
    start = at(story.first_poll - timedelta(seconds=1))
    open_view(browser, console, view="activity", **{"from": start})
    feed = browser.find_element(By.ID, "activity-feed").text
    assert "filters.PRICE_FILTER.tickSize" in feed
    assert "HALT" in feed
    coverage = {
        row.find_element(By.TAG_NAME, "td").text: [
            td.text for td in row.find_elements(By.TAG_NAME, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#coverage tbody tr")
    }
    assert "account" not in coverage
    polls, errors, gaps = coverage["exchange_info"][1:4]
    assert int(polls) >= 6
    assert errors == "0"
    assert int(gaps) >= 1
    summary = browser.find_element(By.ID, "activity-summary").text
    assert "left out" in summary
    assert "MARKET_LOT_SIZE" not in feed
    screenshot(browser, "activity")

    browser.find_element(By.ID, "activity-churn").click()
    browser.find_element(By.CSS_SELECTOR, '#activity-form button[type="submit"]').click()
    rendered(browser)
    assert "churn=on" in browser.current_url
    with_churn = browser.find_element(By.ID, "activity-summary").text
    assert "included" in with_churn
    assert changes_counted(with_churn) == changes_counted(summary) + 1
    churn = browser.find_element(By.ID, "activity-feed").text
    assert f"symbol {CHURNING}" in churn
    assert "filters.MARKET_LOT_SIZE.maxQty" in churn


def test_the_token_adds_the_account(browser: webdriver.Chrome, console: Console) -> None:
    story = console.story
    open_view(browser, console, view="instant", at=at(story.last_poll), symbols=SYMBOL)
    assert not browser.find_element(By.ID, "instant-account-section").is_displayed()
    browser.find_element(By.ID, "token").send_keys(API_TOKEN)
    browser.find_element(By.ID, "token-apply").click()
    rendered(browser)
    assert browser.find_element(By.ID, "account-can-trade").text == "true"
    assert "standard maker" in browser.find_element(By.ID, "instant-account").text
    screenshot(browser, "instant-account")
    browser.execute_script("sessionStorage.clear()")


def test_every_view_asks_only_the_api(
    browser: webdriver.Chrome, console: Console, watched: list[str]
) -> None:
    for view in ("instant", "timeline", "activity"):
        open_view(browser, console, view=view, symbol=SYMBOL, symbols=SYMBOL)
        watched.extend(requested_urls(browser))
    paths = {urlsplit(url).path for url in watched}
    assert {"/ui/", "/ui/console.js", "/v1/symbols", f"/v1/symbols/{SYMBOL}/history"} <= paths
    assert any(path.startswith("/ui/vendor/uplot") for path in paths)


def test_every_view_has_labels_keyboard_focus_and_contrast(
    browser: webdriver.Chrome, console: Console
) -> None:
    story = console.story
    views = {
        "instant": {"at": at(story.halted), "symbols": SYMBOL, "quantity": "0.1", "price": "1"},
        "timeline": {"symbol": SYMBOL},
        "activity": {},
    }
    for view, params in views.items():
        open_view(browser, console, view=view, **params)
        assert browser.execute_script(UNLABELLED_JS) == [], view
        assert browser.execute_script(LOW_CONTRAST_JS) == [], view

    # The keyboard: the first Tab reaches the skip link, Enter moves to the content, and
    # the next Tab lands on a control whose focus is drawn.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    focused.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    browser.switch_to.active_element.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.tag_name in ("input", "select", "button", "a")
    assert focused.value_of_css_property("outline-style") == "solid"


def test_a_futures_contract_has_its_timeline(browser: webdriver.Chrome, console: Console) -> None:
    listed = requests.get(f"{console.url}/v1/symbols", params={"market": "coinm"}, timeout=10)
    contract = listed.json()["symbols"][0]
    open_view(browser, console, view="timeline", market="coinm", symbol=contract["symbol"])
    bands = browser.find_elements(By.CSS_SELECTOR, ".band")
    assert [b.get_attribute("data-status") for b in bands] == [
        contract.get("status") or contract["contract_status"]
    ]
    assert browser.find_elements(
        By.CSS_SELECTOR, '.chart[data-rule="filters.PRICE_FILTER.tickSize"]'
    )
