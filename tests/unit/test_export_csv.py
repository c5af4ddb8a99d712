"""The export's CSV spells lists as the JSON arrays orjson writes, escapes included."""

from __future__ import annotations

import orjson
import pyarrow as pa

from exmeta.export import _json_arrays


def test_lists_are_json_arrays_with_every_escape() -> None:
    lists = [["SPOT", "MARGIN"], ['a"b', "c\\d", "e\x01\n\tf", "é"], [], None, [""]]
    values = pa.chunked_array([pa.array(lists, pa.list_(pa.string()))])
    assert _json_arrays(values).to_pylist() == [
        None if v is None else orjson.dumps(v).decode() for v in lists
    ]


def test_a_slice_of_lists_is_its_own_rows() -> None:
    """A piece of a column (the CSV is encoded piece by piece) spells its rows alone."""
    lists = [["A"], None, ['b"c', "d"], [], ["e", "f", "g"], None, ["h"]]
    values = pa.array(lists, pa.list_(pa.string()))
    for start in range(len(lists)):
        for length in range(len(lists) - start + 1):
            piece = pa.chunked_array([values.slice(start, length)], values.type)
            assert _json_arrays(piece).to_pylist() == [
                None if v is None else orjson.dumps(v).decode()
                for v in lists[start : start + length]
            ]
