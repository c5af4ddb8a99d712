import pytest

from core.suggestions import closest, did_you_mean


@pytest.mark.parametrize(
    ("given", "known", "meant"),
    [
        ("LIMTI", ["LIMIT", "MARKET", "LIMIT_MAKER"], "LIMIT"),
        ("limit", ["LIMIT", "MARKET"], "LIMIT"),  # case does not count
        ("asof", ["as_of", "market"], "as_of"),
        ("spto", ["spot", "usdm", "coinm"], "spot"),
        ("xyz", ["spot", "usdm", "coinm"], None),
        ("anything", [], None),
    ],
)
def test_the_closest_known_name_if_close_enough(
    given: str, known: list[str], meant: str | None
) -> None:
    assert closest(given, known) == meant


def test_the_hint_is_empty_when_nothing_is_close() -> None:
    assert did_you_mean("LIMTI", ["LIMIT"]) == " (did you mean LIMIT?)"
    assert did_you_mean("ICEBERG", ["LIMIT", "MARKET"]) == ""


def test_a_stricter_cutoff_drops_a_looser_match() -> None:
    assert closest("ETHBTC", ["ETHUSDT"]) == "ETHUSDT"
    assert closest("ETHBTC", ["ETHUSDT"], cutoff=0.8) is None
