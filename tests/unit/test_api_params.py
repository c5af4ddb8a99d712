"""Query and path parameters of the API, and how their refusals become error bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from api.errors import validation_error_response
from api.params import (
    AsOfQuery,
    HistoryQuery,
    ObservationsQuery,
    SymbolPath,
    SymbolsQuery,
    parse_time,
)
from core.models import OUTCOMES


def refusal(model: type[BaseModel], data: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """The status and error object the API answers when ``model`` refuses ``data``."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    response = validation_error_response(caught.value)
    body = orjson.loads(response.get_data())
    assert set(body) == {"error"}
    return response.status_code, body["error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123Z", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("1714564800000", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_as_of_accepts_rfc3339_with_offset_and_epoch_milliseconds(
    text: str, expected: datetime
) -> None:
    parsed = AsOfQuery.model_validate({"as_of": text}).as_of
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() is not None


def test_as_of_defaults_to_none_meaning_now() -> None:
    assert AsOfQuery.model_validate({}).as_of is None


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00",  # naive: which zone?
        "2024-05-01",
        "now",
        "infinity",
        "-infinity",
        "10000-01-01T00:00:00Z",
        "2024-01-01T00:00:00+25:00",
        "2024-02-30T00:00:00Z",
        "",
        "1" * 65,
        "2024-05-01T12:00:00Z" + " " * 10_000,
        "'; DROP TABLE symbol_versions; --",
    ],
)
def test_as_of_refuses_ambiguous_or_out_of_range_text(text: str) -> None:
    status, error = refusal(AsOfQuery, {"as_of": text})
    assert status == 400
    assert error["code"] == "invalid_time"
    assert error["message"].startswith("as_of: ")
    assert len(error["message"]) < 300


def test_parse_time_refuses_what_is_not_text() -> None:
    status, error = refusal(AsOfQuery, {"as_of": 1714564800000})
    assert (status, error["code"]) == (400, "invalid_time")
    assert parse_time("100000000000") == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)


def test_unknown_parameters_are_refused_by_name() -> None:
    status, error = refusal(SymbolsQuery, {"asof": "2024-05-01T12:00:00Z"})
    assert status == 400
    assert error == {"code": "unknown_parameter", "message": "unknown parameter asof"}


def test_symbol_filters_must_not_be_empty_or_huge() -> None:
    assert SymbolsQuery.model_validate({"status": "HALT"}).status == "HALT"
    for value in ("", "X" * 65):
        status, error = refusal(SymbolsQuery, {"status": value})
        assert (status, error["code"]) == (400, "invalid_parameter")
        assert error["message"].startswith("status: ")


def test_window_reads_from_and_to() -> None:
    query = HistoryQuery.model_validate({"from": "2024-01-01T00:00:00Z", "to": "1704067201000"})
    assert query.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert query.end == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert HistoryQuery.model_validate({}).start is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"),  # the same instant
    ],
)
def test_window_refuses_from_not_before_to(start: str, end: str) -> None:
    status, error = refusal(ObservationsQuery, {"from": start, "to": end})
    assert status == 400
    assert error == {"code": "invalid_window", "message": "from must be before to"}


def test_window_fields_are_not_accepted_by_their_python_names() -> None:
    _, error = refusal(HistoryQuery, {"start": "2024-01-01T00:00:00Z"})
    assert error["code"] == "unknown_parameter"


def test_bad_from_is_an_invalid_time_naming_from() -> None:
    _, error = refusal(HistoryQuery, {"from": "yesterday"})
    assert error["code"] == "invalid_time"
    assert error["message"].startswith("from: ")


def test_observation_limit_defaults_and_bounds() -> None:
    assert ObservationsQuery.model_validate({}).limit == 1000
    assert ObservationsQuery.model_validate({"limit": "10000"}).limit == 10000
    assert ObservationsQuery.model_validate({"limit": "1"}).limit == 1
    for value in ("0", "-1", "10001", "abc", "", "1.5"):
        status, error = refusal(ObservationsQuery, {"limit": value})
        assert (status, error["code"]) == (400, "invalid_parameter"), value
        assert error["message"].startswith("limit: ")


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_observation_outcome_accepts_every_known_outcome(outcome: str) -> None:
    assert ObservationsQuery.model_validate({"outcome": outcome}).outcome == outcome


def test_observation_outcome_refuses_others_and_lists_the_known_ones() -> None:
    status, error = refusal(ObservationsQuery, {"outcome": "ok"})
    assert status == 400
    assert error == {
        "code": "invalid_parameter",
        "message": "outcome: must be one of changed, unchanged, stale, error, switched",
    }


def test_observation_outcome_is_documented_as_an_enum() -> None:
    schema = ObservationsQuery.model_json_schema()
    assert schema["properties"]["outcome"]["enum"] == list(OUTCOMES)


def test_several_refusals_are_reported_together() -> None:
    _, error = refusal(ObservationsQuery, {"limit": "0", "outcome": "ok"})
    assert "limit: " in error["message"]
    assert "outcome: " in error["message"]


@pytest.mark.parametrize("name", ["BTCUSDT", "1000SATSUSDT", "币安人生USDT", "A", "X" * 64])
def test_symbol_path_accepts_any_text_of_1_to_64_characters(name: str) -> None:
    assert SymbolPath.model_validate({"symbol": name}).symbol == name


@pytest.mark.parametrize("name", ["", "X" * 65, "X" * 10_240])
def test_symbol_path_refuses_empty_or_longer_than_64(name: str) -> None:
    status, error = refusal(SymbolPath, {"symbol": name})
    assert (status, error["code"]) == (400, "invalid_parameter")
    assert "X" * 65 not in error["message"]
