"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS) for the rules the OpenAPI
document cannot state, each a 400 by design and tested in tests/integration:

- ``from`` before ``to`` compares two parameters (and ``to`` defaults to now), which no
  JSON Schema keyword does;
- ``next`` is an opaque token the change feed hands out: a made-up one is
  ``invalid_cursor``.

Only the cases schemathesis generates as valid ones are filtered; without this, the check
"valid data is accepted" would report each rule itself as a failure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode

from core.timeparse import TimeParseError, parse_instant

# Routes whose window ends at now when `to` is absent; history's stays open instead.
ENDS_NOW = ("/v1/changes", "/v1/observations", "/v1/diff")


def _instant(query: dict[str, Any], name: str) -> datetime | None:
    value = query.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except TimeParseError:
        return None


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return True
    query = case.query or {}
    if "next" in query:
        return False
    start = _instant(query, "from")
    end = _instant(query, "to")
    if end is None and "to" not in query and case.path in ENDS_NOW:
        end = datetime.now(UTC)
    return start is None or end is None or start < end
