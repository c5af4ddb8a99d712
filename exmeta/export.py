"""`exmeta export`: a market's rule history as Parquet or CSV files, for backtests.

Like `verify`, it reads with the operator's login rather than through the API: it reads
whole tables, which no route offers. One read-only REPEATABLE READ transaction serves
the three files, so that they describe one state of the history even while a poller
writes; and an export of years may outlast the answer deadline that guards the API's
short reads, hence no time limits on it (core.db.without_time_limits).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path

import adbc_driver_manager as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Connection

from api.params import binance_spelling
from core import export
from core.clock import utc_now
from core.db import without_time_limits
from core.timeparse import TimeParseError, format_instant, parse_instant
from exmeta.database import read
from exmeta.errors import CliError
from exmeta.settings import configured

FORMATS = ("parquet", "csv")
# Binance's rules have at most 8 decimals and 10 integer digits; 18 of each keeps any
# value exact with room, in one type that every reader (pandas, polars, DuckDB) knows.
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 18
# The change feed of an unbounded window: from before any recorded instant.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


# What the files hold, each named {market}_{what}.{format}, in the order they are written.
FILES = ("symbols", "filters", "changes")


@dataclass(frozen=True, slots=True)
class Exported:
    what: str  # one of FILES
    columns: tuple[export.Column, ...]
    table: pa.Table


def _targets(out: Path, market: str, file_format: str) -> dict[str, Path]:
    """Where each of FILES goes."""
    return {what: out / f"{market}_{what}.{file_format}" for what in FILES}


def _refuse_in_the_way(out: Path, targets: Iterable[Path]) -> None:
    """A directory where a file goes is refused before anything is written: found only
    when the files take their places, it left those before it replaced and the rest not."""
    for path in targets:
        if path.is_dir():
            raise CliError(f"--out {out}: {path} is a directory, where the export writes a file", 2)


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except TimeParseError as exc:
        raise CliError(f"{name}: {exc}", 2) from None


def _window(args: argparse.Namespace) -> export.Window:
    start, end = _instant(args.start, "--from"), _instant(args.to, "--to")
    if start is not None and end is not None and start >= end:
        raise CliError("--from must be before --to", 2)
    if start is not None and end is None and start >= utc_now():
        # --to defaults to now, and the rules in force now are not "from then on".
        raise CliError(f"--from {format_instant(start)} is after now (--to's default)", 2)
    names = _symbol_names(args.symbols) if args.symbols is not None else None
    if names is not None and not all(names):
        raise CliError("--symbols: a comma-separated list of symbols, e.g. BTCUSDT,ETHUSDT", 2)
    symbols = tuple(dict.fromkeys(binance_spelling(s) for s in names)) if names else None
    return export.Window(start, end, symbols)


def _symbol_names(value: str) -> list[str]:
    """``--symbols``' names, separated by commas, spaces or both ("" for an empty entry
    between two commas, refused)."""
    return [name for part in value.split(",") for name in part.split() or [""]]


def _out_dir(value: Path, targets: Iterable[Path]) -> list[Path]:
    """Make ``value`` a directory for ``targets``, once nothing stands in their way; the
    directories made for it, deepest first: a failed export removes them, and only them,
    to leave --out as it was. Looking at a path fails too (a name too long, a directory
    not to be searched): one line, like a directory that cannot be made."""
    try:
        if value.exists() and not value.is_dir():
            raise CliError(f"--out {value}: not a directory", 2)
        dangling = next((p for p in (value, *value.parents) if _dangling(p)), None)
        if dangling is not None:
            raise CliError(
                f"--out {value}: {dangling} is a symbolic link to {os.readlink(dangling)},"
                " which does not exist",
                2,
            )
        _refuse_in_the_way(value, targets)
        made = list(takewhile(lambda p: not p.exists(), (value, *value.parents)))
        value.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {value}: {exc.strerror}", 2) from None
    return made


def _dangling(path: Path) -> bool:
    """A symbolic link to nothing: mkdir would say only "File exists"."""
    return path.is_symlink() and not path.exists()


def export_history(args: argparse.Namespace) -> int:
    """Write the rules, filter versions and change feed of ``--market`` to ``--out``."""
    window = _window(args)
    out, market = args.out, args.market
    targets = _targets(out, market, args.format)
    made = _out_dir(out, targets.values())
    end = window.end or utc_now()  # the feed's window, fixed once

    write = _write_parquet if args.format == "parquet" else _write_csv
    written: list[tuple[Path, int]] = []  # (the file, its rows), each as yet under _partial

    def save(exported: Exported) -> None:
        path = targets[exported.what]
        written.append((path, exported.table.num_rows))
        write(_partial(path), exported)

    def query(conn: Connection) -> None:
        _read_only_snapshot(conn)
        _refuse_unlisted(conn, market, window)
        with (
            without_time_limits(conn),
            _same_snapshot(conn) as other,
            ThreadPoolExecutor(1, thread_name_prefix="export-feed") as pool,
        ):
            # PostgreSQL diffs the feed (seconds of its work on a long window) while this
            # thread lays out the rules and writes their files.
            feed = pool.submit(
                export.change_table, other, market, window.start or EARLIEST, end, window.symbols
            )
            rules, filters = export.history_tables(conn, market, window)
            save(Exported("symbols", export.rules_columns(market), rules))
            save(Exported("filters", export.filter_columns(market), filters))
            del rules, filters  # not held while the feed is built and written
            save(Exported("changes", export.CHANGE_COLUMNS, feed.result()))

    export.use_system_allocator()
    # What was imported lives as long as the process: kept out of the collector's
    # sweeps, which the feed's hundreds of thousands of objects trigger (~20 % of
    # core.changes' time on a year); back in them once the export is read.
    gc.freeze()
    try:
        read(configured(args), "export", query)
    except BaseException as exc:
        _leave_as_it_was([_partial(path) for path, _ in written], made)
        if isinstance(exc, adbc.Error):  # the Arrow reads' driver: as exmeta.database says
            raise CliError(f"cannot read the database: {_reason(exc)}", 2) from None
        if isinstance(exc, OSError):  # pyarrow's writers raise it, errno or not
            raise CliError(f"--out {out}: {' '.join(str(exc).split())}", 2) from None
        raise
    finally:
        gc.unfreeze()
    _place(out, written)
    for path, rows in written:
        print(f"{path}: {rows} rows")
    return 0


def _place(out: Path, written: list[tuple[Path, int]]) -> None:
    """Put the files written aside in their places, together once all are whole: a failure
    leaves none of them half-written or from another state of the history. One whose place
    was taken meanwhile (or is not ours to replace) is one line naming those placed."""
    for done, (path, _rows) in enumerate(written):
        try:
            os.replace(_partial(path), path)
        except OSError as exc:
            _leave_as_it_was([_partial(p) for p, _ in written[done:]], ())
            placed = ", ".join(p.name for p, _ in written[:done]) or "no file"
            raise CliError(
                f"--out {out}: {path.name} could not take its place"
                f" ({exc.strerror or exc}); {placed} did, the rest were removed",
                2,
            ) from None


def _leave_as_it_was(partials: Iterable[Path], made: Iterable[Path]) -> None:
    """A failed export's files written aside, and the directories it made, removed."""
    for path in partials:
        if path.is_file():  # not what stood in the way, if a directory did
            path.unlink()
    for directory in made:
        with suppress(OSError):  # not emptied: something not the export's is in it
            directory.rmdir()


