"""The HTTP API (DESIGN §7): a Flask application over core's read functions."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI
from sqlalchemy import Engine

from api.account import account_v1
from api.auth import BEARER_SCHEME
from api.console import console
from api.docs import register_docs
from api.errors import VALIDATION_STATUS, register_error_handlers, validation_error_response
from api.health import probes
from api.intake import register_intake
from api.margin import margin_v1
from api.metrics import register_metrics
from api.routes import v1
from api.schemas import ErrorResponse
from api.state import EXTENSION, AppState
from core.clock import Clock, utc_now
from core.config import Settings

__all__ = ["create_app"]

API_DESCRIPTION = (
    "Binance spot metadata, versioned: the rules in force at any instant, with the"
    " evidence (the observations around it) that says how sure the answer is."
)


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock | None = None,
    streams: Sequence[str] = ("exchange_info",),
) -> Flask:
    """The API application over ``engine``; ``streams`` are the polled ones readyz checks."""
    unknown = set(streams) - settings.stream_intervals().keys()
    if unknown:
        raise ValueError(f"unknown streams: {', '.join(sorted(unknown))}")
    app = OpenAPI(
        __name__,
        info=Info(title="exmeta", version="1", description=API_DESCRIPTION),
        security_schemes=BEARER_SCHEME,
        validation_error_status=VALIDATION_STATUS,
        validation_error_model=ErrorResponse,
        validation_error_callback=validation_error_response,
        doc_ui=False,
    )
    state = AppState(settings, engine, clock or utc_now, tuple(streams))
    app.extensions[EXTENSION] = state
    register_intake(app)
    app.register_api(v1)
    app.register_api(account_v1)
    app.register_api(margin_v1)
    app.register_api(probes)
    register_docs(app)
    app.register_blueprint(console)
    register_metrics(app, state)
    register_error_handlers(app)
    return app
