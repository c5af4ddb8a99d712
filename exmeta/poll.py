"""`exmeta poll`: one poller replica, wired to its database and stopped by a signal."""

from __future__ import annotations

import argparse
import logging

from sqlalchemy.exc import DBAPIError

from core.config import base_url
from core.db import create_db_engine, redact_url
from core.ingest import SourceMismatchError
from core.sources import source_of
from core.streams import CATALOGUE
from exmeta.database import database
from exmeta.errors import CliError, refusal
from exmeta.settings import configured
from exmeta.signals import stop_on_signals

log = logging.getLogger("exmeta")

SIGNAL_CHECK_SECONDS = 0.5


def poll(args: argparse.Namespace) -> int:
    """Poll until a signal; exit 1 if the poll loop crashed, 2 if a source is refused."""
    from poller.runner import build_poller, default_replica_id
    from poller.signed_jobs import UnsafeKeyError
    from poller.signing import SigningKeyError

    settings = configured(args)
    replica_id = args.replica_id or settings.poller.replica_id or default_replica_id()
    with database(settings) as url:
        engine = create_db_engine(
            url, settings.database, application_name=f"exmeta-poll {replica_id}"
        )
        try:
            poller = build_poller(settings, engine, replica_id, new_source=args.new_source)
        except SourceMismatchError as exc:
            engine.dispose()
            raise refusal(exc) from None
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
        stop_on_signals(poller.stop, announce=not args.supervised)
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
        raise refusal(poller.refused)
    return 1 if poller.crashed else 0
