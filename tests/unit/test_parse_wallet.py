"""The capital config body: balances never kept, switches versioned per coin and network."""

from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.ingest import InvalidPayloadError, Snapshot
from core.wallet import without_balances
from poller.parse_wallet import parse_capital_config
from tests.wallet_captures import BALANCES, CAPTURE_2021, CAPTURE_2026, capture, nonzero_balances


def kinds(snapshot: Snapshot) -> dict[str, Any]:
    return {k.table: k for k in snapshot}


@pytest.mark.parametrize(
    ("path", "coins", "networks"), [(CAPTURE_2021, 466, 711), (CAPTURE_2026, 667, 1100)]
)
def test_every_coin_and_network_of_a_real_capture_is_an_entity_without_balances(
    path: Any, coins: int, networks: int
) -> None:
    doc = capture(path)
    assert nonzero_balances(doc)  # the capture does hold some: the test could fail
    found = kinds(parse_capital_config(path.read_bytes()))
    assert len(found["wallet_coin_versions"].entities) == coins
    assert len(found["wallet_network_versions"].entities) == networks
    for entity in found["wallet_coin_versions"].entities.values():
        assert not set(BALANCES) & set(entity.source)
        assert "networkList" not in entity.source


def test_the_cleaned_body_has_no_balance_and_ignores_a_balance_change() -> None:
    doc = capture(CAPTURE_2026)
    cleaned = orjson.loads(without_balances(CAPTURE_2026.read_bytes()))
    assert all(not set(BALANCES) & set(coin) for coin in cleaned)
    assert [c["coin"] for c in cleaned] == [c["coin"] for c in doc]
    assert cleaned[0]["networkList"] == doc[0]["networkList"]
    richer = [{**c, "free": "12345.6"} if c["coin"] == "USDT" else c for c in doc]
    assert without_balances(orjson.dumps(richer)) == without_balances(orjson.dumps(doc))


def test_a_new_coin_field_holding_a_decimal_is_taken_for_a_balance_and_a_new_flag_kept() -> None:
    body = orjson.dumps([{"coin": "X", "earning": "1.5", "isNew": True, "networkList": []}])
    assert orjson.loads(without_balances(body)) == [{"coin": "X", "isNew": True, "networkList": []}]


def test_a_body_that_is_not_json_cannot_be_cleaned() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        without_balances(b'[{"coin":"BTC","free":"1.2')


def test_typed_columns_of_both_eras() -> None:
    old = kinds(parse_capital_config(CAPTURE_2021.read_bytes()))["wallet_network_versions"]
    new = kinds(parse_capital_config(CAPTURE_2026.read_bytes()))["wallet_network_versions"]
    stpt_2021 = old.to_row(old.entities[("STPT", "ETH")].source)
    stpt_2026 = new.to_row(new.entities[("STPT", "ETH")].source)
    assert (stpt_2021["withdraw_enable"], stpt_2021["withdraw_fee"]) == (True, Decimal("837"))
    assert stpt_2021["busy"] is None
    assert stpt_2021["contract_address"] is None
    assert (stpt_2026["withdraw_enable"], stpt_2026["deposit_enable"]) == (False, False)
    assert stpt_2026["withdraw_desc"].startswith("Withdrawal for this token is not supported")
    assert stpt_2026["busy"] is False
    assert stpt_2026["contract_address"] == "0xde7d85157d9714eadf595045cc12ca4a5f3e2adb"
    assert stpt_2026["min_confirm"] == 6
    assert stpt_2026["unlock_confirm"] == 64


NETWORK = {"network": "ETH", "coin": "X", "depositEnable": True, "withdrawEnable": True}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "no coin"),
        ({"coins": []}, "not a list"),
        ([{"coin": "X"}], "networkList"),
        ([{"coin": "X", "networkList": [{"network": "ETH", "coin": "X"}]}], "depositEnable"),
        ([{"coin": "X", "networkList": [NETWORK, NETWORK]}], "twice"),
        ([{"coin": "X", "networkList": [{**NETWORK, "withdrawFee": 0.1}]}], "withdrawFee"),
        ([{"coin": "X", "networkList": []}, {"coin": "X", "networkList": []}], "twice"),
    ],
)
def test_anything_but_a_whole_document_is_refused(doc: Any, message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        parse_capital_config(orjson.dumps(doc))
