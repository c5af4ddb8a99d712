"""Field-by-field differences between two versions of an entity (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


def flatten(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Nested objects' fields lifted to the top as ``parent.child`` (one level deep).

    The account and commission objects nest their rates (``commissionRates.maker``,
    ``standardCommission.taker``); a reader wants the one rate that changed, not both
    whole objects. Lists stay values: a permission list is one field.
    """
    if obj is None:
        return None
    flat: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{sub}": inner for sub, inner in value.items()})
        else:
            flat[name] = value
    return flat


def diff_objects(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, prefix: str = ""
) -> list[FieldChange]:
    """Changed top-level fields of two JSON objects, sorted by name; None means absent."""
    before = old or {}
    after = new or {}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a != b:
            changes.append(FieldChange(f"{prefix}{name}", a, b))
    return changes
