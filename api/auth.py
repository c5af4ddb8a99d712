"""Bearer-token protection for the account routes (DESIGN §7).

Account data (commissions, balances) is private even when the rest is not. With no
``[api] token`` configured the account routes are switched off (403) rather than open:
forgetting the setting must never publish balances. Public routes that can also show
account data (the change feed, the diff) show it only to a caller with the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import request
from flask_openapi3.models.security_scheme import SecurityScheme

from api.errors import ApiError
from api.state import app_state

P = ParamSpec("P")
R = TypeVar("R")
PRIVATE = "exmeta_requires_token"

BEARER_SCHEME: dict[str, SecurityScheme | dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer"}
}


def check_token() -> None:
    """Refuse the request (403 with no token configured, else 401) unless it has the token."""
    expected = app_state().settings.api.token
    if not expected:
        raise ApiError(
            403,
            "forbidden",
            "account routes are disabled: set a bearer token in EXMETA_API__TOKEN"
            " ([api] token) and restart the API",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest on bytes: its str form refuses non-ASCII, which a caller may send.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.reveal().encode()
    ):
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            {"WWW-Authenticate": 'Bearer realm="exmeta"'},
        )


def authenticated() -> bool:
    """Whether the request carries the token; without an Authorization header, False.

    A header with a wrong token is refused like on the account routes: answering it as
    anonymous would hide a misconfigured client behind an answer that merely lacks the
    account's part.
    """
    if "Authorization" not in request.headers:
        return False
    check_token()
    return True


def require_token(view: Callable[P, R]) -> Callable[P, R]:
    """Make ``view`` private: only ``Authorization: Bearer <[api] token>`` reaches it.

    The check runs in ``api.intake``, before flask-openapi3 validates the parameters
    (which happens before any decorator of the view could run): a caller without the
    token learns that it needs one (401), not what the route would accept (400). The
    mark is copied onto the view flask-openapi3 registers, as ``functools.wraps`` does.
    """
    setattr(view, PRIVATE, True)
    return view


def is_private(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, PRIVATE, False))
