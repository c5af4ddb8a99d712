"""core.bodies.load_document: whole bodies parsed once per write, never leniently."""

from __future__ import annotations

import json

import pytest

from core.bodies import documents_shared, load_document

BODY = b'{"timezone": "UTC", "symbols": [{"symbol": "BTCUSDT", "filters": []}]}'


def test_within_a_write_every_reader_of_a_body_gets_the_one_document() -> None:
    with documents_shared():
        first = load_document(BODY)
        assert load_document(BODY) is first
        # Equal bytes in another object are another body: no false sharing by content.
        assert load_document(bytes(bytearray(BODY))) is not first
    assert load_document(BODY) is not first  # nothing held after the write
    assert load_document(BODY) == first


def test_each_call_parses_afresh_outside_a_write() -> None:
    assert load_document(BODY) is not load_document(BODY)


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_the_constants_json_does_not_have_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match="is not JSON"):
        load_document(body)


def test_a_truncated_body_is_refused() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_document(BODY[:-1])
