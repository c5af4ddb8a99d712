"""The wallet stream end to end: poller -> signed loopback HTTP -> sim -> PostgreSQL -> reads.

A withdrawal suspended and resumed on one network, a fee changed: each one version, as of
between them, the feed, the diff, the history and the SQL twins; the two real captures
loaded one after the other version exactly their differences; and no balance of the
captures is readable anywhere without the token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from api import create_app, schemas
from binance_sim.server import SimServer
from core.config import Settings
from core.ingest import Recorded
from core.timeparse import format_instant
from core.wallet import without_balances
from exmeta.cli import main
from poller.job import StreamJob
from poller.runner import build_poller
from tests.builders import exchange_info_poll
from tests.reader_role import reader_connection
from tests.signed_sim import control, jobs_by_stream, register_key, sim_settings
from tests.wallet_captures import (
    BALANCES,
    CAPTURE_2021,
    CAPTURE_2026,
    capture,
    nonzero_balances,
)
from tests.weight_minutes import start_well_inside_a_minute

STREAM = "wallet_networks"
TABLES = ("wallet_coin_versions", "wallet_network_versions")
SUSPENSION = "Withdrawals of USDT on TRX are suspended for a network upgrade."


def q(at: datetime) -> str:
    return quote(format_instant(at) or "")


def ok(response: TestResponse, model: type[BaseModel]) -> dict[str, Any]:
    assert response.status_code == 200, response.data[:500]
    body = response.json
    assert isinstance(body, dict)
    model.model_validate(body)
    return body


def between(a: Recorded, b: Recorded) -> datetime:
    return a.observed_at + (b.observed_at - a.observed_at) / 2


def opened(recorded: Recorded) -> dict[str, int]:
    return {t: n for t, n in recorded.opened.items() if t in TABLES}


@pytest.fixture
def wallet(engine: Engine, sim: SimServer) -> tuple[Settings, StreamJob]:
    register_key(sim)
    settings = sim_settings(sim)
    return settings, jobs_by_stream(settings, engine)[STREAM]


def api_client(engine: Engine, settings: Settings) -> FlaskClient:
    app = create_app(
        settings, engine, clock=lambda: datetime.now(UTC), streams=settings.enabled_streams()
    )
    return app.test_client()


def patch_network(sim: SimServer, body: dict[str, Any]) -> None:
    control(sim, "PATCH", "/capital-config/USDT/TRX", body)


def test_a_suspension_its_resumption_and_a_fee_change_are_one_version_each(
    engine: Engine,
    api_engine: Engine,
    sim: SimServer,
    wallet: tuple[Settings, StreamJob],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, job = wallet
    exchange_info_poll(engine, sim.url).run()  # the diff's evidence is spot's exchangeInfo
    first = job.run()
    assert opened(first) == {"wallet_coin_versions": 667, "wallet_network_versions": 1100}
    assert job.run().outcome == "unchanged"

    patch_network(sim, {"withdraw": False, "withdraw_desc": SUSPENSION})
    suspended = job.run()
    patch_network(sim, {"withdraw": True})
    resumed = job.run()
    patch_network(sim, {"withdraw_fee": "1.5"})
    fee = job.run()
    for step in (suspended, resumed, fee):
        assert (step.outcome, step.opened, step.closed) == (
            "changed",
            {"wallet_network_versions": 1},
            {"wallet_network_versions": 1},
        )
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM wallet_network_versions),"
                " (SELECT count(*) FROM wallet_network_versions"
                "  WHERE coin = 'USDT' AND network = 'TRX'),"
                " (SELECT count(*) FROM wallet_coin_versions)"
            )
        ).one()
    assert tuple(counts) == (1103, 4, 667)  # nothing else changed

    client = api_client(api_engine, settings)
    during = ok(
        client.get(f"/v1/wallet/USDT?as_of={q(between(suspended, resumed))}"),
        schemas.WalletCoinAsOf,
    )
    trx = next(n for n in during["networks"] if n["network"] == "TRX")
    assert trx["withdraw"] == {
        "enabled": False,
        "message": SUSPENSION,
        "since": format_instant(suspended.observed_at),
        "since_first_seen": False,
    }
    assert trx["deposit"]["enabled"] is True
    assert trx["deposit"]["since"] == format_instant(first.observed_at)
    assert trx["deposit"]["since_first_seen"] is True
    assert trx["withdraw_fee"] == "1"
    assert "TRX" not in during["withdraw_networks"]
    assert "TRX" in during["deposit_networks"]
    assert len(during["withdraw_networks"]) == len(during["networks"]) - 1
    assert during["evidence"]["observed_before"] == format_instant(suspended.observed_at)

    now = ok(client.get("/v1/wallet/USDT"), schemas.WalletCoinAsOf)
    trx_now = next(n for n in now["networks"] if n["network"] == "TRX")
    assert trx_now["withdraw"]["enabled"] is True
    assert trx_now["withdraw"]["message"] == ""
    assert trx_now["withdraw"]["since"] == format_instant(resumed.observed_at)
    assert trx_now["withdraw_fee"] == "1.5"

    listed = ok(
        client.get(
            f"/v1/wallet/networks?coin=USDT&network=TRX&as_of={q(between(suspended, resumed))}"
        ),
        schemas.WalletNetworksAsOf,
    )
    [network] = listed["networks"]
    assert (network["withdraw_enable"], network["withdraw_desc"]) == (False, SUSPENSION)
    assert network["valid_from"] == format_instant(suspended.observed_at)
    every = ok(client.get("/v1/wallet/networks"), schemas.WalletNetworksAsOf)
    assert len(every["networks"]) == 1100

    ms = timedelta(milliseconds=1)  # the API's instants have milliseconds
    window = f"from={q(first.observed_at + ms)}&to={q(fee.observed_at + ms)}"
    feed = ok(client.get(f"/v1/changes?stream={STREAM}&{window}"), schemas.ChangeFeed)
    expected = [
        (suspended, "withdrawDesc", "", SUSPENSION),
        (suspended, "withdrawEnable", True, False),
        (resumed, "withdrawDesc", SUSPENSION, ""),
        (resumed, "withdrawEnable", False, True),
        (fee, "withdrawFee", "1", "1.5"),
    ]
    assert [
        (c["changed_at"], c["entity"], c["key"], c["field"], c["old"], c["new"])
        for c in feed["changes"]
    ] == [
        (format_instant(r.observed_at), "wallet_network", "USDT:TRX", f, old, new)
        for r, f, old, new in expected
    ]
    default_feed = ok(client.get(f"/v1/changes?{window}"), schemas.ChangeFeed)
    assert [c for c in default_feed["changes"] if c["stream"] == STREAM] == feed["changes"]
    monkeypatch.setenv("EXMETA_DATABASE__URL", engine.url.render_as_string(hide_password=False))
    span = [
        "--from",
        format_instant(first.observed_at + ms),
        "--to",
        format_instant(fee.observed_at + ms),
    ]
    assert main(["changes", "--stream", STREAM, *span, "--json"]) == 0
    assert [orjson.loads(line) for line in capsys.readouterr().out.splitlines()] == feed["changes"]
    at = format_instant(between(suspended, resumed))
    assert main(["asof", at, "usdt", "--wallet", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == during  # the route's answer, any case
    assert main(["asof", at, "USDT", "--wallet"]) == 0
    printed = capsys.readouterr().out
    assert f"off since {format_instant(suspended.observed_at)}: Withdrawals" in printed
    assert main(["asof", at, "--wallet"]) == 2  # which coin?
    assert "needs at least one COIN" in capsys.readouterr().err

    history = ok(client.get("/v1/wallet/networks/USDT/TRX/history"), schemas.WalletNetworkHistory)
    assert [v["valid_from"] for v in history["versions"]] == [
        format_instant(r.observed_at) for r in (first, suspended, resumed, fee)
    ]
    assert [c["field"] for c in history["versions"][1]["changes"]] == [
        "withdrawDesc",
        "withdrawEnable",
    ]
    unknown = client.get("/v1/wallet/networks/USDT/NOWHERE/history")
    assert unknown.status_code == 404
    assert client.get("/v1/wallet/NOSUCHCOIN").json["error"]["code"] == "coin_not_listed"
    assert (
        client.get(f"/v1/wallet/USDT?as_of={q(first.observed_at - timedelta(days=1))}").json[
            "error"
        ]["code"]
        == "not_observed"
    )

    diff = ok(
        client.get(f"/v1/diff?from={q(first.observed_at + ms)}&to={q(fee.observed_at + ms)}"),
        schemas.AnyStateDiff,
    )
    assert diff["wallet_networks"]["changed"] == [
        {"key": "USDT:TRX", "changes": [{"field": "withdrawFee", "old": "1", "new": "1.5"}]}
    ]
    assert diff["wallet_coins"] == {"added": [], "removed": [], "changed": []}

    with reader_connection(engine) as conn:
        view = conn.execute(
            "SELECT changed_at, key, field, old, new, market FROM changes"
            " WHERE stream = %s AND changed_at > %s ORDER BY changed_at, entity, key, field",
            (STREAM, first.observed_at),
        ).fetchall()
        as_of = conn.execute(
            "SELECT withdraw_enable, withdraw_desc FROM wallet_networks_as_of(%s)"
            " WHERE coin = 'USDT' AND network = 'TRX'",
            (between(suspended, resumed),),
        ).fetchall()
        current = conn.execute(
            "SELECT withdraw_fee::text FROM wallet_networks_current"
            " WHERE coin = 'USDT' AND network = 'TRX'"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in view] == [
        (r.observed_at, "USDT:TRX", f, old, new, "spot") for r, f, old, new in expected
    ]
    assert as_of == [(False, SUSPENSION)]
    assert current == [("1.5",)]


def network_objects(doc: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["coin"], n["network"]): n for c in doc for n in c["networkList"]}


def coin_objects(doc: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        c["coin"]: {k: v for k, v in c.items() if k not in (*BALANCES, "networkList")} for c in doc
    }


def versions_of(engine: Engine, table: str, key: str, recorded: Recorded) -> dict[str, set[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {key}, opened_by = :obs, closed_by = :obs FROM {table}"
                " WHERE opened_by = :obs OR closed_by = :obs"
            ),
            {"obs": recorded.observation_id},
        ).all()
    return {
        "opened": {tuple(r[:-2]) for r in rows if r[-2]},
        "closed": {tuple(r[:-2]) for r in rows if r[-1]},
    }


def test_loading_the_2021_then_the_2026_capture_versions_their_true_differences(
    engine: Engine, sim: SimServer, wallet: tuple[Settings, StreamJob]
) -> None:
    _, job = wallet
    old, new = capture(CAPTURE_2021), capture(CAPTURE_2026)
    control(sim, "PUT", "/capital-config", old)
    assert job.run().outcome == "changed"
    control(sim, "PUT", "/capital-config", new)
    second = job.run()

    nets_old, nets_new = network_objects(old), network_objects(new)
    changed = {k for k in nets_old.keys() & nets_new.keys() if nets_old[k] != nets_new[k]}
    added, removed = nets_new.keys() - nets_old.keys(), nets_old.keys() - nets_new.keys()
    assert all((changed, added, removed))  # the captures differ in all three ways
    networks = versions_of(engine, "wallet_network_versions", "coin, network", second)
    assert networks == {"opened": changed | added, "closed": changed | removed}

    coins_old, coins_new = coin_objects(old), coin_objects(new)
    coins_changed = {c for c in coins_old.keys() & coins_new.keys() if coins_old[c] != coins_new[c]}
    coins = versions_of(engine, "wallet_coin_versions", "coin", second)
    assert coins == {
        "opened": {(c,) for c in coins_changed | (coins_new.keys() - coins_old.keys())},
        "closed": {(c,) for c in coins_changed | (coins_old.keys() - coins_new.keys())},
    }
    with engine.connect() as conn:
        stored = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                text(
                    "SELECT coin, network, raw::text FROM wallet_network_versions"
                    " WHERE valid_to IS NULL"
                )
            )
        }
    assert {k: orjson.loads(v) for k, v in stored.items()} == nets_new


def distinctive_balances(doc: list[dict[str, Any]]) -> set[bytes]:
    """The captures' non-zero balances that appear nowhere else in the document, quoted as
    JSON: any of them found in an answer can only be a balance that leaked."""
    cleaned = without_balances(orjson.dumps(doc))
    values = {v for held in nonzero_balances(doc).values() for v in held.values()}
    found = {orjson.dumps(v) for v in values} - {
        orjson.dumps(v) for v in values if orjson.dumps(v) in cleaned
    }
    assert found  # the test can fail
    return found


def path_for(rule: str) -> str:
    values = {"coin": "USDT", "network": "TRX", "symbol": "BTCUSDT"}
    for name, value in values.items():
        rule = rule.replace(f"<{name}>", value)
    assert "<" not in rule, rule
    return rule


def test_no_balance_of_the_captures_is_readable_without_the_token(
    engine: Engine, api_engine: Engine, sim: SimServer, wallet: tuple[Settings, StreamJob]
) -> None:
    settings, job = wallet
    old, new = capture(CAPTURE_2021), capture(CAPTURE_2026)
    leaks = distinctive_balances(old) | distinctive_balances(new)
    control(sim, "PUT", "/capital-config", old)
    first = job.run()
    control(sim, "PUT", "/capital-config", new)
    job.run()
    richer = [{**c, "free": "98765.4321"} if c["coin"] == "BTC" else c for c in new]
    control(sim, "PUT", "/capital-config", richer)
    only_balance = job.run()
    assert (only_balance.outcome, only_balance.opened) == ("unchanged", {})
    leaks.add(b'"98765.4321"')

    # Every public GET route of the API, with the window of the whole test.
    window = f"from={q(first.observed_at - timedelta(seconds=1))}&to={q(datetime.now(UTC))}"
    client = api_client(api_engine, settings)
    rules = [
        r.rule
        for r in client.application.url_map.iter_rules()
        if "GET" in (r.methods or ()) and "<path:" not in r.rule  # static files
    ]
    assert "/v1/wallet/<coin>" in rules
    queries = ["", f"?{window}", f"?stream={STREAM}&{window}&schema=true", f"?stream={STREAM}"]
    answered = 0
    for rule in rules:
        for query in queries:
            response = client.get(path_for(rule) + query)
            answered += response.status_code == 200
            for leak in leaks:
                assert leak not in response.data, (rule, query, leak)
            if rule != "/openapi.json":  # which documents the account's balance routes
                assert b'"free"' not in response.data, (rule, query)
    assert answered > len(rules)

    # Every raw body kept (the API's role reads the store): the sim's exchangeInfo is not
    # polled here, so they are the wallet's, 2021's and 2026's; the balance change kept none.
    with api_engine.connect() as conn:
        bodies = conn.execute(text("SELECT body FROM raw_bodies")).scalars().all()
    assert len(bodies) == 2
    for body in bodies:
        assert not any(leak in body for leak in leaks)
        assert all(not set(BALANCES) & set(c) for c in orjson.loads(body))

    # The analysts' views and tables, as the read-only role.
    with reader_connection(engine) as conn:
        dumped = [
            str(conn.execute(f"SELECT to_jsonb(t)::text FROM {name} t").fetchall()).encode()
            for name in (
                "wallet_networks_current",
                "wallet_coins_current",
                "wallet_network_versions",
                "wallet_coin_versions",
                "schema_versions",
                "changes",
            )
        ]
    for text_of_rows in dumped:
        for leak in leaks:
            assert leak.strip(b'"') not in text_of_rows
        assert b'"free"' not in text_of_rows


def test_the_wallet_poll_is_charged_weight_10_in_the_shared_budget(
    engine: Engine, sim: SimServer
) -> None:
    register_key(sim)
    settings = sim_settings(sim)
    [job] = [s.job for s in build_poller(settings, engine, "test").jobs if s.job.stream == STREAM]
    start_well_inside_a_minute(engine)  # the sim counts weight per minute: stay inside one
    before = requests.get(f"{sim.url}/_sim/weight", timeout=5).json()["this_minute"]
    first, second = job.run(), job.run()
    with engine.connect() as conn:
        used = [
            conn.execute(
                text("SELECT used_weight FROM observations WHERE id = :i"),
                {"i": recorded.observation_id},
            ).scalar_one()
            for recorded in (first, second)
        ]
        shared = conn.execute(
            text("SELECT used_weight FROM request_budget WHERE market = 'spot'")
        ).scalar_one()
    assert used == [before + 10, before + 20]
    # Reported to the other replicas with the next request, as every weight is.
    assert shared == used[0]


def test_the_sim_serves_the_wallet_signed_and_refuses_bad_control_input(
    sim: SimServer, wallet: tuple[Settings, StreamJob]
) -> None:
    unsigned = requests.get(f"{sim.url}/sapi/v1/capital/config/getall", timeout=5)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, -2014)
    served = requests.get(f"{sim.url}/_sim/capital-config", timeout=5).json()
    assert served == capture(CAPTURE_2026)  # balances and all, as Binance sends them
    for body, message in [
        ({"withdraw": "no"}, "withdraw must be true or false"),
        ({"withdraw_fee": 1.5}, "withdraw_fee must be a decimal"),
        ({"suspend": True}, "unknown keys"),
    ]:
        response = requests.patch(f"{sim.url}/_sim/capital-config/USDT/TRX", json=body, timeout=5)
        assert response.status_code == 400
        assert message in response.json()["error"]
    missing = requests.patch(
        f"{sim.url}/_sim/capital-config/USDT/NOWHERE", json={"busy": True}, timeout=5
    )
    assert missing.status_code == 400
    not_coins = requests.put(f"{sim.url}/_sim/capital-config", json={"coins": []}, timeout=5)
    assert not_coins.status_code == 400
    busy = requests.patch(
        f"{sim.url}/_sim/capital-config/USDT/TRX",
        json={"busy": True, "deposit": False, "deposit_desc": "wallet maintenance"},
        timeout=5,
    ).json()
    assert (busy["busy"], busy["depositEnable"], busy["depositDesc"]) == (
        True,
        False,
        "wallet maintenance",
    )


def test_a_body_that_is_not_json_keeps_nothing_of_it(
    engine: Engine, sim: SimServer, wallet: tuple[Settings, StreamJob]
) -> None:
    """A 200 that does not parse (cut by a proxy: the first coins' balances and then
    nothing) cannot be cleaned, so none of it is kept."""
    _, job = wallet
    control(
        sim,
        "POST",
        "/faults",
        {"kind": "invalid_json", "endpoint": "/sapi/v1/capital/config/getall"},
    )
    recorded = job.run()
    assert recorded.outcome == "error"
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT body_sha256, error_class, http_status FROM observations WHERE id = :i"),
            {"i": recorded.observation_id},
        ).one()
        stored = conn.execute(text("SELECT count(*) FROM raw_bodies")).scalar_one()
    assert (row.body_sha256, row.error_class, row.http_status) == (None, "invalid_payload", 200)
    assert stored == 0
