"""Field paths of a JSON document, computed node by node: the tests' own answer to what
core.schema computes column by column, so that a test never checks the product with itself."""

from __future__ import annotations

from typing import Any

JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def paths_of(doc: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def visit(path: str, value: Any) -> None:
        if path:
            found.setdefault(path, set()).add(JSON_TYPES[type(value)])
        if isinstance(value, dict):
            for name, inner in value.items():
                visit(f"{path}.{name}" if path else name, inner)
        elif isinstance(value, list):
            for item in value:
                tag = item.get("filterType") if isinstance(item, dict) else None
                visit(f"{path}[{tag}]" if isinstance(tag, str) else f"{path}[]", item)

    visit("", doc)
    return found
