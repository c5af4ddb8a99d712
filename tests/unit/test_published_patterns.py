"""The patterns the OpenAPI document publishes for order numbers: whatever matches is
accepted, so a client that checks against the document is never refused."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from api.params import ORDER_NUMBER_PATTERN, parse_order_number


@settings(database=None, max_examples=500, deadline=None)
@given(st.from_regex(ORDER_NUMBER_PATTERN, fullmatch=True))
def test_every_order_number_the_pattern_admits_is_a_positive_decimal(text: str) -> None:
    assert parse_order_number(text) > 0


@settings(database=None, max_examples=500, deadline=None)
@given(
    st.decimals(
        min_value=Decimal("0.000000000000000001"),
        max_value=Decimal("999999999999.999999999999999999"),
        places=18,
    )
)
def test_every_positive_decimal_within_bounds_matches_in_plain_notation(value: Decimal) -> None:
    text = f"{value:f}".rstrip("0").rstrip(".")
    assert parse_order_number(text) == value
