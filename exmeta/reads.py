"""The read commands: `asof`, `check`, `diff` and `changes`, each a client of the API's
routes run in process (exmeta.api_client), printing a table or, with ``--json``, what
the route answers."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from core import changes as feed
from core.streams import PUBLIC_STREAMS, STREAMS, feed_streams, stream
from core.timeparse import TimeParseError, parse_instant
from exmeta.api_client import api_client
from exmeta.database import api_database, api_engine
from exmeta.errors import CliError
from exmeta.settings import configured
from exmeta.table import table

CHANGES_PAGE = 1000
DEFAULT_WINDOW = timedelta(hours=1)


def _instant(value: str, name: str) -> datetime:
    try:
        return parse_instant(value)
    except TimeParseError as exc:
        raise CliError(f"{name}: {exc}", 2) from None


def changes(args: argparse.Namespace) -> int:
    """Print the change feed, every page: a table, or with ``--json`` JSON Lines of the
    objects /v1/changes answers.

    The objects are built by the API's own renderer from the same core query, so the
    command and the route cannot disagree; each page is read in one snapshot and the
    feed's cursor makes the pages add up to the whole list, whatever commits meanwhile.
    """
    from api import render
    from api.params import binance_spelling

    settings = configured(args)
    # As for the API's caller with the token: the operator holds the configuration.
    readable = STREAMS if settings.api.token else PUBLIC_STREAMS
    if args.stream is not None and args.stream not in readable:
        raise CliError(f"--stream {args.stream} needs [api] token (EXMETA_API__TOKEN)", 2)
    if args.stream is not None and stream(args.stream).market != args.market:
        raise CliError(
            f"--stream {args.stream} is of market {stream(args.stream).market}, not"
            f" {args.market} (--market)",
            2,
        )
    reported = feed_streams(args.market, private=bool(settings.api.token))
    streams = reported if args.stream is None else (args.stream,)
    end = _instant(args.to, "--to") if args.to else datetime.now(UTC)
    start = _instant(args.start, "--from") if args.start else end - DEFAULT_WINDOW
    if start >= end:
        raise CliError("--from must be before --to (--to defaults to now)", 2)
    cursor: str | None = None
    rows: list[list[object]] = []
    with (
        api_database(settings) as url,
        api_engine(settings, url, "changes") as engine,
    ):
        while True:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="REPEATABLE READ")
                page = feed.changes(
                    conn,
                    start,
                    end,
                    streams=streams,
                    symbol=args.symbol and binance_spelling(args.symbol),
                    fields=args.field,
                    exclude_fields=args.exclude_field,
                    schema=args.schema,
                    limit=CHANGES_PAGE,
                    cursor=cursor,
                )
            for change in render.change_feed(page, start, end, streams)["changes"]:
                if args.json:
                    sys.stdout.write(orjson.dumps(change).decode() + "\n")
                else:
                    rows.append([change[h] for h in CHANGE_HEADERS])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    if not args.json:
        print(table(CHANGE_HEADERS, rows) if rows else "no change in the window")
    return 0


CHANGE_HEADERS = ("changed_at", "entity", "key", "field", "old", "new")


def _evidence_line(label: str, found: dict[str, Any]) -> str:
    gap = f", in a gap since {found['gap_from']}" if found["gap"] else ""
    return (
        f"{label}: last poll before {found['observed_before']},"
        f" first after {found['observed_after'] or '-'}{gap}"
    )


def _symbol_row(rules: dict[str, Any]) -> list[object]:
    filters = rules["filters"]
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    notional = filters.get("NOTIONAL", filters.get("MIN_NOTIONAL", {}))
    return [
        rules["symbol"],
        rules["status"],
        price.get("tick_size"),
        price.get("min_price"),
        price.get("max_price"),
        lot.get("step_size"),
        lot.get("min_qty"),
        lot.get("max_qty"),
        notional.get("min_notional", notional.get("notional")),  # futures: notional
        rules["valid_from"],
        rules["valid_to"],
    ]


SYMBOL_HEADERS = (
    "symbol",
    "status",
    "tick_size",
    "min_price",
    "max_price",
    "step_size",
    "min_qty",
    "max_qty",
    "min_notional",
    "valid_from",
    "valid_to",
)


def asof(args: argparse.Namespace) -> int:
    """The symbols' rules at an instant (every symbol if none is named), as a table.

    ``--json``: with symbols, one line per symbol, the JSON GET /v1/symbols/{symbol}
    answers; without, the JSON of GET /v1/symbols.
    """
    _instant(args.time, "TIME")  # refused here, in the CLI's own words
    params = {"as_of": args.time, "market": args.market}
    with api_client(args) as get:
        if args.symbols:
            bodies = [get(f"/v1/symbols/{quote(s, safe='')}", params) for s in args.symbols]
        else:
            bodies = [get("/v1/symbols", params)]
    if args.json:
        print("\n".join(bodies))
        return 0
    answers = [orjson.loads(b) for b in bodies]
    rules = answers[0]["symbols"] if not args.symbols else answers
    print(f"as of {answers[0]['as_of']}: {len(rules)} symbol(s)")
    print(_evidence_line("evidence", answers[0]["evidence"]))
    print(table(SYMBOL_HEADERS, [_symbol_row(r) for r in rules]))
    return 0


def check(args: argparse.Namespace) -> int:
    """GET /v1/symbols/{symbol}/check's answer; exit 0 if accepted, 1 if not."""
    params = {"side": args.side, "type": args.type, "market": args.market}
    if args.at is not None:
        _instant(args.at, "--at")
        params["as_of"] = args.at
    for name in ("quantity", "quote_quantity", "price", "reference_price", "iceberg_quantity"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    with api_client(args) as get:
        body = get(f"/v1/symbols/{quote(args.symbol, safe='')}/check", params)
    answer = orjson.loads(body)
    if args.json:
        print(body)
    else:
        order = answer["order"]
        print(
            f"{answer['symbol']} as of {answer['as_of']}: {order['side']} {order['type']}"
            + (f" {order['quantity']}" if order["quantity"] else "")
            + (f" for {order['quote_quantity']} quote" if order["quote_quantity"] else "")
            + (f" at {order['price']}" if order["price"] else "")
        )
        print(_evidence_line("evidence", answer["evidence"]))
        verdict = "ACCEPTED" if answer["accepted"] else "REJECTED"
        unchecked = f", {len(answer['not_checked'])} rule(s) not checked" * bool(
            answer["not_checked"]
        )
        print(f"{verdict}: {len(answer['violations'])} rule(s) broken{unchecked}")
        rows = [["broken", v["rule"], v["message"]] for v in answer["violations"]]
        rows += [["not checked", u["rule"], u["reason"]] for u in answer["not_checked"]]
        if rows:
            print(table(("verdict", "rule", "why"), rows))
        nearest = answer["nearest"]
        print(
            f"nearest valid: price {nearest['price'] or '-'}, quantity {nearest['quantity'] or '-'}"
        )
    return 0 if answer["accepted"] else 1


def diff(args: argparse.Namespace) -> int:
    """How the state at --to differs from the state at --from, like GET /v1/diff."""
    _instant(args.start, "--from")
    params = {"from": args.start, "market": args.market}
    if args.to is not None:
        _instant(args.to, "--to")
        params["to"] = args.to
    with api_client(args) as get:
        body = get("/v1/diff", params)
    if args.json:
        print(body)
        return 0
    answer = orjson.loads(body)
    print(f"from {answer['from']} to {answer['to']}")
    print(_evidence_line("evidence at from", answer["evidence"]["from"]))
    print(_evidence_line("evidence at to", answer["evidence"]["to"]))
    rows: list[list[object]] = []
    for entity, found in answer.items():
        if not isinstance(found, dict) or "changed" not in found:
            continue  # from, to, evidence
        rows += [[entity, "added", key, "-", None, None] for key in found["added"]]
        rows += [[entity, "removed", key, "-", None, None] for key in found["removed"]]
        rows += [
            [entity, "changed", c["key"], f["field"], f["old"], f["new"]]
            for c in found["changed"]
            for f in c["changes"]
        ]
    if not rows:
        print("no difference")
        return 0
    print(table(("entity", "change", "key", "field", "old", "new"), rows))
    return 0
