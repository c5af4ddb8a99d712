from datetime import UTC, datetime

import pytest

from core.timeparse import TimeParseError, format_instant, parse_instant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-28T01:05:44.331Z", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("2022-11-28T03:05:44.331+02:00", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("2022-11-28t01:05:44z", datetime(2022, 11, 28, 1, 5, 44, tzinfo=UTC)),
        ("1669597544331", datetime(2022, 11, 28, 1, 5, 44, 331000, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2022-11-28T01:05:44.123456789Z", datetime(2022, 11, 28, 1, 5, 44, 123456, tzinfo=UTC)),
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
    ],
)
def test_rejected_instants(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_instant(text)


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
