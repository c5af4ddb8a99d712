"""Since when a network's switch has been in its position: runs of versions, gaps, first seen."""

from datetime import UTC, datetime

from core.history import Since, Version, held_since


def at(hour: int) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC)


def version(start: int, end: int | None, withdraw: bool, fee: str = "1") -> Version:
    return Version(
        {"withdraw_enable": withdraw, "withdraw_fee": fee},
        at(start),
        None if end is None else at(end),
        1,
        None,
        "{}",
    )


def test_a_change_of_another_field_continues_the_run() -> None:
    versions = [version(0, 1, True), version(1, 2, False), version(2, None, False, fee="2")]
    assert held_since(versions, "withdraw_enable") == Since(at(1), first_seen=False)
    assert held_since(versions, "withdraw_fee") == Since(at(2), first_seen=False)


def test_a_run_back_to_the_first_version_is_first_seen() -> None:
    versions = [version(0, 1, True, fee="1"), version(1, None, True, fee="2")]
    assert held_since(versions, "withdraw_enable") == Since(at(0), first_seen=True)


def test_a_gap_in_the_versions_starts_a_new_run() -> None:
    """The network left Binance's answer between 1 and 3: nothing is known of it then."""
    versions = [version(0, 1, True), version(3, None, True)]
    assert held_since(versions, "withdraw_enable") == Since(at(3), first_seen=False)
