"""``/openapi.json`` and ``/docs``: the generated spec and a Swagger UI page to read it.

flask-openapi3 runs with ``doc_ui=False``: its own UI machinery would mount a chooser
page at the prefix and every UI plugin installed in the environment (some load their
scripts from a CDN). Instead the spec is served from ``app.api_doc`` and exactly one UI,
flask-openapi3-swagger's, is mounted from its blueprint, whose Swagger UI assets ship in
the wheel: the page works offline and asks no third party for anything.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Response
from flask_openapi3.openapi import OpenAPI
from flask_openapi3_swagger.plugins import (  # no py.typed
    RegisterPlugin,
)

from api.params import query_model
from api.render import json_response

SPEC_URL = "/openapi.json"
DOCS_URL = "/docs"
# Answered by the server (api.server) before any route, so possible on every operation.
SERVER_ERRORS = (HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)


def with_server_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the server's own error answers listed on every operation."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status in SERVER_ERRORS:
                operation.setdefault("responses", {})[str(status.value)] = {
                    "description": status.phrase,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                }
    return document


def _openapi_path(rule: str) -> str:
    """``/v1/symbols/<symbol>/check`` -> ``/v1/symbols/{symbol}/check``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _present_or_absent(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without pydantic's ``null`` branches: in a query, None is absence."""
    properties = {}
    for name, declared in schema.get("properties", {}).items():
        prop = {k: v for k, v in declared.items() if not (k == "default" and v is None)}
        branches = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:
            prop = {**branches[0], **prop}
        elif branches:
            prop["anyOf"] = branches
        properties[name] = prop
    return {**schema, "properties": properties}


def with_query_rules(document: dict[str, Any], app: OpenAPI) -> dict[str, Any]:
    """``document`` with each query that has a rule across its parameters as one object.

    OpenAPI parameters are independent of each other, so a rule such as the order
    check's "quantity or quote_quantity" has no place among them. A query model states
    such a rule as a ``oneOf`` of its own schema, and its operation's query is described
    as one object in the exploded form style, which is the same query string.
    """
    for rule in app.url_map.iter_rules():
        model = query_model(app.view_functions[rule.endpoint])
        if model is None:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        if "oneOf" not in schema:
            continue
        document.setdefault("components", {}).setdefault("schemas", {}).update(
            schema.pop("$defs", {})
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = document["paths"][_openapi_path(rule.rule)][method.lower()]
            kept = [p for p in operation.get("parameters", []) if p["in"] != "query"]
            operation["parameters"] = [
                *kept,
                {
                    "name": "query",
                    "in": "query",
                    "required": bool(schema.get("required")),
                    "style": "form",
                    "explode": True,
                    "schema": _present_or_absent(schema),
                },
            ]
    return document


def register_docs(app: OpenAPI) -> None:
    def openapi_json() -> Response:
        return json_response(with_query_rules(with_server_errors(app.api_doc), app))

    app.add_url_rule(SPEC_URL, "openapi_json", openapi_json)
    # The plugin serves its page at /swagger and the assets at /swagger/...; the page
    # links them relatively, so the same page served at /docs finds them too.
    app.register_blueprint(RegisterPlugin.register(doc_url=SPEC_URL.lstrip("/")))
    app.add_url_rule(
        DOCS_URL, "docs", app.view_functions[f"{RegisterPlugin.name}.{RegisterPlugin.name}"]
    )
    # Swagger UI's default validatorUrl would send the spec's URL to validator.swagger.io.
    app.config["SWAGGER_CONFIG"] = {"validatorUrl": None}
