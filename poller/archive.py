"""Archived responses written into a stream's history as if polled then (`exmeta import`).

An archive document goes through the poller's own writer (core.ingest.StreamWriter), so
versioning has one implementation: each document is dated by its own instant (its
``serverTime``, else the one the caller gives) and recorded with where it was read from.
History is never rewritten: the writer applies observations in time order, so an archive
is written oldest first, documents already on record are skipped (importing twice
changes nothing), and the rest go wholly after the stream's history (while nothing was
polled live) or wholly before its first observation, where core.ingest.Prepending shows
the writer an empty stream and joins what it wrote to the history on record. Anything
else (a document among those on record, or at or after the first live poll) is refused
before a write.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import posixpath
import re
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import orjson
from sqlalchemy import Connection, Engine, text

from core import obslog
from core.bodies import blank_server_time
from core.ingest import (
    Fetched,
    InvalidPayloadError,
    Recorded,
    StreamWriter,
    first_success,
    prepending,
)
from core.streams import BODY_REDACTIONS, MARKET_DECLARATIONS, Market, market
from core.timeparse import TimeParseError, parse_instant
from poller.binance import binance_error
from poller.job import Parser, server_time_of

IMPORT_REPLICA = "import"  # the replica_id of imported observations
_GZIP_MAGIC = b"\x1f\x8b"
GIT_TIMEOUT_SECONDS = 60  # one git call over a local repository


class ArchiveError(ValueError):
    """The archive cannot be imported as asked; the message names the file or conflict."""


@dataclass(frozen=True, slots=True)
class Document:
    """One archived response: its instant, where it was read from, and how to read its body.

    A document holds no body: an archive can be larger than memory (a year of hourly
    exchangeInfo snapshots is ~30 GB), so each is read once to be dated and again when
    its batch is written (``body``).
    """

    at: datetime
    origin: str
    server_time: datetime | None
    # The body as imported (serverTime blanked); None: the archive had no document there
    # (a file deleted in git). ArchiveError if it is no longer what was dated.
    read: Callable[[], bytes | None]
    dated_by: str = "serverTime"  # or "--at", "manifest", "file name", "commit time"
    # SHA-256 of ``body``, as observations name the bodies they store; None: no body.
    digest: bytes | None = None

    @property
    def body(self) -> bytes | None:
        return self.read()


@dataclass
class Summary:
    """What an import did (or, dry, would read): the figures its last line reports."""

    documents: int = 0
    skipped: int = 0  # already on record: an earlier import of the same archive
    changed: int = 0
    unchanged: int = 0
    errors: int = 0
    # Overtaken: written by another import or a poll after this one was planned, the
    # writer recorded them stale and applied nothing (an appended import plans unlocked).
    stale: int = 0
    opened: int = 0
    closed: int = 0
    first: datetime | None = None
    last: datetime | None = None
    prepend: bool = False  # written before the history on record
    joined: datetime | None = None  # where the prepended history met it
    dated: dict[str, int] = field(default_factory=dict)  # documents to write, by dating
    interrupted: bool = False  # stopped (Ctrl-C) with the figures of what was committed

    def date(self, documents: Sequence[Document]) -> None:
        """Count how ``documents`` (those to write) were dated."""
        self.dated = dict(Counter(d.dated_by for d in documents))

    def add(self, recorded: Recorded | Joined) -> None:
        if isinstance(recorded, Joined):
            self.joined = recorded.at
            self.closed += sum(recorded.closed.values())
            return
        if recorded.outcome == "changed":
            self.changed += 1
        elif recorded.outcome == "error":
            self.errors += 1
        elif recorded.outcome == "stale":
            self.stale += 1
        else:
            self.unchanged += 1
        self.opened += sum(recorded.opened.values())
        self.closed += sum(recorded.closed.values())

    def kept(self) -> str:
        """What a refusal met while writing leaves behind: the batches committed before it
        (a prepended archive is one transaction, so none), or nothing to say."""
        written = self.changed + self.unchanged + self.errors + self.stale
        if self.prepend or not written:
            return ""
        return (
            f"; {written} of {self.documents} document(s) written before it are kept"
            " (importing the archive again skips them)"
        )

    def interrupt(self) -> None:
        """Stopped while writing: what a prepended archive wrote (one transaction) is
        rolled back, so none of it counts; an appended one keeps its committed batches."""
        if self.prepend:
            self.changed = self.unchanged = self.errors = self.stale = 0
            self.opened = self.closed = 0
            self.joined = None
        self.interrupted = True

    @property
    def _stale(self) -> str:
        return (
            f", {self.stale} stale (overtaken by observations written meanwhile, nothing applied)"
            if self.stale
            else ""
        )

    def line(self, stream: str, source: str, *, dry_run: bool) -> str:
        """The import's last line: what it did, or (dry) what it read and would write."""
        if self.interrupted:
            written = self.changed + self.unchanged + self.errors + self.stale
            left = self.documents - self.skipped - written
            return (
                f"interrupted: imported {written} of {self.documents} document(s) into"
                f" {stream} as {source} ({self.skipped} already on record): {self.changed}"
                f" changed, {self.unchanged} unchanged, {self.errors} error(s){self._stale};"
                f" {self.opened} version(s) opened, {self.closed} closed; the other {left} are"
                " not written: import the archive again to write them"
            )
        written = self.documents - self.skipped
        span = (
            f" from {self.first.isoformat()} to {self.last.isoformat()}"
            if self.first is not None and self.last is not None
            else ""
        )
        where = " before the history on record" if self.prepend else ""
        by = ", ".join(f"{n} by {how}" for how, n in sorted(self.dated.items()))
        span += f"; dated {by}" if by else ""
        if dry_run:
            return (
                f"dry run, nothing written: {self.documents} document(s) for {stream} as"
                f" {source}, {self.skipped} already on record, {written} to write{where}"
                f" ({self.errors} of them errors){span}"
            )
        joined = (
            f", joined to the history on record at {self.joined.isoformat()}"
            if self.joined is not None
            else ""
        )
        return (
            f"imported {written} of {self.documents} document(s) into {stream} as {source}"
            f"{where} ({self.skipped} already on record): {self.changed} changed,"
            f" {self.unchanged} unchanged, {self.errors} error(s){self._stale};"
            f" {self.opened} version(s)"
            f" opened, {self.closed} closed{span}{joined}"
        )


