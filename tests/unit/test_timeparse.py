import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.timeparse import (
    INSTANT_PATTERN,
    TimeParseError,
    format_instant,
    parse_instant,
    window_before,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-28T01:05:44.331Z", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("2022-11-28T03:05:44.331+02:00", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("2022-11-28t01:05:44z", datetime(2022, 11, 28, 1, 5, 44, tzinfo=UTC)),
        ("1669597544331", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("100000000000", datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # 12 digits: the first
        ("9999999999999", datetime(2286, 11, 20, 17, 46, 39, 999000, tzinfo=UTC)),
        ("2022-11-28T01:05:44.123456789Z", datetime(2022, 11, 28, 1, 5, 44, 123456, tzinfo=UTC)),
        ("2022-11-28 01:05:44Z", datetime(2022, 11, 28, 1, 5, 44, tzinfo=UTC)),
        ("2000-02-29T00:00:00Z", datetime(2000, 2, 29, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59+01:00", datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)),
    ],
)
def test_accepted_instants(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2022-11-28T01:05:44",  # naive
        "2022-11-28",
        "now",
        "infinity",
        "-infinity",
        "10000-01-01T00:00:00Z",
        "2022-01-01T00:00:00+25:00",
        "2022-01-01T00:00:00+05:60",
        "2022-02-30T00:00:00Z",
        "9999999999999999",
        "0001-01-01T00:00:00+01:00",
        "1.5",
        "",
        "x" * 10_000,
        "'; DROP TABLE symbol_versions; --",
        "\uff11\uff12\uff13",  # fullwidth digits: int() reads them as 123
        "\u0661\u0662\u0663",  # Arabic-Indic digits, likewise
        "2022-11-28T01:05:44.\uff13Z",
        "\uff12022-11-28T01:05:44Z",
        "1_000",  # int() reads it as 1000
        " 1669597544331",
        "1669597544331\n",
        "+1669597544331",
        "12345678901234",  # 14 digits: past 2286
        "0",  # January 1970 as milliseconds: not an instant anyone means
        "-1000",
        "99999999999",  # 11 digits
        "012345678901",  # a leading zero
        "1796275095",  # epoch seconds
        "1900-02-29T00:00:00Z",  # divisible by 100, not by 400: no leap day
        "2023-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z",
        "2023-01-01T24:00:00Z",
        "2023-01-01T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",  # past datetime's range in UTC
        "2023-01-01T00:00:00.Z",
        "2023-01-01T00:00:00.1234567890Z",
    ],
)
def test_rejected_instants(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_instant(text)


@pytest.mark.parametrize("seconds", ["1796275095", "1700000000", "999999999", "9999999999"])
def test_epoch_seconds_are_refused_with_a_message_that_says_so(seconds: str) -> None:
    with pytest.raises(TimeParseError) as refused:
        parse_instant(seconds)
    message = str(refused.value)
    assert "looks like epoch seconds" in message
    assert f"{seconds}000" in message
    assert format_instant(parse_instant(f"{seconds}000")) in message


def test_an_offset_whose_plus_arrived_as_a_space_is_refused_with_the_encoding() -> None:
    with pytest.raises(TimeParseError) as refused:
        parse_instant("2026-11-24T11:00:00 01:00")  # "+01:00" in a URL, unencoded
    assert "%2B" in str(refused.value)
    assert parse_instant("2026-11-24T11:00:00+01:00") == datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-11-24T11:00:00", "2026-11-24 11:00", "1.5", "-1000"])
def test_other_refusals_do_not_mention_the_encoding(text: str) -> None:
    with pytest.raises(TimeParseError) as refused:
        parse_instant(text)
    assert "%2B" not in str(refused.value)
    assert "epoch seconds" not in str(refused.value)


def test_format_is_utc_with_milliseconds() -> None:
    value = datetime(2022, 11, 28, 1, 5, 44, 331999, tzinfo=UTC)
    assert format_instant(value) == "2022-11-28T01:05:44.331Z"
    assert format_instant(None) is None


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(9999, 12, 31, tzinfo=UTC), "9999-12-31T00:00:00.000Z"),
    ],
)
def test_format_pads_every_year_to_four_digits(instant: datetime, text: str) -> None:
    assert format_instant(instant) == text
    assert parse_instant(text) == instant.replace(microsecond=instant.microsecond // 1000 * 1000)


@settings(database=None, max_examples=500, deadline=None)
@given(st.from_regex(INSTANT_PATTERN, fullmatch=True))
def test_every_text_the_published_pattern_admits_is_accepted(text: str) -> None:
    """The OpenAPI document publishes INSTANT_PATTERN: a client that checks against it is
    never refused (and the parser refuses whatever the pattern does not match)."""
    assert parse_instant(text).tzinfo is UTC


@settings(database=None, max_examples=500, deadline=None)
@given(
    # hypothesis takes naive bounds; the offset is applied below
    st.datetimes(min_value=datetime(2, 1, 2), max_value=datetime(9998, 12, 30)),  # noqa: DTZ001
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
def test_every_rfc3339_instant_in_range_matches_the_pattern(
    local: datetime, offset_minutes: int
) -> None:
    aware = local.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    text = aware.isoformat()
    assert re.fullmatch(INSTANT_PATTERN, text)
    assert parse_instant(text) == aware


def test_a_window_before_the_first_hour_of_year_1_starts_at_year_1() -> None:
    hour = timedelta(hours=1)
    early = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
    late = datetime(2024, 5, 1, 12, tzinfo=UTC)

    assert window_before(early, hour) == datetime(1, 1, 1, tzinfo=UTC)
    assert window_before(late, hour) == late - hour
