"""The ``exmeta`` command: parse, wire, delegate (DESIGN §8).

The options are declared in exmeta.parser; each command lives in the module of its
concern (exmeta.operations, .poll, .serve, .up, .reads), on the database of
exmeta.database. Every command loads settings the same way (exmeta.settings); a
configuration or start-up problem is one line on stderr and a non-zero exit, never a
traceback (exmeta.errors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from core.suggestions import did_you_mean
from exmeta import operations, reads
from exmeta.errors import CliError
from exmeta.export import export_history
from exmeta.importing import import_archive
from exmeta.parser import build_parser
from exmeta.poll import poll
from exmeta.serve import serve
from exmeta.up import up


def sim(args: argparse.Namespace) -> int:
    """The Binance simulator, with its own options (binance_sim.cli)."""
    from binance_sim.cli import main as sim_main

    return sim_main(args.sim_args, prog="exmeta sim")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "migrate": operations.migrate_schema,
    "poll": poll,
    "serve": serve,
    "up": up,
    "verify": operations.verify,
    "compact": operations.compact,
    "replicas": operations.replicas,
    "asof": reads.asof,
    "check": reads.check,
    "changes": reads.changes,
    "diff": reads.diff,
    "export": export_history,
    "import": import_archive,
    "sim": sim,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point: the exit status of the command ``argv`` names."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sim":
        args.sim_args = extra
    elif extra:
        options = parser.commands[args.command].options
        hint = did_you_mean(extra[0], options) if extra[0].startswith("-") else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    try:
        return int(COMMANDS[args.command](args))
    except CliError as exc:
        print(f"exmeta: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
