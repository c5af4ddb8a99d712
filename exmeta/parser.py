"""The `exmeta` command line: its options, and the help (exmeta.help_text) around them.

Usage mistakes are one line and exit 2, like every other error of the command. Each
command's options are declared once, here; the command that runs them is picked by name
in exmeta.cli.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from core.streams import DEFAULT_MARKET, MARKETS, PUBLIC_STREAMS, STREAMS
from core.suggestions import did_you_mean
from exmeta import help_text

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")

CONFIG_HELP = "settings file (default: ./config.toml if present); EXMETA_<SECTION>__<KEY> overrides"
NEW_SOURCE_HELP = (
    "a stream whose history is another source's (scheme://host:port of [binance]"
    " base_url) starts a new history at the configured one, after a gap (README,"
    " Source identity); without it such a poller refuses to start (exit 2)"
)
JSON_HELP = "print the API's JSON instead of a table, for scripts"


class Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, exit 2, like every other error of the command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The options each command takes, its parents' included: for "did you mean".
        self.options = [o for p in kwargs.get("parents", []) for o in getattr(p, "options", [])]
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.options += action.option_strings
        return action

    def error(self, message: str) -> NoReturn:
        # argparse names the choices but not the one meant (before Python 3.14).
        mistyped = _INVALID_CHOICE.search(message)
        if mistyped:
            message += did_you_mean(mistyped[1], re.findall(r"'([^']*)'", mistyped[2]))
        self.exit(2, f"exmeta: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    """Every command, in the order the help lists them."""
    parser = Parser(
        prog="exmeta",
        description=help_text.DESCRIPTION,
        epilog=help_text.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=_named_file, default=None, help=CONFIG_HELP)
    # Accepted after the subcommand too; SUPPRESS keeps it from resetting the global one.
    common = Parser(add_help=False)
    common.add_argument("--config", type=_named_file, default=argparse.SUPPRESS, help=CONFIG_HELP)
    # The market every read command takes, as the API's `market=` does.
    market = Parser(add_help=False)
    market.add_argument(
        "--market",
        default=DEFAULT_MARKET,
        choices=MARKETS,
        help="spot (default), usdm (USD-M futures) or coinm (COIN-M futures)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices
    _command(sub, "migrate", common)
    _poll_options(_command(sub, "poll", common))
    _serve_options(_command(sub, "serve", common))
    _command(sub, "up", common).add_argument(
        "--new-source", action="store_true", help=NEW_SOURCE_HELP
    )
    _operator_options(sub, common)
    _asof_options(_command(sub, "asof", common, market))
    _check_options(_command(sub, "check", common, market))
    _changes_options(_command(sub, "changes", common, market))
    _diff_options(_command(sub, "diff", common, market))
    _export_options(_command(sub, "export", common, market))
    _import_options(_command(sub, "import", common))
    # The sim parses its own options (`exmeta sim --help`); they pass through untouched.
    sim = sub.add_parser("sim", add_help=False, help=help_text.COMMANDS["sim"].summary)
    sim.set_defaults(sim_args=[])
    return parser


def _command(
    sub: argparse._SubParsersAction[Parser],
    name: str,
    *parents: Parser,
) -> argparse.ArgumentParser:
    """A subcommand with its summary, paragraph and example (exmeta.help_text), taking the
    options of ``parents``."""
    text = help_text.COMMANDS[name]
    return sub.add_parser(
        name,
        parents=list(parents),
        help=text.summary,
        description=text.description,
        epilog=text.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _poll_options(poll: argparse.ArgumentParser) -> None:
    poll.add_argument("--replica-id", default=None, help="this replica's id (default host:pid)")
    poll.add_argument("--new-source", action="store_true", help=NEW_SOURCE_HELP)
    poll.add_argument(
        "--supervised",
        action="store_true",
        help="run under `exmeta up`, which announces the stop itself",
    )


def _serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--listen-fd",
        type=int,
        default=None,
        metavar="FD",
        help="serve on this inherited listening socket instead of binding [api] host:port"
        " (how `exmeta up` hands over the port it checked)",
    )


def _operator_options(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    verify = _command(sub, "verify", common)
    verify.add_argument(
        "--repair",
        action="store_true",
        help="first undo observations dated ahead of the database clock (README, Operations)",
    )
    compact = _command(sub, "compact", common)
    compact.add_argument(
        "--older-than-hours",
        dest="hours",
        type=float,
        default=None,
        metavar="H",
        help="fold unchanged polls older than H hours (default: [poller] observation_detail_hours)",
    )
    replicas = _command(sub, "replicas", common)
    replicas.add_argument("--all", action="store_true", help="stopped replicas too")
    replicas.add_argument(
        "--alive",
        metavar="ID",
        default=None,
        type=_replica_id,
        help="exit 0 if replica ID is running (heartbeat within 3 beats), else 1: a health check",
    )


def _asof_options(asof: argparse.ArgumentParser) -> None:
    asof.add_argument(
        "time", metavar="TIME", type=_text, help="RFC 3339 with an offset or Z, or epoch ms"
    )
    asof.add_argument(
        "symbols",
        metavar="SYMBOL",
        nargs="*",
        type=_text,
        help="e.g. BTCUSDT (default: every symbol)",
    )
    asof.add_argument(
        "--json",
        action="store_true",
        help="JSON: per SYMBOL a line of GET /v1/symbols/{symbol}, else GET /v1/symbols",
    )
    what = asof.add_mutually_exclusive_group()
    what.add_argument(
        "--wallet",
        action="store_true",
        help="the names are coins: by which networks each could be deposited and withdrawn"
        " at TIME, with fees and since when (GET /v1/wallet/{coin})",
    )
    what.add_argument(
        "--margin",
        choices=("cross", "isolated"),
        default=None,
        help="the margin pairs of that type at TIME, only those named if any"
        " (GET /v1/margin/pairs)",
    )


def _check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("symbol", type=_text, help="e.g. BTCUSDT")
    check.add_argument("--side", required=True, type=_text, help="BUY or SELL")
    check.add_argument("--type", required=True, type=_text, help="LIMIT, MARKET, LIMIT_MAKER, ...")
    check.add_argument("--quantity", default=None, type=_text, help="the base quantity")
    check.add_argument(
        "--quote-quantity",
        default=None,
        type=_text,
        help="a MARKET order sized in the quote asset (quoteOrderQty), instead of --quantity",
    )
    check.add_argument(
        "--price", default=None, type=_text, help="the limit price (MARKET orders have none)"
    )
    check.add_argument(
        "--reference-price",
        default=None,
        type=_text,
        help="Binance's average price then: checks PERCENT_PRICE* and a MARKET order's notional",
    )
    check.add_argument(
        "--iceberg-quantity",
        default=None,
        type=_text,
        help="an iceberg's visible part: checks ICEBERG_PARTS",
    )
    check.add_argument("--at", default=None, type=_text, help="RFC 3339 or epoch ms (default: now)")
    check.add_argument("--json", action="store_true", help=JSON_HELP)


def _changes_options(changes: argparse.ArgumentParser) -> None:
    changes.add_argument(
        "--from",
        dest="start",
        default=None,
        type=_text,
        help="RFC 3339 or epoch ms (default: --to - 1h)",
    )
    changes.add_argument(
        "--to", default=None, type=_text, help="RFC 3339 or epoch ms (default: now)"
    )
    changes.add_argument("--symbol", default=None, type=_text, help="only this symbol's changes")
    changes.add_argument(
        "--stream",
        default=None,
        choices=STREAMS,
        help="only this stream's changes (account ones need [api] token configured)",
    )
    changes.add_argument(
        "--field",
        action="append",
        default=[],
        type=_text,
        help="only this field or those under it (repeat)",
    )
    changes.add_argument(
        "--exclude-field",
        action="append",
        default=[],
        type=_text,
        help="leave out this field or those under it (repeat)",
    )
    changes.add_argument(
        "--schema",
        action="store_true",
        help="also the changes of the documents' shape (entity schema), like ?schema=true",
    )
    changes.add_argument("--json", action="store_true", help="JSON Lines, one change a line")


def _diff_options(diff: argparse.ArgumentParser) -> None:
    diff.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_text,
        help="RFC 3339 or epoch ms: the earlier state",
    )
    diff.add_argument("--to", default=None, type=_text, help="RFC 3339 or epoch ms (default: now)")
    diff.add_argument("--json", action="store_true", help=JSON_HELP)


def _text(value: str) -> str:
    """An argument a read command puts into a route's URL: a byte that is not UTF-8
    reaches Python as a lone surrogate, which no URL can carry."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{os.fsencode(value)!r} is not UTF-8 text") from None
    return value


