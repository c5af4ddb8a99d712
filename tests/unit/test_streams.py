"""The stream catalogue is whole, and what derives from it agrees with it."""

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import get_args

import orjson
import pytest
from pydantic import ValidationError

from api import schemas
from api.params import ChangesQuery, ObservationsQuery
from binance_sim.state import ENDPOINT_WEIGHTS, Market, default_fixture
from core import streams
from core.config import PollerSettings, load_settings
from core.ingest import InvalidPayloadError
from core.models import VERSIONED_TABLES, typed_columns
from core.streams import CATALOGUE, FEED_ENTITIES, STREAMS
from poller.job import resolve_parser

REPO = Path(__file__).resolve().parents[2]
# What a parser accepts: every one refuses a body that is not its document.
NOT_A_DOCUMENT = b"<html>Service Unavailable</html>"


@pytest.mark.parametrize("declared", CATALOGUE, ids=STREAMS)
def test_every_declared_parser_resolves_and_refuses_a_non_document(
    declared: streams.Stream,
) -> None:
    parse = resolve_parser(declared.parser)
    with pytest.raises(InvalidPayloadError):
        parse(NOT_A_DOCUMENT)


def test_names_are_unique_and_markets_known() -> None:
    assert len(set(STREAMS)) == len(STREAMS)
    assert {s.market for s in CATALOGUE} <= set(streams.MARKETS)


@pytest.mark.parametrize("declared", streams.MARKET_DECLARATIONS, ids=streams.MARKETS)
def test_every_market_reads_the_tables_its_exchange_info_stream_writes(
    declared: streams.Market,
) -> None:
    writer = streams.stream(declared.exchange_info)
    assert writer.market == declared.name
    tables = (declared.symbols, declared.filters, declared.rate_limits, declared.exchange_filters)
    assert {*tables, *filter(None, [declared.assets])} == set(writer.tables)
    assert streams.market(declared.name) is declared


def test_every_interval_setting_is_a_poller_setting_in_config_toml_and_no_other_exists() -> None:
    committed = tomllib.loads((REPO / "config.toml").read_text())["poller"]
    declared = {s.interval_setting for s in CATALOGUE}
    interval_fields = {f.name for f in fields(PollerSettings) if f.name.endswith("_interval")}
    assert declared == interval_fields
    assert declared <= committed.keys()
    settings = load_settings(None, {})
    assert settings.stream_intervals() == {
        s.name: getattr(settings.poller, s.interval_setting) for s in CATALOGUE
    }


def test_every_versioned_table_belongs_to_exactly_one_stream_or_is_shared() -> None:
    written = [t for s in CATALOGUE for t in s.tables]
    assert sorted([*written, *streams.SHARED_TABLES]) == sorted(VERSIONED_TABLES)
    assert VERSIONED_TABLES[streams.SCHEMA_FEED.table].__key__[0] == "stream"  # whose shape
    for s in CATALOGUE:
        assert {f.table for f in s.feed} <= set(s.tables), s.name
        for f in s.feed:
            key = VERSIONED_TABLES[f.table].__key__
            assert f.feed_key is None or key[: len(f.feed_key)] == f.feed_key, f.table


def test_the_private_rule_covers_exactly_the_private_streams_tables() -> None:
    assert {t for s in CATALOGUE if s.private for t in s.tables} == streams.PRIVATE_TABLES
    assert set(streams.PUBLIC_STREAMS) | streams.PRIVATE_STREAMS == set(STREAMS)
    assert not set(streams.PUBLIC_STREAMS) & streams.PRIVATE_STREAMS


def test_weights_are_those_the_sim_charges_for_the_same_paths() -> None:
    """binance_sim describes Binance on its own (notes §2): the two must agree."""
    assert {s.name: ENDPOINT_WEIGHTS[s.path] for s in CATALOGUE} == {
        s.name: s.weight for s in CATALOGUE
    }


def test_the_api_enums_are_the_catalogue() -> None:
    for query in (ChangesQuery, ObservationsQuery):
        assert query.model_json_schema()["properties"]["stream"]["enum"] == list(STREAMS)
    change = schemas.Change.model_json_schema()["properties"]
    assert change["stream"]["enum"] == list(STREAMS)
    assert change["entity"]["enum"] == list(FEED_ENTITIES)
    feed = schemas.ChangeFeed.model_json_schema()["properties"]["streams"]
    assert feed["items"]["enum"] == list(STREAMS)


