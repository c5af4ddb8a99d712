"""The wording of a poll's log line (pure)."""

from datetime import UTC, datetime, timedelta

from core.changes import LISTED, Change
from poller.poll_log import PollReport, PollSummary, describe_changes, describe_versions

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def change(key: str, field: str, old: object, new: object) -> Change:
    return Change(AT, "exchange_info", "symbol", key, field, old, new, 1, None)


def test_one_change_is_named_with_its_values() -> None:
    assert describe_changes([change("ETHBTC", "status", "TRADING", "HALT")], complete=True) == (
        "ETHBTC status TRADING→HALT"
    )


def test_absent_values_and_long_ones_read_as_such() -> None:
    changes = [
        change("BTCUSDT", "filters.NOTIONAL.minNotional", None, "5.00000000"),
        change("BTCUSDT", "permissionSets", [["SPOT"] * 10], [["SPOT", "MARGIN"] * 10]),
        change("NEWUSDT", LISTED, None, {"symbol": "NEWUSDT"}),
        change("OLDUSDT", LISTED, {"symbol": "OLDUSDT"}, None),
    ]

    assert describe_changes(changes, complete=True) == (
        "4 changes to 3 symbols: BTCUSDT filters.NOTIONAL.minNotional (none)→5.00000000;"
        ' BTCUSDT permissionSets [["SPOT","SPOT","SPOT","SPOT","SPOT","S…'
        '→[["SPOT","MARGIN","SPOT","MARGIN","SPOT…; NEWUSDT listed; OLDUSDT delisted'
    )


def test_many_changes_are_counted_and_the_first_five_named() -> None:
    changes = [change(f"S{i:02}USDT", "status", "TRADING", "BREAK") for i in range(7)]

    assert describe_changes(changes, complete=True).endswith(
        "S04USDT status TRADING→BREAK; and 2 more"
    )
    assert describe_changes(changes, complete=False).startswith(
        "over 7 changes, to 7 symbols and more: S00USDT status TRADING→BREAK;"
    )


def test_streams_outside_the_feed_are_told_by_version_counts() -> None:
    assert describe_versions({"usdm_symbol_versions": 2}, {"usdm_symbol_versions": 1}) == (
        "2 usdm_symbol_versions opened, 1 usdm_symbol_versions closed"
    )


def test_a_poll_that_sent_nothing_says_so_and_names_no_status() -> None:
    report = PollReport(
        "exchange_info",
        "error",
        0,
        None,
        None,
        0,
        "https://api.binance.com:443",
        "rate_limited_pause",
        None,
        "paused after HTTP 429; 12.0 s left, no request sent",
    )

    assert report.line() == (
        "exchange_info poll error in 0 ms (no request sent): rate_limited_pause:"
        " paused after HTTP 429; 12.0 s left, no request sent"
    )


def test_the_summary_comes_once_a_minute_with_every_outcome_counted() -> None:
    summary = PollSummary("system_status")
    lines = [
        summary.add(outcome, 21, AT + timedelta(seconds=s))
        for s, outcome in [(0, "unchanged"), (30, "error"), (59, "unchanged"), (61, "unchanged")]
    ]

    assert lines == [
        None,
        None,
        None,
        "system_status: 4 polls in the last 61 s: 1 error, 3 unchanged; weight used this minute 21",
    ]
    assert summary.add("unchanged", None, AT + timedelta(seconds=62)) is None
