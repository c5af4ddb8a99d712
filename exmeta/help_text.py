"""What `exmeta --help` and `exmeta COMMAND --help` say: a summary line, a paragraph and
an example per command, kept apart from the parser so that the words can be read (and
reviewed) in one place."""

from __future__ import annotations

from dataclasses import dataclass

from core.replicas import PRUNE_AFTER_DAYS


@dataclass(frozen=True, slots=True)
class CommandHelp:
    summary: str  # its line in `exmeta --help`
    description: str  # the paragraph of `exmeta COMMAND --help`
    example: str  # a command line to paste

    def epilog(self) -> str:
        return f"example:\n  {self.example}"


DESCRIPTION = """\
Versioned history of Binance spot and futures metadata in PostgreSQL, with an as-of
HTTP API. Settings come from config.toml (or --config) and EXMETA_<SECTION>__<KEY>
variables; with no [database] url an embedded PostgreSQL is started."""

EPILOG = """\
exit status:
  0  done (verify: no findings; check: the order passes)
  1  a negative answer: verify found problems, check rejects the order, asof/diff
     found nothing listed or observed
  2  bad configuration or input, or a database that cannot be reached or read
     (verify: the history could not be checked)

example:
  exmeta up                      # embedded PostgreSQL, poller and API on :8000
  exmeta sim --port 9900         # an offline Binance look-alike (README, Offline)"""

