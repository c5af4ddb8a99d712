"""`exmeta serve`: the API under gunicorn (api/server.py), on a socket bound here or
handed over by `exmeta up`."""

from __future__ import annotations

import argparse
import logging
import socket

from core.config import Settings
from exmeta.database import api_database, api_engine
from exmeta.errors import CliError
from exmeta.settings import configured
from exmeta.supervise import ListenError, listen

log = logging.getLogger("exmeta")


def serve(args: argparse.Namespace) -> int:
    """Serve the API until gunicorn stops; a database the API cannot read is refused first."""
    from api.server import GunicornServer

    settings = configured(args)
    listener = _api_listener(settings, args.listen_fd)
    # gunicorn takes the descriptor over (and closes it when it stops).
    bind = f"fd://{listener.detach()}"
    with api_database(settings) as url:
        with api_engine(settings, url, "api"):
            pass  # refuse to start, in one line, rather than answer every request with a 503

        log.info("serving the API on http://%s:%d", settings.api.host, settings.api.port)
        GunicornServer(settings, url, bind).run()
    return 0


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
