"""The read commands: `asof`, `check`, `diff` and `changes`, each a client of the API's
routes run in process (exmeta.api_client), printing a table or, with ``--json``, what
the route answers."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from api.params import binance_spelling
from core.clock import utc_now
from core.streams import PRIVATE_STREAMS
from core.timeparse import TimeParseError, format_instant, parse_instant, window_before
from exmeta.api_client import api_client
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


def _segment(name: str, what: str) -> str:
    """``name`` as one segment of a route's path. The routes' own check (1 to 64
    characters) never sees an empty one, and the app decodes "%2F" back into "/": a name
    holding one would ask another route (``BTCUSDT/history``) or none."""
    if not name:
        raise CliError(f"{what} '' is empty", 2)
    if "/" in name:
        raise CliError(f"{what} {name!r} holds '/', which no Binance name does", 2)
    return quote(name, safe="")


def changes(args: argparse.Namespace) -> int:
    """Print the change feed of GET /v1/changes, every page: a table, or with ``--json``
    JSON Lines of the change objects it answers.

    The window is fixed before the first page (``--to`` defaults to now once, not per
    page), and the route's ``next`` cursor makes the pages add up to the whole list,
    whatever commits meanwhile.
    """
    # "is not None": an empty --to ("$TO" with TO unset) is no instant, not now.
    end = _instant(args.to, "--to") if args.to is not None else utc_now()
    start = (
        _instant(args.start, "--from")
        if args.start is not None
        else window_before(end, DEFAULT_WINDOW)
    )
    if start >= end:
        raise CliError("--from must be before --to (--to defaults to now)", 2)
    settings = configured(args)
    # As for the API's caller with the token: the operator holds the configuration.
    if args.stream in PRIVATE_STREAMS and not settings.api.token:
        raise CliError(f"--stream {args.stream} needs [api] token (EXMETA_API__TOKEN)", 2)
    # The window as typed (the route reads it as the CLI did), and now fixed once.
    query = [("to", format_instant(end) if args.to is None else args.to), ("market", args.market)]
    query += [("from", args.start)] * (args.start is not None)
    query += [("limit", str(CHANGES_PAGE))]
    query += [("stream", args.stream)] * (args.stream is not None)
    query += [("symbol", args.symbol)] * (args.symbol is not None)
    query += [("field", f) for f in args.field]
    query += [("exclude_field", f) for f in args.exclude_field]
    query += [("schema", "true")] * args.schema
    rows: list[list[object]] = []
    with api_client(settings) as get:
        cursor: list[tuple[str, str]] = []
        while True:
            page = orjson.loads(get("/v1/changes", query + cursor))
            for change in page["changes"]:
                if args.json:
                    sys.stdout.write(orjson.dumps(change).decode() + "\n")
                else:
                    rows.append([change[h] for h in CHANGE_HEADERS])
            if page["next"] is None:
                break
            cursor = [("next", page["next"])]
    if not args.json:
        print(table(CHANGE_HEADERS, rows) if rows else "no change in the window")
    return 0


CHANGE_HEADERS = ("changed_at", "entity", "key", "field", "old", "new")


def _evidence_line(label: str, found: dict[str, Any]) -> str:
    gap = f", in a gap since {found['gap_from']}" if found["gap"] else ""
    return (
        f"{label}: last {'imported' if found.get('imported') else 'poll'} before"
        f" {found['observed_before']},"
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
    if args.wallet or args.margin:
        return _spot_metadata_as_of(args)
    params = {"as_of": args.time, "market": args.market}
    paths = [f"/v1/symbols/{_segment(s, 'SYMBOL')}" for s in args.symbols]
    with api_client(configured(args)) as get:
        if args.symbols:
            bodies = [get(path, params) for path in paths]
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


def _spot_metadata_as_of(args: argparse.Namespace) -> int:
    """``asof --wallet COIN...`` or ``asof --margin TYPE [SYMBOL...]``: the wallet's or the
    margin pairs' answer at TIME, as the API gives it (spot's, whatever --market says)."""
    if args.market != "spot":
        raise CliError("--wallet and --margin are spot's: leave out --market", 2)
    if args.wallet and not args.symbols:
        raise CliError("--wallet needs at least one COIN, e.g. exmeta asof TIME USDT --wallet", 2)
    paths = [f"/v1/wallet/{_segment(c, 'COIN')}" for c in args.symbols if args.wallet]
    with api_client(configured(args)) as get:
        if args.wallet:
            bodies = [get(path, {"as_of": args.time}) for path in paths]
        else:
            bodies = [get("/v1/margin/pairs", {"as_of": args.time, "type": args.margin})]
    answers = [orjson.loads(b) for b in bodies]
    if args.margin and args.symbols:
        named = {binance_spelling(s) for s in args.symbols}
        answers[0]["pairs"] = [p for p in answers[0]["pairs"] if p["symbol"] in named]
    if args.json:
        print("\n".join(orjson.dumps(a).decode() for a in answers))
        return 0
    for answer in answers:
        print(_wallet_table(answer) if args.wallet else _margin_table(answer))
    return 0


def _wallet_table(answer: dict[str, Any]) -> str:
    head = (
        f"{answer['coin']} as of {answer['as_of']}: deposit by"
        f" {', '.join(answer['deposit_networks']) or 'no network'}, withdraw by"
        f" {', '.join(answer['withdraw_networks']) or 'no network'}"
    )
    rows = [
        [
            n["network"],
            _switch(n["deposit"]),
            _switch(n["withdraw"]),
            n["withdraw_fee"],
            n["withdraw_min"],
            n["busy"],
        ]
        for n in answer["networks"]
    ]
    headers = ("network", "deposit", "withdraw", "withdraw_fee", "withdraw_min", "busy")
    evidence = _evidence_line("evidence", answer["evidence"])
    return f"{head}\n{evidence}\n{table(headers, rows)}"


def _switch(switch: dict[str, Any]) -> str:
    """``on since T`` / ``off since T: message``."""
    state = "on" if switch["enabled"] else "off"
    message = f": {switch['message']}" if switch["message"] else ""
    return f"{state} since {switch['since']}{message}"


def _margin_table(answer: dict[str, Any]) -> str:
    head = f"{answer['type']} margin pairs as of {answer['as_of']}: {len(answer['pairs'])}"
    headers = ("symbol", "margin", "buy", "sell", "delist_time", "valid_from")
    rows = [
        [
            p["symbol"],
            p["is_margin_trade"],
            p["is_buy_allowed"],
            p["is_sell_allowed"],
            p["delist_time"],
            p["valid_from"],
        ]
        for p in answer["pairs"]
    ]
    evidence = _evidence_line("evidence", answer["evidence"])
    return f"{head}\n{evidence}\n{table(headers, rows)}"


def check(args: argparse.Namespace) -> int:
    """GET /v1/symbols/{symbol}/check's answer; exit 0 if accepted, 1 if not."""
    params = {"side": args.side, "type": args.type, "market": args.market}
    if args.at is not None:
        _instant(args.at, "--at")
        params["as_of"] = args.at
    for name in ("quantity", "quote_quantity", "price", "reference_price", "iceberg_quantity"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    path = f"/v1/symbols/{_segment(args.symbol, 'SYMBOL')}/check"
    with api_client(configured(args)) as get:
        body = get(path, params)
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
    with api_client(configured(args)) as get:
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
