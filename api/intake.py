"""What every request passes before its route: the token of a private route, then the
checks no parameter model can make.

flask-openapi3 validates a route's parameters before the view runs, and hands each model
only what it reads: the first value of a single-valued parameter. So the checks below
look at the request as it arrived:

- a private route (``api.auth.require_token``) refuses a caller without the token first,
  whatever its parameters (401 before 400);
- a NUL byte in the path or in any parameter is a 400: PostgreSQL's text cannot hold one
  (psycopg refuses it), so it would otherwise surface as a 500;
- a single-valued parameter given twice is a 400, not "the first one wins": an
  ``as_of`` repeated by a client that merged two query strings must not answer about an
  instant chosen by the order of its arguments. Parameters declared as lists (the change
  feed's ``field``) stay repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from flask import Flask, current_app, request

from api.auth import check_token, is_private
from api.errors import ApiError
from api.params import query_model

NUL = "\x00"


@cache
def single_valued(view: Callable[..., Any]) -> frozenset[str]:
    """The query parameters ``view`` reads once: the names flask-openapi3 reads with
    ``args.get`` (the model's fields whose schema is not an array), by the same rule."""
    model = query_model(view)
    if model is None:
        return frozenset()
    properties = model.model_json_schema().get("properties", {})
    names = set()
    for name, field in model.model_fields.items():
        schema = properties.get(field.alias or name, {})
        branches = [schema, *schema.get("anyOf", [])]
        if not any(branch.get("type") == "array" for branch in branches):
            names.add(field.alias or name)
    return frozenset(names)


def _check_request() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and is_private(view):
        check_token()
    args = request.args
    if NUL in request.path or any(NUL in k or NUL in v for k, v in args.items(multi=True)):
        raise ApiError(400, "invalid_parameter", "a NUL byte is not allowed in a path or parameter")
    if view is None:
        return
    repeated = sorted(name for name in single_valued(view) if len(args.getlist(name)) > 1)
    if repeated:
        raise ApiError(400, "invalid_parameter", f"given more than once: {', '.join(repeated)}")


def register_intake(app: Flask) -> None:
    app.before_request(_check_request)
