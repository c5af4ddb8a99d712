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
