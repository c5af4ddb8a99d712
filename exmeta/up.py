"""`exmeta up`: database, migrations, the API and one poller, stopped together by Ctrl-C.

How the children are kept alive and stopped: exmeta/supervise.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from core.config import Settings
from core.ingest import SourceMismatchError, claim_sources
from exmeta.database import database, engine, migrate
from exmeta.errors import CliError, refusal
from exmeta.settings import configured
from exmeta.signals import stop_on_signals
from exmeta.supervise import ListenError, Supervisor, listen, probe_address

UP_TIMEOUT = 60  # seconds for the API's first answer; gunicorn boots in 1-2 s
STOP_MARGIN = 5  # seconds


def up(args: argparse.Namespace) -> int:
    """Run everything until Ctrl-C; exit 1 if a child failed."""
    settings = configured(args)
    try:
        listener = listen(settings.api.host, settings.api.port)
    except ListenError as exc:
        raise CliError(str(exc), 2) from None
    address = probe_address(listener.getsockname()[:2])
    with listener, database(settings) as url:
        migrate(settings, url)
        _claim_sources(settings, url, new_source=args.new_source)
        stop = threading.Event()
        stop_on_signals(stop)
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
            failed = supervisor.shutdown(_stop_timeout(settings)) or failed
    return 1 if failed else 0


def _stop_timeout(settings: Settings) -> float:
    """The poller's own bound on a graceful stop (README, "a replica stops gracefully"),
    plus a margin; gunicorn's graceful_timeout fits in it."""
    return (
        settings.poller.shutdown_grace_seconds
        + settings.database.statement_timeout_seconds
        + STOP_MARGIN
    )


def _claim_sources(settings: Settings, url: str, *, new_source: bool) -> None:
    """`exmeta up` checks the sources itself, before starting anything: a mismatch is
    its own one line and exit 2, and with ``--new-source`` the switch is made here, once,
    so the poller it starts (and restarts) finds its sources already claimed."""
    from poller.runner import default_replica_id

    with engine(settings, url, "up") as built:
        try:
            claim_sources(
                built, settings.stream_sources(), default_replica_id(), new_source=new_source
            )
        except SourceMismatchError as exc:
            raise refusal(exc) from None
