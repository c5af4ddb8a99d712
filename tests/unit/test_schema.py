"""The shape of a document (core.schema): its field paths and their JSON types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.schema import document_shape
from tests.schema_paths import paths_of

DRIFT = Path(__file__).parent.parent / "fixtures" / "drift"
FIXTURES = sorted(DRIFT.glob("*.json"))
USDM = sorted(DRIFT.glob("usdm_*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def test_arrays_are_generalised_and_filters_keyed_by_their_type() -> None:
    doc = {
        "rateLimits": [{"intervalNum": 1}, {"intervalNum": 5}],
        "symbols": [
            {
                "symbol": "A",
                "permissions": [],
                "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}],
            },
            {"symbol": 7, "permissions": [], "filters": [{"filterType": "NOTIONAL"}]},
        ],
    }
    assert document_shape(doc).paths == {
        "rateLimits": {"array"},
        "rateLimits[]": {"object"},
        "rateLimits[].intervalNum": {"integer"},
        "symbols": {"array"},
        "symbols[]": {"object"},
        "symbols[].symbol": {"string", "integer"},
        "symbols[].permissions": {"array"},  # emptied everywhere: no `permissions[]`
        "symbols[].filters": {"array"},
        "symbols[].filters[PRICE_FILTER]": {"object"},
        "symbols[].filters[PRICE_FILTER].filterType": {"string"},
        "symbols[].filters[PRICE_FILTER].tickSize": {"string"},
        "symbols[].filters[NOTIONAL]": {"object"},
        "symbols[].filters[NOTIONAL].filterType": {"string"},
    }


def test_objects_with_different_fields_all_count() -> None:
    doc = [{"a": 1, "b": None}, {"b": True, "a": 1.5}, {"c": [[1]]}]
    assert document_shape(doc).paths == {
        "[]": {"object"},
        "[].a": {"integer", "number"},
        "[].b": {"null", "boolean"},
        "[].c": {"array"},
        "[].c[]": {"array"},
        "[].c[][]": {"integer"},
    }


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_the_shape_of_real_documents_is_every_path_seen_node_by_node(path: Path) -> None:
    doc = load(path)
    assert document_shape(doc).paths == paths_of(doc)


def _filter_types(doc: Any) -> set[str]:
    return {f["filterType"] for s in doc["symbols"] for f in s["filters"]}


def test_usdm_lost_settle_plan_and_gained_position_risk_control() -> None:
    first, *_, last = (load(p) for p in USDM)
    assert any("settlePlan" in s for s in first["symbols"])
    assert not any("settlePlan" in s for s in last["symbols"])
    assert "POSITION_RISK_CONTROL" in _filter_types(last) - _filter_types(first)
    before, after = document_shape(first).paths, document_shape(last).paths
    assert "symbols[].settlePlan" in before.keys() - after.keys()
    assert "symbols[].filters[POSITION_RISK_CONTROL]" in after.keys() - before.keys()
    assert "symbols[].permissionSets" in after.keys() - before.keys()


def test_a_lone_empty_array_leaves_its_elements_unobserved() -> None:
    shape = document_shape({"exchangeFilters": [], "symbols": [{"a": []}, {"a": []}]})
    assert shape.unobserved == {"exchangeFilters"}  # `a` is empty in every symbol: shape
    assert not shape.observed("exchangeFilters[EXCHANGE_MAX_NUM_ORDERS].maxNumOrders")
    assert shape.observed("exchangeFilters")
    assert shape.observed("symbols[].a[]")
    empty_schedule = document_shape([])
    assert empty_schedule.paths == {}
    assert not empty_schedule.observed("[].delistTime")
