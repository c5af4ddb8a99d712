"""The shape of a Binance document: which field paths it has and which JSON types they hold.

What breaks client code is not a value but a shape: ``KeyError: 'MIN_NOTIONAL'`` came
from a filter type that Binance replaced, not from a changed number. So every public
stream's document is reduced to its field paths, each with the JSON types seen there,
and versioned like any entity (``schema_versions``, keyed by stream and path): a path
that appears or disappears, or whose types change, is a change in the feed and the diff.

Paths generalise arrays (``rateLimits[].intervalNum``: one path however many elements),
except that an object carrying a ``filterType`` is keyed by it
(``symbols[].filters[PRICE_FILTER].tickSize``): filter types are a tagged union whose
members have different fields, and a new member is exactly the drift a reader must see.
An array whose every element went away loses its ``[]`` path (``symbols[].permissions[]``
when Binance emptied ``permissions`` in every symbol). One array that is empty, though, is
data, not shape (an empty delist schedule): nothing was seen of its elements, and their
paths are ``unobserved``, kept as they were rather than closed. Values never enter the
shape, so it changes only when the API does, not when a rule does.

The walk goes column by column: the values of one path across every element are gathered
and their types taken together, so the path text is built once per distinct path, not
once per node (bench/schema_walk.py measures it against ``json.loads`` of the body).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

SCHEMA_TABLE = "schema_versions"
TAG = "filterType"  # the field that keys an object of an array into its own path
_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class DocumentShape:
    paths: dict[str, frozenset[str]]  # every path seen, with the JSON types seen at it
    unobserved: frozenset[str]  # arrays that occur once, empty: their elements unseen

    def observed(self, path: str) -> bool:
        """False for a path under an unobserved array: its absence is no evidence."""
        return not any(path.startswith(f"{array}[") for array in self.unobserved)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(path: str, values: list[Any], out: dict[str, set[str]], empty: set[str]) -> None:
    kinds = set(map(type, values))
    if path:
        out[path].update(_TYPE_NAMES[k] for k in kinds)
    if dict in kinds:
        for name, found in _fields(values).items():
            _walk(_child(path, name), found, out, empty)
    if list in kinds:
        items = list(chain.from_iterable(v for v in values if type(v) is list))
        if not items and len(values) == 1:
            empty.add(path)
        plain, tagged = _split_tagged(items)
        if plain:
            _walk(f"{path}[]", plain, out, empty)
        for tag, found in tagged.items():
            _walk(f"{path}[{tag}]", found, out, empty)


def _fields(values: list[Any]) -> dict[str, list[Any]]:
    """The values of each field of the objects among ``values``, field by field.

    Objects with the same fields in the same order (most of them: Binance builds them
    alike) are transposed at once into their columns.
    """
    alike: defaultdict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for obj in values:
        if type(obj) is dict:
            alike[tuple(obj)].append(obj)
    fields: defaultdict[str, list[Any]] = defaultdict(list)
    for names, objs in alike.items():
        # Every object of the group has exactly ``names``: its columns are as long.
        columns = zip(*(o.values() for o in objs), strict=True)
        for name, column in zip(names, columns, strict=True):
            fields[name].extend(column)
    return fields


def _split_tagged(items: list[Any]) -> tuple[list[Any], dict[str, list[Any]]]:
    """Array elements without a filterType, and those with one, by filterType."""
    if dict not in set(map(type, items)):  # lists of strings: no element has a tag
        return items, {}
    plain: list[Any] = []
    tagged: defaultdict[str, list[Any]] = defaultdict(list)
    for item in items:
        tag = item.get(TAG) if type(item) is dict else None
        if isinstance(tag, str):
            tagged[tag].append(item)
        else:
            plain.append(item)
    return plain, tagged


def document_shape(doc: Any) -> DocumentShape:
    """Every field path of a parsed JSON document with the JSON types seen at it.

    The root itself has no path: its children are ``name`` for an object, ``[]`` for an
    array (and an empty array at the root is an unobserved one, path ``""``).
    """
    out: defaultdict[str, set[str]] = defaultdict(set)
    empty: set[str] = set()
    _walk("", [doc], out, empty)
    paths = {path: frozenset(types) for path, types in out.items()}
    return DocumentShape(paths, frozenset(empty))


def schema_object(types: frozenset[str]) -> dict[str, Any]:
    """A path's version content: its types, sorted so that equal shapes hash alike."""
    return {"types": sorted(types)}


def schema_row(src: Mapping[str, Any]) -> dict[str, Any]:
    return {"types": list(src["types"])}