def _reason(exc: adbc.Error) -> str:
    """PostgreSQL's own message for a failed read, in one line: the driver wraps it in
    its own words and the query's text."""
    said = re.search(r"ERROR:\s+(.+)", str(exc))
    return said.group(1).strip() if said else " ".join(str(exc).split())


def _read_only_snapshot(conn: Connection) -> None:
    conn.execution_options(isolation_level="REPEATABLE READ")
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")


@contextmanager
def _same_snapshot(conn: Connection) -> Iterator[Connection]:
    """A second connection whose transaction reads the very state ``conn``'s reads (an
    exported snapshot): the files still describe one state of the history, however the
    reads are spread over connections. ``conn`` must stay in its transaction meanwhile."""
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    with conn.engine.connect() as other:
        _read_only_snapshot(other)
        # SET TRANSACTION takes no parameters; the identifier is the server's own.
        other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        with without_time_limits(other):
            yield other


def _refuse_unlisted(conn: Connection, market: str, window: export.Window) -> None:
    """Refuse symbols asked for that have no rules in the window, before the history is
    read: a typo would read as "no rules". A symbol never listed and one listed only
    outside the window are told apart, the window named as --from/--to gave it."""
    if window.symbols is None:
        return
    listed = export.listings(conn, market, window)
    never = [s for s in window.symbols if s not in listed]
    outside = [s for s in window.symbols if s in listed and not listed[s]]
    reasons = []
    if never:
        reasons.append(f"never listed on {market} (in all its history): {', '.join(never)}")
    if outside:
        reasons.append(f"listed on {market}, but not {_described(window)}: {', '.join(outside)}")
    if reasons:
        raise CliError(f"--symbols: {'; '.join(reasons)}", 2)


