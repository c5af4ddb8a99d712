"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS) for the rules the OpenAPI
document cannot state, each a 400 by design and tested in tests/integration:

- ``from`` before ``to`` compares two parameters (and ``to`` defaults to now), which no
  JSON Schema keyword does;
- ``next`` is an opaque token the change feed hands out: a made-up one is
  ``invalid_cursor``;
- the change feed's ``stream`` must be of its ``market`` (``market=spot`` with
  ``stream=usdm_exchange_info`` asks for two things at once).

Only the cases schemathesis generates as valid ones are filtered; without this, the check
"valid data is accepted" would report each rule itself as a failure. And, in any mode, a
request line longer than gunicorn's limit is a 414 by design (api.server), whatever its
parameters: schemathesis expects a 400 of an invalid one, and a 2xx of a valid one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import schemathesis
from schemathesis.generation.modes import GenerationMode

from core.streams import STREAMS, stream
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


# gunicorn's limit_request_line, less the method, the version and the path's own bytes.
MAX_QUERY = 3500


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    query = case.query or {}
    if len(urlencode(query, doseq=True)) > MAX_QUERY:
        return False
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return True
    if "next" in query:
        return False
    named = query.get("stream")
    market = query.get("market")
    if named in STREAMS and isinstance(market, str) and stream(named).market != market:
        return False
    start = _instant(query, "from")
    end = _instant(query, "to")
    if end is None and "to" not in query and case.path in ENDS_NOW:
        end = datetime.now(UTC)
    return start is None or end is None or start < end
