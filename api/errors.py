"""Every error is JSON ``{"error": {"code", "message"}}``: never HTML, never a traceback.

Bad input is a 4xx that names the parameter; a database that does not answer is a 503
(the caller may retry); anything else is a 500 with a generic message, while the
traceback goes to the log where an operator, not a caller, can read it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from flask import Flask, Response, current_app, has_request_context, request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from api.params import query_model
from api.render import json_response
from core.suggestions import did_you_mean

log = logging.getLogger(__name__)

VALIDATION_STATUS = 400
# Error types raised by api.params that are already the code to report.
_OWN_CODES = frozenset({"invalid_time", "invalid_window", "invalid_parameter"})
_MAX_MESSAGES = 5


class ApiError(Exception):
    """An answer that is an error: raised by routes, rendered by the handler below."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one shape of every error, whoever answers (Flask, or gunicorn's api.server)."""
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response(error_body(code, message), status, headers)


def validation_error_response(exc: ValidationError) -> Response:
    """flask-openapi3's ``validation_error_callback``: a 400 naming what was wrong.

    The first error decides the code; the input is never echoed (it may be 10 KB long).
    """
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]["type"] if errors else ""
    if first in _OWN_CODES:
        code = first
    elif first == "extra_forbidden":
        code = "unknown_parameter"
    else:
        code = "invalid_parameter"
    messages = []
    for error in errors[:_MAX_MESSAGES]:
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            messages.append(f"unknown parameter {where}{did_you_mean(where, _parameters())}")
        else:
            messages.append(f"{where}: {error['msg']}" if where else error["msg"])
    return error_response(VALIDATION_STATUS, code, "; ".join(messages))


def _parameters() -> list[str]:
    """The query parameters of the route asked, as a caller spells them (none known when a
    model is validated outside a request)."""
    if not has_request_context():
        return []
    view = current_app.view_functions.get(request.endpoint or "")
    model = query_model(view) if view is not None else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    # Keep headers such as Allow on a 405; the body is ours, so drop its content type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    status = exc.code or 500
    return error_response(status, _snake(exc.name), exc.description or exc.name, headers)


def _database_unavailable(exc: Exception) -> Response:
    log.warning("database unavailable during %s %s", request.method, request.path, exc_info=exc)
    return error_response(503, "database_unavailable", "the database is not answering; retry later")


def _unexpected(exc: Exception) -> Response:
    log.error("unexpected error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeoutError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
