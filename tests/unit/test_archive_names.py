"""The instants `exmeta import` reads from a file's name (README, Importing history)."""

from datetime import UTC, datetime

import pytest

from poller.archive import instants_in_name


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "instants"),
    [
        ("2024-03-01.json", [utc(2024, 3, 1)]),
        ("exchangeInfo_20240301.json.gz", [utc(2024, 3, 1)]),
        ("2022-11-29_2124.json", [utc(2022, 11, 29)]),  # _2124 is a symbol count, not 21:24
        ("2024-03-01T12:30.json", [utc(2024, 3, 1, 12, 30)]),
        ("2024-03-01T12-30-15Z.json", [utc(2024, 3, 1, 12, 30, 15)]),
        ("20240301T1230.json", [utc(2024, 3, 1, 12, 30)]),
        ("20240301T123015Z.json", [utc(2024, 3, 1, 12, 30, 15)]),
        ("spot_20240301_123015.json", [utc(2024, 3, 1, 12, 30, 15)]),
        ("spot_2024-03-01_12-30-15.json", [utc(2024, 3, 1, 12, 30, 15)]),
        ("2024-03-01T12:00:00+02:00.json", [utc(2024, 3, 1, 10)]),
        ("2024-03-01T23:30:00-0130.json", [utc(2024, 3, 2, 1)]),
        ("exchangeInfo-1669684071044.json", [datetime.fromtimestamp(1669684071.044, UTC)]),
        ("2024-03-01_2024-03-02.json", [utc(2024, 3, 1), utc(2024, 3, 2)]),
        ("2024-03-01_again_2024-03-01.json", [utc(2024, 3, 1)]),  # one instant, twice
        ("snapshot.json", []),
        ("2024-13-01.json", []),  # no month 13
        ("2024-03-01T25:00.json", []),  # no hour 25
        ("2024-03-01T12:00+24:00.json", []),  # no such offset
        ("2024-0301.json", []),  # one dash is no date
        ("id_120240301.json", []),  # digits run on before it
        ("16696840710445.json", []),  # 14 digits are not epoch milliseconds
    ],
)
def test_the_documented_forms_and_only_those_are_read(name: str, instants: list[datetime]) -> None:
    assert instants_in_name(name) == instants
