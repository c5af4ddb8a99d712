"""Aligned text tables: what the read commands print on a terminal (``--json`` for scripts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

MAX_CELL = 60  # a listing's value is the whole symbol: the table shows its start


def cell(value: object) -> str:
    """One value as a table shows it: text as is, null as ``-``, the rest as compact JSON."""
    if value is None:
        text = "-"
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value).decode()
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [list(headers), ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