def _described(window: export.Window) -> str:
    """The window's instants as --from/--to name them (one bound at least: without any,
    every listed symbol is in the window)."""
    start, end = format_instant(window.start), format_instant(window.end)
    if start is not None and end is not None:
        return f"between --from {start} and --to {end}"
    return f"from --from {start} on" if start is not None else f"before --to {end}"


def _partial(path: Path) -> Path:
    """Where a file is written before it takes ``path``'s place: a reader never sees half."""
    return path.with_name(f".{path.name}.partial")


def _write_parquet(path: Path, exported: Exported) -> None:
    decimal = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
    table = exported.table
    for i, (name, kind) in enumerate(exported.columns):
        if kind == export.DECIMAL:
            table = table.set_column(i, pa.field(name, decimal), table[name].cast(decimal))
    pq.write_table(table, path)


def _csv_column(values: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """A column as the CSV spells it: instants in RFC 3339 with milliseconds (as
    core.timeparse.format_instant), lists as JSON arrays, booleans as True/False, text
    (decimals and JSON included) as it is; NULL stays NULL, an empty field."""
    if kind == export.INSTANT:
        # Cut to the millisecond, as format_instant does (never rounded up). Formatting
        # costs ~1.5 µs an instant, and the history's instants are those of its few
        # thousand observations: each distinct one is formatted once.
        millis = values.cast(pa.timestamp("ms", tz="UTC"), safe=False).combine_chunks()
        distinct = millis.dictionary_encode()
        spelled = pc.strftime(distinct.dictionary, format="%Y-%m-%dT%H:%M:%SZ")
        return pa.chunked_array([pc.take(spelled, distinct.indices)])
    if kind == export.BOOLEAN:
        return pc.if_else(values, "True", "False")
    if kind == export.TEXTS:
        return _json_arrays(values)
    return values.cast(pa.string())


# How JSON (and orjson, which wrote these lists before) escapes a character in a string.
_JSON_ESCAPES = [
    ("\\", "\\\\"),
    ('"', '\\"'),
    *(
        (chr(c), {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(c, f"\\u{c:04x}"))
        for c in range(32)
    ),
]


def _json_arrays(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Lists of text as JSON arrays (``["SPOT","MARGIN"]``), without a Python object per
    row: every element escaped, then joined."""
    chunks = []
    for chunk in values.chunks:
        # A slice's own elements: ``values`` is the whole child array of a sliced list.
        first, last = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()
        items = chunk.values.slice(first, last - first)
        if _needs_escapes(items):
            for plain, escaped in _JSON_ESCAPES:
                items = pc.replace_substring(items, plain, escaped)
        lists = pa.ListArray.from_arrays(pc.subtract(chunk.offsets, first), items)
        quoted = pc.binary_join_element_wise('["', pc.binary_join(lists, '","'), '"]', "")
        # An empty list is "[]"; a NULL one has no length, and stays NULL.
        chunks.append(pc.if_else(pc.equal(pc.list_value_length(chunk), 0), "[]", quoted))
    return pa.chunked_array(chunks, pa.string())


def _needs_escapes(texts: pa.StringArray) -> bool:
    """Whether any of ``texts`` holds a character JSON escapes: one look at their bytes
    (~40 MB for a year of spot's permissions, ten times faster than a regular expression),
    where Binance's lists (order types, permissions) never need one."""
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[
        texts.offset : texts.offset + len(texts) + 1
    ]
    data = texts.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return False
    chars = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return bool(((chars < 0x20) | (chars == ord('"')) | (chars == ord("\\"))).any())


# Rows spelled and encoded at a time: pieces of a few MB, spelled on every core, and never
# a whole file's spelled copy in memory (~300 MB for a year of spot rules).
CSV_ROWS = 16_384
# Pieces encoded ahead of the one being written: each thread has work, memory stays bounded.
CSV_AHEAD = 8


def _write_csv(path: Path, exported: Exported) -> None:
    """The table as one ``pyarrow.csv.write_csv`` of its spelled columns writes it, but
    spelled and encoded piece by piece on every core (pyarrow lets go of the GIL; its
    writer is one thread), the pieces written in order, the header with the first."""
    names = [n for n, _ in exported.columns]
    table = exported.table

    def encode(offset: int) -> pa.Buffer:
        piece = table.slice(offset, CSV_ROWS)
        spelled = pa.table([_csv_column(piece[n], k) for n, k in exported.columns], names=names)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(spelled, sink, pacsv.WriteOptions(include_header=offset == 0))
        return sink.getvalue()

    def encoded() -> Iterator[pa.Buffer]:
        offsets = range(0, max(table.num_rows, 1), CSV_ROWS)  # an empty table: its header
        with ThreadPoolExecutor(os.cpu_count(), thread_name_prefix="export-csv") as pool:
            pending: deque[Future[pa.Buffer]] = deque()
            for offset in offsets:
                pending.append(pool.submit(encode, offset))
                if len(pending) > CSV_AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    _write_behind(path, encoded())


# How much of a file being written the page cache holds, about: each range of this size is
# handed to writeback once written, and its pages freed once the next one is.
WRITE_BEHIND = 8 << 20


def _write_behind(path: Path, pieces: Iterable[pa.Buffer]) -> None:
    """``pieces`` written to ``path`` in order, without keeping the file in the page cache
    (``posix_fadvise(DONTNEED)`` behind the writes, as ``dd oflag=nocache``): an export's
    hundreds of MB of CSV would otherwise evict what the host had cached (PostgreSQL's
    pages among them) and, on this VM, cost ~2.5 s of kernel time a 300 MB for new pages,
    where a few MB of pages used over and over cost ~0.3 s (bench/README.md, export)."""
    with path.open("wb") as file:
        written = handed = 0
        for piece in pieces:
            file.write(piece)
            written += piece.size
            if written - handed >= WRITE_BEHIND and hasattr(os, "posix_fadvise"):
                file.flush()
                # The new range: written back from now on. All before it: freed, but for
                # pages still being written back, which the kernel keeps (a no-op then).
                os.posix_fadvise(file.fileno(), handed, written - handed, os.POSIX_FADV_DONTNEED)
                os.posix_fadvise(file.fileno(), 0, handed, os.POSIX_FADV_DONTNEED)
                handed = written