def test_answers_naming_an_undeclared_stream_or_entity_do_not_validate() -> None:
    change = {
        "changed_at": "2024-05-01T12:00:00.000Z",
        "observed_before": None,
        "observation_id": 1,
        "stream": "exchange_info",
        "entity": "symbol",
        "key": "BTCUSDT",
        "field": "status",
        "old": "TRADING",
        "new": "BREAK",
    }
    schemas.Change.model_validate(change)
    for wrong in ({"stream": "margin"}, {"entity": "balance"}):
        with pytest.raises(ValidationError):
            schemas.Change.model_validate({**change, **wrong})


def test_an_undeclared_stream_name_is_a_key_error() -> None:
    assert streams.stream("system_status").path == "/sapi/v1/system/status"
    with pytest.raises(KeyError):
        streams.stream("margin")


@pytest.mark.parametrize(
    ("market", "answer"),
    [("spot", schemas.StateDiff), ("usdm", schemas.FuturesStateDiff)],
)
def test_the_diff_answer_documents_every_section_and_only_private_ones_may_be_null(
    market: str, answer: type[schemas.Model]
) -> None:
    # By their names in the answer: `schema` is the alias of `schema_diff` (pydantic's own).
    documented = {f.alias or n: f for n, f in answer.model_fields.items()}
    sections = streams.diff_sections(market)
    assert set(documented) - {"from", "to", "evidence", "market"} == set(sections)
    nullable = {name for name in sections if type(None) in get_args(documented[name].annotation)}
    private = {f.diff for s in CATALOGUE if s.private for f in s.feed if f.diff is not None}
    # A section only one futures market has (USD-M's assets) is absent from the other's.
    only_some = {"assets"} if market != "spot" else set()
    assert nullable == (private if market == "spot" else only_some)


def test_coinm_diff_sections_are_usdm_s_without_assets() -> None:
    assert set(streams.diff_sections("usdm")) - set(streams.diff_sections("coinm")) == {"assets"}


SIM_DATA = REPO / "binance_sim" / "data"
# The sim's document has no exchange filters: one is added, so that every table has a row.
EXCHANGE_FILTERS = {
    "exchangeFilters": [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000}]
}
EXCHANGE_INFO = {**orjson.loads((SIM_DATA / "exchange_info.json").read_bytes()), **EXCHANGE_FILTERS}
# The futures documents have no exchange filters either (USD-M's is `[]` in every capture).
USDM_EXCHANGE_INFO = {**orjson.loads(default_fixture(Market.USDM)), **EXCHANGE_FILTERS}
COINM_EXCHANGE_INFO = {**orjson.loads(default_fixture(Market.COINM)), **EXCHANGE_FILTERS}
# One real-shaped body per declared stream: a stream declared without one fails below.
SAMPLE_BODIES = {
    "exchange_info": orjson.dumps(EXCHANGE_INFO),
    "usdm_exchange_info": orjson.dumps(USDM_EXCHANGE_INFO),
    "coinm_exchange_info": orjson.dumps(COINM_EXCHANGE_INFO),
    "account": (SIM_DATA / "account.json").read_bytes(),
    "account_commission": b"[" + (SIM_DATA / "account_commission.json").read_bytes() + b"]",
    "system_status": b'{"status": 0, "msg": "normal"}',
    "delistings": b'[{"delistTime": 1767225600000, "symbols": ["ETHBTC"]}]',
    "wallet_networks": (SIM_DATA / "capital_config_getall_2026-01-20.json").read_bytes(),
    "margin_pairs": (SIM_DATA / "margin_all_pairs_from_docs.json").read_bytes(),
    "margin_isolated_pairs": (SIM_DATA / "margin_isolated_all_pairs_from_docs.json").read_bytes(),
    "margin_delistings": (SIM_DATA / "margin_delist_schedule_from_docs.json").read_bytes(),
}


def test_every_stream_has_a_sample_body() -> None:
    assert set(SAMPLE_BODIES) == set(STREAMS)


@pytest.mark.parametrize("declared", CATALOGUE, ids=STREAMS)
def test_a_parser_writes_its_declared_tables_and_each_row_is_its_models_columns(
    declared: streams.Stream,
) -> None:
    snapshot = resolve_parser(declared.parser)(SAMPLE_BODIES[declared.name])
    assert sorted(kind.table for kind in snapshot) == sorted(declared.tables)
    for kind in snapshot:
        assert kind.every_entity(), kind.table
        columns = set(typed_columns(kind.table, key=False))
        for entity in kind.every_entity().values():
            assert set(kind.to_row(entity.source)) == columns, kind.table
