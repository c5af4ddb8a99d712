"""`exmeta import`: archived responses into a stream's history (poller.archive).

The documents are read and checked against the history before anything is written, so
a conflict is one line and exit 2 with nothing changed; then each is written through the
poller's writer under a progress bar, and one summary line says what the import did.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from rich.console import Console
from rich.progress import track

from core.clock import Clock, utc_now
from core.config import base_url
from core.sources import SourceError, source_of
from core.streams import stream as declared_stream
from core.timeparse import TimeParseError, parse_instant
from exmeta.database import database, engine
from exmeta.errors import CliError
from exmeta.settings import configured
from poller.archive import (
    ArchiveError,
    Document,
    Summary,
    git_documents,
    is_valid,
    plan_import,
    read_documents,
    read_manifest,
    refuse_future,
    write_documents,
)
from poller.job import resolve_parser

_T = TypeVar("_T")


def import_archive(args: argparse.Namespace, clock: Clock = utc_now) -> int:
    """Import the documents of ``args.paths`` into ``args.stream``; exit 2 on a conflict,
    130 when interrupted (Ctrl-C), saying what was written by then."""
    try:
        return _import_archive(args, clock)
    except KeyboardInterrupt:
        # Only while the archive is read, dated or planned: the writing handles its own.
        print("exmeta: interrupted: nothing written", file=sys.stderr)
        return 130


def _import_archive(args: argparse.Namespace, clock: Clock) -> int:
    settings = configured(args)
    console = Console(stderr=True)
    try:
        at = parse_instant(args.at) if args.at is not None else None
        source = source_of(args.source or base_url(settings, args.stream))
        documents = _documents(args, at, console)
        refuse_future(documents, clock())
    except TimeParseError as exc:
        raise CliError(f"--at: {exc}", 2) from None
    except SourceError as exc:
        raise CliError(f"--source {exc}", 2) from None
    except ArchiveError as exc:
        raise CliError(str(exc), 2) from None
    parse = resolve_parser(declared_stream(args.stream).parser)
    summary = Summary(documents=len(documents))
    with database(settings) as url, engine(settings, url, "import") as built:
        try:
            with built.connect() as conn:
                plan = plan_import(conn, args.stream, source, documents)
            summary.skipped, summary.prepend = plan.skipped, plan.prepend
            summary.date(plan.documents)
            if plan.documents:
                summary.first, summary.last = plan.documents[0].at, plan.documents[-1].at
            if args.dry_run:
                summary.errors = sum(not is_valid(d, args.stream, parse) for d in plan.documents)
            else:
                # Counted as the writer writes them (in batches), not as they are read; a
                # prepended archive's last step joins it to the history on record.
                written = write_documents(built, args.stream, parse, source, plan)
                total = len(plan.documents) + plan.prepend
                try:
                    for recorded in track(written, "importing", total=total, console=console):
                        summary.add(recorded)
                except KeyboardInterrupt:
                    # The batch being written rolls back with its transaction (a prepended
                    # archive, whole); the batches committed before it are kept.
                    written.close()  # a prepend suspended at a yield rolls back now
                    summary.interrupt()
                    print(summary.line(args.stream, source, dry_run=False))
                    return 130
        except ArchiveError as exc:
            raise CliError(f"refusing to import: {exc}{summary.kept()}", 2) from None
    print(summary.line(args.stream, source, dry_run=args.dry_run))
    if summary.stale:
        raise CliError(
            f"{summary.stale} document(s) of the archive were overtaken by observations"
            f" another import or a poll wrote to {args.stream} while it was written, and"
            " recorded stale: their content is not in the history",
            2,
        )
    return 0


def _documents(args: argparse.Namespace, at: datetime | None, console: Console) -> list[Document]:
    """The archive the options name: files and directories, or one file's git history,
    read under a progress bar of its own (each document is read and decoded to be dated
    and checked, ~30 ms a real-size exchangeInfo: minutes for a year of hourly files)."""

    def reading(items: Sequence[_T]) -> Iterable[_T]:
        # Not drawn off a terminal, where its last frame would come before a refusal's
        # one line (a cron job's log keeps the summary line alone).
        return track(items, "reading", console=console, disable=not console.is_terminal)

    if args.git is None:
        if args.path is not None:
            raise ArchiveError("--path names the file in --git REPO's history")
        if not args.paths and args.manifest is None:
            raise ArchiveError(
                "give the PATHs of the archive, a --manifest, or --git REPO --path FILE"
            )
        manifest = read_manifest(args.manifest) if args.manifest is not None else None
        return read_documents(args.paths, at, manifest, stream=args.stream, reading=reading)
    if args.paths or at is not None or args.manifest is not None or args.path is None:
        raise ArchiveError("--git REPO takes --path FILE, and no PATHs, --at or --manifest")
    return git_documents(args.git, args.path, stream=args.stream, reading=reading)
