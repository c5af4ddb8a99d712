"""The "did you mean" of an unknown name: a typo answered with the name it was close to.

One rule for every name a caller types (query parameters, streams, markets, order types,
symbols, the CLI's commands and options): the closest known name by difflib's ratio, if
it is at least ``CUTOFF``, compared without case (``limit`` is close to ``LIMIT``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's own default: LIMTI/LIMIT and asof/as_of pass, ETHBTC/BTCUSDT does not.
CUTOFF = 0.6


def closest(given: str, known: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The known name closest to ``given``, if one is close enough."""
    by_fold = {name.casefold(): name for name in known}
    found = difflib.get_close_matches(given.casefold(), by_fold, n=1, cutoff=cutoff)
    return by_fold[found[0]] if found else None


def did_you_mean(given: str, known: Iterable[str], cutoff: float = CUTOFF) -> str:
    """`` (did you mean X?)`` to append to a message, or nothing if no name is close."""
    found = closest(given, known, cutoff)
    return f" (did you mean {found}?)" if found is not None else ""