def archive_files(paths: Sequence[Path]) -> list[Path]:
    """The files ``paths`` name: each file, and every ``*.json``/``*.json.gz`` of a directory."""
    found: list[Path] = []
    for path in paths:
        try:
            found += _files_of(path)
        # A directory that cannot be listed, or a path under one that cannot be searched
        # (pathlib's is_symlink does not hide EACCES as is_dir does).
        except OSError as exc:
            raise ArchiveError(f"{exc.filename or path}: cannot read: {exc.strerror}") from None
    return found


def _files_of(path: Path) -> list[Path]:
    _refuse_broken_link(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ArchiveError(f"{path}: no such file or directory")
    listed = sorted(p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")))
    for entry in listed:
        _refuse_broken_link(entry)
    files = [p for p in listed if p.is_file()]
    if not files:
        # Most likely the wrong directory: importing it would do nothing and say 0.
        raise ArchiveError(f"{path}: holds no *.json or *.json.gz file")
    return files


def _refuse_broken_link(path: Path) -> None:
    """ArchiveError if ``path`` is a symbolic link to nothing: a file of the archive that
    moved, which neither 'no such file' (the link is there) nor skipping it would say."""
    if path.is_symlink() and not path.exists():
        raise ArchiveError(f"{path}: a broken symbolic link (to {path.readlink()})")


# An instant in a file's name (README, Importing history): a date, YYYY-MM-DD or YYYYMMDD,
# then optionally a time, after a T (HH:MM, HH-MM or HHMM, seconds optional) or after an
# underscore (seconds required: "_2124" in "2022-11-29_2124.json" is a symbol count), then
# Z or an offset (+HH:MM, -HHMM), else UTC; or 13 digits of epoch milliseconds. Digits
# running on either side make it no instant.
_NAMED_INSTANT = re.compile(
    r"(?<!\d)(?P<y>20\d\d)(?P<ds>-?)(?P<mo>\d\d)(?P=ds)(?P<d>\d\d)"
    r"(?:(?:T(?P<h>\d\d)(?P<ts>[:-]?)(?P<mi>\d\d)(?:(?P=ts)(?P<s>\d\d))?"
    r"|_(?P<h2>\d\d)(?P<ts2>[:-]?)(?P<mi2>\d\d)(?P=ts2)(?P<s2>\d\d))"
    r"(?:Z|(?P<sign>[+-])(?P<oh>\d\d):?(?P<om>\d\d))?)?(?!\d)"
)
_NAMED_EPOCH_MS = re.compile(r"(?<!\d)\d{13}(?!\d)")


def instants_in_name(name: str) -> list[datetime]:
    """Every distinct instant ``name`` holds in the documented forms (``_NAMED_INSTANT``,
    ``_NAMED_EPOCH_MS``), in order; a date or time that does not exist (month 13) is none."""
    found: list[datetime] = []
    for m in _NAMED_INSTANT.finditer(name):
        clock = (m["h"], m["mi"], m["s"]) if m["h"] is not None else (m["h2"], m["mi2"], m["s2"])
        offset = 0 if m["sign"] is None else int(m["oh"]) * 60 + int(m["om"])
        try:
            zone = timezone(timedelta(minutes=-offset if m["sign"] == "-" else offset))
            hour, minute, second = (int(v or 0) for v in clock)
            day = (int(m["y"]), int(m["mo"]), int(m["d"]))
            found.append(datetime(*day, hour, minute, second, tzinfo=zone).astimezone(UTC))
        except ValueError:
            continue
    found += [server_time_of(int(m[0])) for m in _NAMED_EPOCH_MS.finditer(name)]
    return list(dict.fromkeys(found))


def _document(
    raw: bytes,
    origin: str,
    stream: str,
    at: tuple[datetime, str] | None,
    read: Callable[[], bytes],
    named: Sequence[datetime] = (),
) -> Document:
    """``raw`` (gzip or not), a response of ``stream``, dated by its ``serverTime``, else
    ``at`` (an instant and what gave it), else the one instant its file's name holds
    (``named``); ``read`` reads ``raw`` again when the body is wanted, and must find the
    same bytes."""
    try:
        origin.encode()
    except UnicodeEncodeError:
        # A name in another encoding (os.fsdecode's surrogates): the origin column is text.
        shown = origin.encode(errors="surrogateescape").decode(errors="backslashreplace")
        raise ArchiveError(
            f"{shown}: the path is not UTF-8, as an observation's origin must be: rename it"
        ) from None
    decompressed = _decompressed(raw, origin)
    doc = _json_object(decompressed)
    _check_server_time(doc, origin, decompressed)
    _check_market(doc, origin, stream)
    blanked, server_ms = blank_server_time(decompressed)
    server_time = server_time_of(server_ms) if server_ms is not None else None
    instant, dated_by = (
        (server_time, "serverTime")
        if server_time is not None
        else at or ((named[0], "file name") if len(named) == 1 else (None, ""))
    )
    if instant is None and named:
        spelled = ", ".join(t.isoformat() for t in named)
        raise ArchiveError(
            f"{origin}: the document has no serverTime and its name holds {len(named)}"
            f" instants ({spelled}); give its instant with --manifest"
        )
    if instant is None:
        raise ArchiveError(
            f"{origin}: the document has no serverTime and its name no date; give its"
            " instant with --at or --manifest"
        )
    digest = hashlib.sha256(blanked).digest()

    def body() -> bytes:
        again, again_ms = _blanked(read(), origin)
        if again_ms != server_ms or hashlib.sha256(again).digest() != digest:
            raise ArchiveError(f"{origin}: changed while it was imported")
        return again

    return Document(instant, origin, server_time, body, dated_by, digest)


def _blanked(raw: bytes, origin: str) -> tuple[bytes, int | None]:
    """The body of ``raw`` (gzip or not) with its serverTime blanked, and that time."""
    return blank_server_time(_decompressed(raw, origin))


def _decompressed(raw: bytes, origin: str) -> bytes:
    """The body of ``raw``, gzip or not."""
    try:
        return gzip.decompress(raw) if raw.startswith(_GZIP_MAGIC) else raw
    # A bad header or CRC is BadGzipFile, a cut-off stream EOFError, and a damaged
    # deflate stream zlib.error, which gzip lets through.
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchiveError(f"{origin}: not a valid gzip file: {exc}") from None


def _json_object(body: bytes) -> dict[str, object] | None:
    """``body`` as a JSON object, or None: not one (an error page, a truncated body),
    which the writer records as an error observation, as in polling.

    orjson first (13 ms for a real-size exchangeInfo, the standard library's 22 ms: every
    document of an archive is decoded once to be dated), the standard library where orjson
    is stricter (NaN, a lone surrogate escape), so the checks see what the writer will."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


# Epoch milliseconds as Binance sends them, from 1973 to 2286 (core.timeparse's range):
# 10 digits are epoch seconds, which read as milliseconds would date a file in 1970.
_EPOCH_MS_RANGE = range(10**11, 10**13)


def _check_server_time(doc: Mapping[str, object] | None, origin: str, body: bytes) -> None:
    """ArchiveError unless ``doc``'s serverTime, if it has one, is integer epoch ms:
    core.bodies.blank_server_time reads digits only, so a string or ``true`` would leave
    the document undated (its file's name then dating it), and a fraction or seconds
    would misdate it."""
    if doc is None or "serverTime" not in doc:
        return
    value = doc["serverTime"]
    if type(value) is int and value in _EPOCH_MS_RANGE:
        return
    spelled = _spelled_server_time(body) if isinstance(value, float) else json.dumps(value)
    why = f"{origin}: serverTime {spelled:.40}"
    if type(value) is int and value in range(10**8, 10**10):
        seconds = datetime.fromtimestamp(value, UTC).isoformat()
        raise ArchiveError(
            f"{why} looks like epoch seconds ({seconds}); epoch milliseconds have 12 or 13 digits"
        )
    raise ArchiveError(f"{why} is not an integer epoch in milliseconds (12 or 13 digits)")


_SERVER_TIME_TEXT = re.compile(rb'"serverTime"\s*:\s*([-+.\w]+)')


def _spelled_server_time(body: bytes) -> str:
    """A number serverTime as the document writes it (1.669597544331e12, not its float)."""
    found = _SERVER_TIME_TEXT.search(body)
    return found[1].decode(errors="replace") if found is not None else "(a fraction)"


def _check_market(doc: Mapping[str, object] | None, origin: str, stream: str) -> None:
    """ArchiveError if ``doc`` is a market's exchangeInfo and ``stream`` is not that
    market's: each market's parser reads the fields the others share (symbol, status,
    filters), so a USD-M body would be written into spot's symbols as if spot had listed
    its contracts (and into another kind of stream, as an error observation)."""
    found = _market_of(doc) if doc is not None else None
    if found is None or found[0].exchange_info == stream:
        return
    looks, because = found[0].exchange_info, found[1]
    raise ArchiveError(
        f"{origin}: looks like a {looks} document ({because}), not {stream}'s: import it"
        f" with --stream {looks}"
    )


# What only one market's exchangeInfo says (Binance's bodies in tests/fixtures and
# binance_sim/data): USD-M's names its futuresType and lists margin assets; COIN-M's
# contracts give their status as contractStatus (Market.status_key); futures contracts
# have a contractType; spot's symbols say isSpotTradingAllowed.
_FUTURES_TYPES = {"U_MARGINED": "usdm", "COIN_MARGINED": "coinm"}


def _market_of(doc: Mapping[str, object]) -> tuple[Market, str] | None:
    """The market whose exchangeInfo ``doc`` looks like and the field that says so;
    None: nothing says (an error body, a document of another kind)."""
    futures_type = doc.get("futuresType")
    if isinstance(futures_type, str) and futures_type in _FUTURES_TYPES:
        return market(_FUTURES_TYPES[futures_type]), f"futuresType {futures_type}"
    symbols = doc.get("symbols")
    first = symbols[0] if isinstance(symbols, list) and symbols else None
    fields = first if isinstance(first, dict) else {}
    for declared in MARKET_DECLARATIONS:
        if declared.status_key != "status" and declared.status_key in fields:
            return declared, declared.status_key
    if "assets" in doc:
        return market("usdm"), "assets"
    if "contractType" in fields:
        return market("usdm"), "contractType"
    if "isSpotTradingAllowed" in fields:
        return market("spot"), "isSpotTradingAllowed"
    return None


def read_manifest(manifest: Path) -> dict[Path, datetime]:
    """The instants a manifest gives its files: CSV lines ``path,instant`` or a JSON object
    ``{path: instant}``, paths relative to the manifest, instants as ``--at`` takes them."""
    try:
        # utf-8-sig: spreadsheets ("CSV UTF-8") and Windows editors start the file with a
        # byte order mark, which would otherwise be part of the first path or JSON's text.
        text_ = manifest.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ArchiveError(f"{manifest}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ArchiveError(
            f"{manifest}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    if manifest.suffix == ".json":
        try:
            # As pairs: a dict would keep only the last of two entries for one path.
            pairs: list[Sequence[object]] = json.loads(text_, object_pairs_hook=_JSONPairs)
        except ValueError:
            pairs = []
        if not isinstance(pairs, _JSONPairs):
            raise ArchiveError(f"{manifest}: not a JSON object of path: instant")
    else:
        pairs = [tuple(row) for row in csv.reader(io.StringIO(text_)) if row]
    if not pairs:
        raise ArchiveError(f"{manifest}: lists no file")
    instants: dict[Path, datetime] = {}
    entries: dict[Path, int] = {}
    for n, pair in enumerate(pairs, 1):
        if len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], str):
            raise ArchiveError(f"{manifest}: entry {n} is not a path and an instant")
        try:
            _refuse_broken_link(manifest.parent / pair[0])
        except OSError as exc:
            raise ArchiveError(f"{exc.filename}: cannot read: {exc.strerror}") from None
        path = (manifest.parent / pair[0]).resolve()
        try:
            instant = parse_instant(pair[1])
        except TimeParseError as exc:
            raise ArchiveError(f"{manifest}: entry {n}: {exc}") from None
        if path in instants:
            # Which of two instants is the file's is the manifest's author's to say.
            raise ArchiveError(
                f"{manifest}: entries {entries[path]} and {n} both date {path}"
                f" ({instants[path].isoformat()}, {instant.isoformat()})"
            )
        instants[path], entries[path] = instant, n
    return instants


_T = TypeVar("_T")


class Reading(Protocol):
    """Called with what an archive's reading goes through (its files, a file's commits);
    yields them back, showing how far it got (the command's progress bar)."""

    def __call__(self, items: Sequence[_T]) -> Iterable[_T]: ...


def _unseen(items: Sequence[_T]) -> Iterable[_T]:
    return items


class _JSONPairs(list[tuple[str, object]]):
    """A JSON object's members in order, duplicates kept (``object_pairs_hook``)."""


def read_documents(
    paths: Sequence[Path],
    at: datetime | None,
    manifest: Mapping[Path, datetime] | None = None,
    *,
    stream: str,
    reading: Reading = _unseen,
) -> list[Document]:
    """Every document of ``paths`` and of ``manifest`` (responses of ``stream``), oldest
    first, each dated by its serverTime, else by the manifest, else by ``at`` (which
    dates a single file only), else by the instant in its file's name. Each file is read
    (and decoded) once here, through ``reading``."""
    instants = manifest or {}
    # Each file once, however often the PATHs and the manifest name it: a file named
    # twice would be counted as two documents and the second as already on record.
    named_files: dict[Path, Path] = {}
    for path in archive_files(paths):
        named_files.setdefault(path.resolve(), path)
    files = [*named_files.values(), *(p for p in instants if p not in named_files)]
    if at is not None and len(files) != 1:
        raise ArchiveError(f"--at dates one file, and {len(files)} were given")
    documents = []
    for path in reading(files):
        origin = path.resolve()
        read = partial(_read_file, path)
        given = (
            (instants[origin], "manifest")
            if origin in instants
            else (at, "--at")
            if at is not None
            else None
        )
        named = instants_in_name(path.name)
        documents.append(_document(read(), str(origin), stream, given, read, named))
    return _one_per_instant(documents)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc.strerror}") from None


def refuse_future(documents: Sequence[Document], now: datetime) -> None:
    """ArchiveError naming the first of ``documents`` dated after ``now``: an archive holds
    what was, and versions opened in the future would be the answer of every read as of
    then, and make every poll before then stale (the writer's newest applied observation)."""
    future = next((d for d in documents if d.at > now), None)
    if future is not None:
        raise ArchiveError(
            f"{future.origin} is dated {future.at.isoformat()} by {future.dated_by}, after"
            f" now ({now.isoformat()}, the host's clock): an archive holds what was"
        )


def git_documents(
    repo: Path, path: str, *, stream: str, reading: Reading = _unseen
) -> list[Document]:
    """Every version of ``path`` (a response of ``stream``) in the history of ``repo``'s
    HEAD, oldest first.

    Each commit that touched the file is a document dated by its serverTime, else by the
    commit's *committer* time (when it entered the history, which a rebase moves, rather
    than when it was first written); its origin names the commit. A commit that deleted
    the file is a document without a body: an error observation, as a failed poll is.
    """
    log = _git(repo, "log", "--reverse", "--format=%H %ct", "HEAD", "--", path).decode()
    commits = [line.split() for line in log.splitlines() if line]
    if not commits:
        raise ArchiveError(f"{repo}: no commit touched {path}")
    documents = []
    for commit, seconds in reading(commits):
        at = datetime.fromtimestamp(int(seconds), UTC)
        origin = f"git:{repo.resolve()}@{commit}:{path}"
        blob = _blob(repo, commit, path)
        if blob is None:
            documents.append(Document(at, origin, None, lambda: None, "commit time"))
            continue
        read = partial(_git, repo, "cat-file", "blob", blob)
        documents.append(_document(read(), origin, stream, (at, "commit time"), read))
    return _one_per_instant(_last_of_each_second(documents))


def _last_of_each_second(documents: Sequence[Document]) -> list[Document]:
    """``documents`` (a file's commits, in history order) with those dated by one
    committer second cut to the last of them: the file as that second left it. Commit
    times are whole seconds, so an earlier one held for none of the instants the history
    can name (a serverTime dates its document to the millisecond, and is never cut)."""
    last: dict[datetime, Document] = {}
    for doc in documents:
        if doc.dated_by == "commit time":
            last[doc.at] = doc
    return [d for d in documents if d.dated_by != "commit time" or last[d.at] is d]


def _one_per_instant(documents: Sequence[Document]) -> list[Document]:
    """``documents`` oldest first, copies of one response at one instant kept once (the
    first by origin: saved compact and pretty-printed, or gzipped beside the plain file);
    ArchiveError naming the first two at one instant that differ: the stream holds one
    observation an instant, so the writer would keep whichever came first and the other
    would pass for already on record. Which one held then is for the archive's author to
    say (or leave out).
    """
    ordered = sorted(documents, key=lambda d: (d.at, d.origin))
    kept = ordered[:1]
    for other in ordered[1:]:
        one = kept[-1]
        if one.at != other.at:
            kept.append(other)
        elif not _same_content(one, other):
            raise ArchiveError(
                f"{one.origin} and {other.origin} are both dated {one.at.isoformat()} (by"
                f" {one.dated_by}, by {other.dated_by}): the stream holds one document an"
                " instant; leave one of them out"
            )
    return kept


def _same_content(one: Document, other: Document) -> bool:
    """Whether two documents hold the same response, however spaced or compressed (read
    again: only documents at one instant are compared)."""
    mine, theirs = one.body, other.body
    if mine is None or theirs is None:
        return mine is theirs
    if mine == theirs:
        return True
    decoded = _json_object(mine)
    return decoded is not None and decoded == _json_object(theirs)


def _blob(repo: Path, commit: str, path: str) -> str | None:
    """The id of file ``path`` in ``commit``; None: it has none there (it was deleted).

    ArchiveError if ``path`` is a directory: ls-tree lists a directory's own entry
    (``spot``) or, spelled with a slash or as ``.``, its contents, and either one read as
    the document would be a tree, or whichever file the directory happened to hold.
    """
    # -z: paths unquoted (git quotes one with a non-ASCII or unusual character otherwise).
    listed = _git(
        repo, "ls-tree", "-z", "--format=%(objecttype) %(objectname) %(path)", commit, "--", path
    )
    entries = [entry.split(" ", 2) for entry in listed.decode().split("\0") if entry]
    if not entries:
        return None
    if len(entries) == 1 and entries[0][0] == "blob" and entries[0][2] == posixpath.normpath(path):
        return entries[0][1]
    files = _git(repo, "ls-tree", "-r", "--name-only", commit, "--", path).decode().splitlines()
    example = f", such as {files[0]}" if files else ""
    raise ArchiveError(
        f"{repo}: {path} is a directory in commit {commit}; --path names one file{example}"
    )


def _git(repo: Path, *args: str) -> bytes:
    """What ``git -C repo ARGS`` prints; ArchiveError, with git's own words, if it fails."""
    try:
        done = subprocess.run(  # noqa: S603 (arguments, never a shell; git from PATH)
            ["git", "-C", str(repo), *args],  # noqa: S607
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchiveError(f"cannot run git: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArchiveError(f"{repo}: git {args[0]}: {reason[0] if reason else done.returncode}")
    return done.stdout


def fetched_of(document: Document, stream: str, source: str) -> Fetched:
    """The document as a poll of ``stream`` would have brought it back: an error body
    (Binance's ``{"code", "msg"}``, a geo-block notice) is an error, as in polling."""
    body = document.body
    fetched = Fetched(
        stream=stream,
        replica_id=IMPORT_REPLICA,
        requested_at=document.at,
        duration_ms=0,
        http_status=None,
        body=body,
        server_time=document.server_time,
        attempts=0,
        source=source,
        observed_at=document.at,
        origin=document.origin,
    )
    if body is None:
        return replace(
            fetched, error_class="missing_document", error_message=f"{document.origin}: deleted"
        )
    code, message = binance_error(body)
    if code is None:
        return fetched
    return replace(fetched, error_class="binance_error", error_code=code, error_message=message)


def is_valid(document: Document, stream: str, parse: Parser) -> bool:
    """Whether the writer would apply ``document`` rather than record it as an error
    (what a dry run counts, without writing)."""
    fetched = fetched_of(document, stream, "")
    if fetched.body is None or fetched.error_class is not None:
        return False
    try:
        for kind in parse(fetched.body):
            kind.every_entity()  # a symbol's checks run when it is built (core.ingest.Group)
    except InvalidPayloadError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _History:
    # The instants the stream has an observation at, and the bodies seen then (SHA-256).
    on_record: dict[datetime, set[bytes | None]]
    first: datetime | None  # the stream's first observation, of any kind
    newest: datetime | None  # the newest observation, of any kind (errors too)
    first_live: datetime | None  # the first observation no import wrote
    seam_outcome: str | None  # that of the first successful observation
    source: str | None  # the source the stream's history belongs to


def _history(conn: Connection, stream: str, instants: Sequence[datetime]) -> _History:
    """The stream's history as far as an archive of documents at ``instants`` needs it:
    only those instants are looked up, not a live stream's millions of polls."""
    rows = conn.execute(
        text(
            "SELECT observed_at, body_sha256 FROM observations WHERE stream = :s"
            " AND observed_at = ANY(CAST(:at AS timestamptz[]))"
            " UNION ALL SELECT observed_at, body_sha256"
            f" FROM {obslog.successes_within(':s', ':lo', ':hi')} f"
            " WHERE observed_at = ANY(CAST(:at AS timestamptz[]))"
        ),
        {
            "s": stream,
            "at": list(instants),
            "lo": min(instants, default=None),
            "hi": max(instants) + timedelta(microseconds=1) if instants else None,
        },
    )
    on_record: dict[datetime, set[bytes | None]] = {}
    for at, sha in rows:
        on_record.setdefault(at, set()).add(sha)
    # The newest error observation is not the head's newest applied one: a document
    # between the two would go before an observation on record.
    first, first_live, last = conn.execute(
        text(
            "SELECT least((SELECT min(observed_at) FROM observations WHERE stream = :s),"
            " (SELECT min(first_at) FROM observation_runs WHERE stream = :s)),"
            " least((SELECT min(observed_at) FROM observations"
            "  WHERE stream = :s AND origin IS NULL),"
            " (SELECT min(first_at) FROM observation_runs WHERE stream = :s AND origin IS NULL)),"
            " greatest((SELECT max(observed_at) FROM observations WHERE stream = :s),"
            " (SELECT max(last_at) FROM observation_runs WHERE stream = :s))"
        ),
        {"s": stream},
    ).one()
    seam = first_success(conn, stream)
    seam_outcome = seam[2] if seam is not None else None
    head = conn.execute(
        text("SELECT last_applied_at, source FROM stream_heads WHERE stream = :s"), {"s": stream}
    ).one_or_none()
    applied, source = (head[0], head[1]) if head is not None else (None, None)
    newest = max((t for t in (applied, last) if t is not None), default=None)
    return _History(on_record, first, newest, first_live, seam_outcome, source)


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import will write: ``documents`` (oldest first) not on record yet, either
    after the stream's history or, ``prepend``, before its first observation."""

    documents: list[Document]
    skipped: int  # already on record
    prepend: bool = False


def plan_import(conn: Connection, stream: str, source: str, documents: Sequence[Document]) -> Plan:
    """The documents still to write, where they go, and how many are already on record.

    An archive goes wholly after the stream's history (only while nothing was polled live:
    the writer records anything no newer than its newest observation stale) or wholly
    before its first observation (Prepending): never into it, which would rewrite versions
    on record. Raises ArchiveError naming the first document that fits neither, or when
    the history is another source's.
    """
    history = _history(conn, stream, [d.at for d in documents])
    new = [d for d in documents if d.at not in history.on_record]
    for doc in documents:
        if doc.at in history.on_record and not _on_record(
            conn, doc, stream, history.on_record[doc.at]
        ):
            raise ArchiveError(
                f"{doc.origin} ({doc.at.isoformat()}) differs from the {stream} document on"
                " record at that instant: history is never rewritten; leave it out of the"
                " archive"
            )
    if not new:
        return Plan(new, len(documents))
    prepend = history.first is not None and new[-1].at < history.first
    if not prepend:
        _check_appended(stream, history, new)
    if history.source is not None and history.source != source:
        raise ArchiveError(
            f"the {stream} history is {history.source}'s, the archive is imported as"
            f" {source}: give --source {history.source}"
        )
    if prepend and history.seam_outcome not in (None, "changed"):
        # Only a first success that opened versions can close the prepended ones (core.verify).
        raise ArchiveError(
            f"the {stream} stream's first successful observation changed nothing:"
            " its history cannot be prepended"
        )
    return Plan(new, len(documents) - len(new), prepend)


def _on_record(conn: Connection, doc: Document, stream: str, recorded: set[bytes | None]) -> bool:
    """Whether ``doc`` is what the stream has on record at its instant (the bodies seen
    then, by SHA-256): the same bytes as the writer keeps them (redacted: the wallet's
    balances taken out), else the same JSON however spaced (read again, and the stored
    bodies, only then: an import of the archive on record again finds the same bytes)."""
    redact = BODY_REDACTIONS.get(stream)
    if redact is None and doc.digest in recorded:
        return True
    kept = doc.body
    if kept is not None and redact is not None:
        try:
            kept = redact(kept)
        except ValueError:  # kept as no body (core.ingest.StreamWriter._redacted)
            kept = None
    if kept is None:
        return None in recorded
    if redact is not None and hashlib.sha256(kept).digest() in recorded:
        return True
    shas = [sha for sha in recorded if sha is not None]
    stored = conn.execute(
        text("SELECT body FROM raw_bodies WHERE sha256 = ANY(:shas)"), {"shas": shas}
    ).scalars()
    decoded = _json_object(kept)
    return decoded is not None and any(_json_object(bytes(b)) == decoded for b in stored)


def _check_appended(stream: str, history: _History, new: Sequence[Document]) -> None:
    """Raise ArchiveError unless ``new`` may follow the stream's history, naming the first
    document that cannot go before it either."""
    first = history.first
    offending = next(d for d in new if first is None or d.at >= first)
    if history.first_live is not None:
        assert first is not None
        raise ArchiveError(
            f"{offending.origin} ({offending.at.isoformat()}) is not before the {stream}"
            f" stream's first observation ({first.isoformat()}), and it has been polled live"
            f" since {history.first_live.isoformat()}: history is prepended before the"
            " first observation on record, never written into or after live polls"
        )
    newest = history.newest
    if newest is not None and new[0].at <= newest:
        assert first is not None
        within = next((d for d in new if first <= d.at <= newest), None)
        where = (
            f"{within.origin} ({within.at.isoformat()}) falls within"
            if within is not None
            else f"{new[0].origin} ({new[0].at.isoformat()}) and {offending.origin}"
            f" ({offending.at.isoformat()}) lie on either side of"
        )
        raise ArchiveError(
            f"{where} the {stream} stream's history ({first.isoformat()} to"
            f" {newest.isoformat()}): an archive goes wholly before or wholly after it,"
            " history is never rewritten"
        )


# Documents written per transaction. A version that one document of a batch opens and a
# later one closes is inserted closed rather than inserted then updated, and the batch
# pays one commit; the batch's new versions are held in memory until then (~4 MB per
# real-size exchangeInfo document that changes 1,400 filters), and an interrupted import
# keeps every batch committed before it (importing again skips them).
IMPORT_BATCH = 25


@dataclass(frozen=True, slots=True)
class Joined:
    """A prepended archive's end: the versions it left open, closed at the first
    successful observation on record (``at``)."""

    at: datetime
    closed: dict[str, int]


def write_documents(
    engine: Engine, stream: str, parse: Parser, source: str, plan: Plan
) -> Generator[Recorded | Joined, None, None]:
    """Record each document of ``plan`` (oldest first) through the stream's writer;
    yields each once its batch is written.

    Appended, each batch of ``IMPORT_BATCH`` documents is a transaction, committed before
    its documents are yielded. Prepended, the whole archive is one transaction holding
    the stream's head (core.ingest.Prepending), planned again under it (another import may
    have gone first), and ends with where it Joined the history on record, once committed.
    """
    batches = _batches(plan.documents, stream, source)
    if not plan.prepend:
        writer = StreamWriter(engine, stream)
        try:
            for batch, upcoming in batches:
                yield from writer.record_many(batch, parse, upcoming)
        finally:
            writer.close()
        return
    with prepending(engine, stream) as history:
        again = plan_import(history.conn, stream, source, plan.documents)
        if [d.at for d in again.documents] != [d.at for d in plan.documents] or not again.prepend:
            raise ArchiveError(f"the {stream} history changed while the import was planned")
        try:
            for batch, upcoming in batches:
                yield from history.record(batch, parse, upcoming)
        finally:
            history.writer.close()
    if history.seam is not None:
        yield Joined(history.seam.observed_at, history.closed)


def _batches(
    documents: Sequence[Document], stream: str, source: str
) -> Iterator[tuple[list[Fetched], list[Fetched]]]:
    """``documents`` as fetched, ``IMPORT_BATCH`` at a time, each batch with the next one
    (empty at the end), which the writer plans while it writes the batch; made as they
    are needed, so that at most two batches' bodies are held twice (file and fetched)."""
    remaining = iter(documents)

    def batch() -> list[Fetched]:
        return [fetched_of(d, stream, source) for d in itertools.islice(remaining, IMPORT_BATCH)]

    current = batch()
    while current:
        upcoming = batch()
        yield current, upcoming
        current = upcoming
