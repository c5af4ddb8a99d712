from sqlalchemy import Engine

from tests.builders import at, exchange_info, record_exchange_info, symbol


def test_first_observation_opens_a_version_per_symbol(engine: Engine) -> None:
    doc = exchange_info(symbol("BTCUSDT"), symbol("ETHUSDT"))
    recorded = record_exchange_info(engine, doc, at("2024-01-01T00:00:00"))
    assert recorded.outcome == "changed"
    assert recorded.opened["symbol_versions"] == 2
