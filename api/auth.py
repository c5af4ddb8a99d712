"""Bearer-token protection for the account routes (DESIGN §7).

Account data (commissions, balances) is private even when the rest is not. With no
``[api] token`` configured the account routes are switched off (403) rather than open:
forgetting the setting must never publish balances.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import request
from flask_openapi3.models.security_scheme import SecurityScheme

from api.errors import ApiError
from api.state import app_state

P = ParamSpec("P")
R = TypeVar("R")

BEARER_SCHEME: dict[str, SecurityScheme | dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer"}
}


def _token_matches(expected: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest on bytes: its str form refuses non-ASCII, which a caller may send.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def authorized() -> bool:
    """Whether this request carries the configured bearer token (never, with none set).

    For public routes that may add private facts, such as the order check adding the
    account's permissions, to the callers who may see them.
    """
    expected = app_state().settings.api.token
    return bool(expected) and _token_matches(expected.reveal())


def require_token(view: Callable[P, R]) -> Callable[P, R]:
    """Let the request through only with ``Authorization: Bearer <[api] token>``."""

    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        expected = app_state().settings.api.token
        if not expected:
            raise ApiError(
                403,
                "forbidden",
                "account routes are disabled: set a bearer token in EXMETA_API__TOKEN"
                " ([api] token) and restart the API",
            )
        if not _token_matches(expected.reveal()):
            raise ApiError(
                401,
                "unauthorized",
                "a valid bearer token is required",
                {"WWW-Authenticate": 'Bearer realm="exmeta"'},
            )
        return view(*args, **kwargs)

    return guarded
