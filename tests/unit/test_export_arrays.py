"""The export's array helpers agree with the numpy functions they stand in for."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core.export import _distinct


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)))
def test_distinct_is_numpys_unique(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    assert _distinct(array).tolist() == np.unique(array).tolist()