_T = TypeVar("_T")


def _named(what: str, convert: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type for a name the user gives: an empty one (``--out "$DIR"`` with DIR
    unset) is refused, saying what to name (``what``), where ``Path("")`` would quietly be
    the working directory and an empty replica ID only look like a dead replica (poll
    never names one "": it takes host:pid then)."""

    def named(value: str) -> _T:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"empty; name {what}")
        return convert(value)

    return named


_named_file = _named("a settings file, e.g. --config ./config.toml", Path)
_replica_id = _named("a replica, as poll --replica-id does", str)
_named_directory = _named("a directory, e.g. --out ./rules", Path)


def _export_options(export: argparse.ArgumentParser) -> None:
    export.add_argument(
        "--format", choices=("parquet", "csv"), default="parquet", help="parquet (default) or csv"
    )
    export.add_argument(
        "--out",
        type=_named_directory,
        required=True,
        metavar="DIR",
        help="the directory to write into",
    )
    export.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="T",
        help="RFC 3339 or epoch ms: versions in force from then on (default: all history)",
    )
    export.add_argument(
        "--to",
        default=None,
        metavar="T",
        help="RFC 3339 or epoch ms: versions in force before then (default: now)",
    )
    export.add_argument(
        "--symbols",
        default=None,
        metavar="S,...",
        help="only these symbols, separated by commas or spaces (default: every one)",
    )


def _import_options(imp: argparse.ArgumentParser) -> None:
    imp.add_argument(
        "paths", metavar="PATH", nargs="*", type=Path, help="JSON files (.gz too) or directories"
    )
    imp.add_argument(
        "--git",
        type=Path,
        default=None,
        metavar="REPO",
        help="instead of PATHs: every commit of this repository (a clone or bare) that"
        " touched --path, each dated by its serverTime, else its committer time",
    )
    imp.add_argument("--path", default=None, metavar="FILE", help="the file in --git's history")
    imp.add_argument(
        "--stream",
        default="exchange_info",
        choices=PUBLIC_STREAMS,
        help="the stream the documents are responses of (default: exchange_info, spot)",
    )
    imp.add_argument(
        "--source",
        default=None,
        metavar="URL",
        help="the base URL the archive was fetched from (default: the stream's configured"
        " [binance] base URL, so that polling continues the imported history)",
    )
    imp.add_argument(
        "--at",
        default=None,
        help="the instant of a single file without serverTime (RFC 3339 or epoch ms)",
    )
    imp.add_argument(
        "--manifest",
        type=Path,
        default=None,
        metavar="FILE",
        help="the instants of files without serverTime: CSV lines path,instant or a JSON"
        " object {path: instant}, paths relative to FILE; its files are imported too",
    )
    imp.add_argument(
        "--dry-run", action="store_true", help="read and check everything, write nothing"
    )