COMMANDS: dict[str, CommandHelp] = {
    "migrate": CommandHelp(
        "create or upgrade the database schema",
        """\
Create the tables, views and roles in the configured database, or upgrade them to this
version's schema (Alembic). Safe to run from several hosts at once; `up` runs it
itself. Prints "database schema is up to date" when done.""",
        "EXMETA_DATABASE__URL=postgresql://exmeta:secret@db:5432/exmeta exmeta migrate",
    ),
    "poll": CommandHelp(
        "run one poller replica",
        """\
Poll Binance on every enabled stream's interval and record each poll as an observation,
and each change as new versions. Any number of replicas may share one database: leases
give each slot to one of them. SIGTERM or SIGINT stop it after the write in progress
(exit 0). A stream whose history belongs to another source than the configured base URL
is refused (exit 2) unless --new-source.""",
        "exmeta poll --replica-id host-a",
    ),
    "serve": CommandHelp(
        "serve the HTTP API",
        """\
Serve the read-only HTTP API under gunicorn on [api] host:port ([api] workers x
threads), acting as the role exmeta_api. /docs has the interactive reference, /healthz
and /readyz are the probes. A port in use, or a login that cannot act as the role, is
one line and exit 2.""",
        "EXMETA_API__PORT=8080 exmeta serve",
    ),
    "up": CommandHelp(
        "embedded database + migrate + poll + serve, for a laptop",
        """\
Start everything on one machine: PostgreSQL (embedded unless [database] url is set),
the migrations, one poller and the API, and print "exmeta is up" once the API answers.
Ctrl-C stops all of it in a few seconds. Offline, point [binance] base_url and the
futures URLs at `exmeta sim`.""",
        "EXMETA_BINANCE__BASE_URL=http://127.0.0.1:9900 exmeta up",
    ),
    "verify": CommandHelp(
        "check the whole history; exit 0 sound, 1 findings, 2 cannot check",
        """\
Check every version table as the database holds it: no overlapping versions, no
gaps, no version without the observation that opened it, observations in order, none
dated ahead of the database clock. Exit 0 when sound, 1 with findings (one
line each), 2 when the check cannot run (configuration, unreachable or unmigrated
database).""",
        "EXMETA_DATABASE__STATEMENT_TIMEOUT_SECONDS=600 exmeta verify",
    ),
    "compact": CommandHelp(
        "fold old unchanged polls into runs now (the pollers do it every hour)",
        """\
Fold each stream's unchanged successful polls older than [poller]
observation_detail_hours (or --older-than-hours) into runs that keep every poll's id
and instant, so every as-of answer's evidence stays exact, and drop their detail
(requested_at, duration, used weight, attempts, back-off). Safe while pollers run and
with other replicas folding; running it again folds nothing new. Exit 0 done, 2 when it
cannot run (configuration, unreachable or unmigrated database).""",
        "exmeta compact --older-than-hours 24",
    ),
    "replicas": CommandHelp(
        "list the live poller replicas (--all: stopped ones too)",
        f"""\
List the poller replicas that have not stopped: running, or silent (no heartbeat for 3
x [poller] heartbeat_seconds: dead, frozen or cut off), with version, start, last
heartbeat and the leases each holds now. --all adds those that stopped gracefully.
Replicas not seen for {PRUNE_AFTER_DAYS} days are deleted when another replica starts.""",
        "exmeta replicas --all",
    ),
    "asof": CommandHelp(
        "the symbols' rules at an instant, like GET /v1/symbols?as_of=",
        """\
Print the rules in force at TIME of the symbols named (every symbol if none): status,
tick size, price bounds, step size, quantity bounds, min notional and validity, under
the evidence of the polls around TIME. Not listed or not observed then: exit 1.
--wallet: the names are coins, and each is shown with the networks it could be deposited
and withdrawn by at TIME; --margin cross|isolated: the margin pairs then.""",
        "exmeta asof 2026-11-24T10:00:00Z BTCUSDT ETHBTC",
    ),
    "check": CommandHelp(
        "would this order have been accepted at --at (exit 0) or not (exit 1)",
        """\
Check an order against the rules in force at --at (default now), as GET
/v1/symbols/{symbol}/check does: the verdict, the rules broken with the numbers that
decided them, the rules not checked, and the nearest valid price and quantity.""",
        "exmeta check BTCUSDT --side BUY --type LIMIT --quantity 0.1 --price 100.01",
    ),
    "changes": CommandHelp(
        "the changes in [--from, --to), like GET /v1/changes",
        """\
Print every change in the window (default: the last hour) field by field, every page,
as a table of changed_at, entity, key, field, old and new; --json prints JSON Lines.
With [api] token configured the account's changes are included.""",
        "exmeta changes --from 2026-11-24T00:00:00Z --symbol ETHBTC --field status",
    ),
    "diff": CommandHelp(
        "how the state at --to differs from the state at --from, like GET /v1/diff",
        """\
Print each entity added, removed, or changed field by field between the state at --from
and the state at --to (default now). A change undone in between is no difference: the
steps are in `exmeta changes`. Nothing observed by --from: exit 1.""",
        "exmeta diff --from 2026-11-24T00:00:00Z",
    ),
    "export": CommandHelp(
        "write a market's rule history to Parquet or CSV files, for backtests",
        """\
Write three files into --out: {market}_symbols (one row per stretch of unchanged rules of
a symbol, valid_from to valid_to, with its typed columns and tick size, price, lot and
notional limits), {market}_filters (every filter version) and {market}_changes (the
change feed of the window). Rows are the versions in force at some instant of [--from,
--to), with their whole validity ranges; with none, the files hold their columns and no
rows. Refused (exit 2) before anything is written: a symbol never listed, or listed only
outside the window, and a directory where a file goes. A failed export leaves --out as it
was. README, Exporting for backtests.""",
        "exmeta export --market spot --out ./rules --from 2026-01-01T00:00:00Z --symbols BTCUSDT",
    ),
    "import": CommandHelp(
        "write archived responses into a stream's history, before or after it",
        """\
Read archived responses (JSON, optionally gzipped: files, or every *.json and *.json.gz
of a directory; or with --git REPO --path FILE every commit that touched FILE, dated by
its committer time), date each by its serverTime (else --manifest, --at for one file, or
an instant in the file's name such as 2024-03-01, 20240301T120000Z or epoch ms; README,
Importing history), and record them oldest first as the poller would have, each
observation marked with its file. Documents already on record are skipped, so importing
twice changes nothing (one unlike what is on record at its instant is refused, exit 2).
The rest go wholly after the stream's history (before any live poll) or wholly before
its first observation (live polls or not; the stream's polls wait meanwhile); an archive
reaching into the history, past the first live poll or the present, or holding another
market's exchangeInfo, is refused (exit 2); documents overtaken by another import or a
poll while it writes are reported stale (exit 2). Error bodies become error observations
that close nothing. Ends with one summary line; Ctrl-C ends it (exit 130) with the line
of what its committed batches wrote.""",
        "exmeta import --stream exchange_info ./archive/",
    ),
    "sim": CommandHelp(
        "run the Binance look-alike (see `exmeta sim --help`)",
        """\
Serve Binance's spot and futures exchangeInfo, time, ping, the signed account
endpoints, the system status and the delist schedule from fixtures on a local port,
with a control API under /_sim/ to change them and inject faults. Prints its URL.""",
        "exmeta sim --port 9900",
    ),
}
