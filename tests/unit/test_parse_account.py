"""Account, commission, status and delist-schedule bodies: what versions, what refuses."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.ingest import InvalidPayloadError, Snapshot
from poller.parse_account import (
    parse_account,
    parse_commissions,
    parse_delist_schedule,
    parse_system_status,
)

DATA = Path(__file__).resolve().parents[2] / "binance_sim" / "data"
ACCOUNT = orjson.loads((DATA / "account.json").read_bytes())
COMMISSION = orjson.loads((DATA / "account_commission.json").read_bytes())


def kinds(snapshot: Snapshot) -> dict[str, Any]:
    return {k.table: k for k in snapshot}


def test_update_time_and_balances_are_not_part_of_the_account_version() -> None:
    a = kinds(parse_account(orjson.dumps(ACCOUNT)))["account_versions"]
    b = kinds(parse_account(orjson.dumps({**ACCOUNT, "updateTime": 99})))["account_versions"]
    assert a.entities == b.entities
    (entity,) = a.entities.values()
    assert "updateTime" not in entity.source
    assert "balances" not in entity.source
    row = a.to_row(entity.source)
    assert row["commission_rate_maker"] == Decimal("0.00150000")
    assert row["maker_commission"] == 15
    assert row["permissions"] == ["SPOT"]
    assert row["uid"] == 354937868


def test_zero_balances_are_dropped_so_that_zero_and_missing_are_one_fact() -> None:
    balances = [
        {"asset": "BTC", "free": "1.00000000", "locked": "0.00000000"},
        {"asset": "ETH", "free": "0.00000000", "locked": "0.00000000"},
    ]
    snapshot = kinds(parse_account(orjson.dumps({**ACCOUNT, "balances": balances})))
    assert list(snapshot["balance_versions"].entities) == [("BTC",)]


def test_an_old_account_without_commission_rates_parses_with_nulls() -> None:
    old = {k: v for k, v in ACCOUNT.items() if k not in {"commissionRates", "uid", "preventSor"}}
    kind = kinds(parse_account(orjson.dumps(old)))["account_versions"]
    row = kind.to_row(next(iter(kind.entities.values())).source)
    assert row["commission_rate_maker"] is None
    assert row["uid"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}', "-2015"),
        (b"[]", "not a JSON object"),
        (b'{"makerCommission": 15}', "without a 'balances' list"),
        (b'{"balances": [{"asset": "BTC", "free": 1.5, "locked": "0"}]}', "expected decimal"),
        (b'{"balances": [], "canTrade": "yes"}', "expected bool"),
        (b'{"balances": [], "commissionRates": {"maker": "x"}}', "expected decimal"),
        (b"{", "not valid JSON"),
    ],
)
def test_an_invalid_account_body_is_refused_whole(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=None) as excinfo:
        parse_account(body)
    assert message in str(excinfo.value)


def test_commission_groups_become_typed_columns() -> None:
    kind = parse_commissions(orjson.dumps([COMMISSION]))[0]
    row = kind.to_row(kind.entities[("BTCUSDT",)].source)
    assert row["standard_taker"] == Decimal("0.00000020")
    assert row["special_seller"] == Decimal("0.04000000")
    assert row["tax_buyer"] == Decimal("0.00000118")
    assert (row["discount_enabled_for_account"], row["discount_asset"]) == (True, "BNB")
    assert row["discount"] == Decimal("0.75")
    with pytest.raises(InvalidPayloadError, match="without standardCommission"):
        parse_commissions(orjson.dumps([{"symbol": "BTCUSDT"}]))


def test_system_status_and_delist_schedule() -> None:
    status = parse_system_status(b'{"status": 1, "msg": "system_maintenance"}')[0]
    assert status.to_row(next(iter(status.entities.values())).source) == {
        "status": 1,
        "message": "system_maintenance",
    }
    with pytest.raises(InvalidPayloadError, match="expected int"):
        parse_system_status(b'{"status": "1"}')
    schedule = parse_delist_schedule(
        b'[{"delistTime": 1767225600000, "symbols": ["ETHBTC", "LTCBTC"]}]'
    )[0]
    assert sorted(schedule.entities) == [("ETHBTC",), ("LTCBTC",)]
    row = schedule.to_row(schedule.entities[("ETHBTC",)].source)
    assert row["delist_time"].isoformat() == "2026-01-01T00:00:00+00:00"
    with pytest.raises(InvalidPayloadError, match="twice"):
        parse_delist_schedule(
            b'[{"delistTime": 1, "symbols": ["ETHBTC"]}, {"delistTime": 2, "symbols": ["ETHBTC"]}]'
        )
