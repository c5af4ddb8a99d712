"""The ``exmeta`` command: parse, wire, delegate (DESIGN §8).

The options are declared in exmeta.parser; each command lives in the module of its
concern (exmeta.operations, .poll, .serve, .up, .reads), on the database of
exmeta.database. Every command loads settings the same way (exmeta.settings); a
configuration or start-up problem is one line on stderr and a non-zero exit, never a
traceback (exmeta.errors).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from core.suggestions import did_you_mean
from exmeta.errors import CliError
from exmeta.parser import build_parser


def sim(args: argparse.Namespace) -> int:
    """The Binance simulator, with its own options (binance_sim.cli)."""
    from binance_sim.cli import main as sim_main

    return sim_main(args.sim_args, prog="exmeta sim")


# Each command's function as "module:name", imported only when that command runs: a
# long-running `exmeta poll` then never loads Flask, the API's routes, rich or the
# export's writers (~20 MB of its resident memory, P9).
COMMANDS: dict[str, str] = {
    "migrate": "exmeta.operations:migrate_schema",
    "poll": "exmeta.poll:poll",
    "serve": "exmeta.serve:serve",
    "up": "exmeta.up:up",
    "verify": "exmeta.operations:verify",
    "compact": "exmeta.operations:compact",
    "replicas": "exmeta.operations:replicas",
    "asof": "exmeta.reads:asof",
    "check": "exmeta.reads:check",
    "changes": "exmeta.reads:changes",
    "diff": "exmeta.reads:diff",
    "export": "exmeta.export:export_history",
    "import": "exmeta.importing:import_archive",
    "sim": "exmeta.cli:sim",
}


def command(name: str) -> Callable[[argparse.Namespace], int]:
    module, function = COMMANDS[name].split(":")
    run: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return run


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
        return int(command(args.command)(args))
    except CliError as exc:
        print(f"exmeta: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
