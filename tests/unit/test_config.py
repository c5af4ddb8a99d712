from datetime import timedelta
from pathlib import Path

import pytest

from core.config import ConfigError, Secret, base_url, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_committed_config_equals_the_built_in_defaults() -> None:
    assert load_settings(REPO / "config.toml", {}) == load_settings(None, {})


def test_defaults_match_the_documented_contract() -> None:
    s = load_settings(None, {})
    assert s.binance.base_url == "https://api.binance.com"
    assert (s.api.host, s.api.port) == ("127.0.0.1", 8000)
    assert s.poller.exchange_info_interval == 10


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\nexchange_info_interval = 5\n[api]\nport = 9000\n")
    s = load_settings(
        path, {"EXMETA_POLLER__EXCHANGE_INFO_INTERVAL": "0.5", "EXMETA_API__HOST": "0.0.0.0"}
    )
    assert s.poller.exchange_info_interval == 0.5
    assert s.api.port == 9000
    assert s.api.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "[poller]\nexchange_info_intreval = 5\n",
            {},
            "unknown setting [poller] exchange_info_intreval",
        ),
        ("[pollers]\nx = 1\n", {}, "unknown section [pollers]"),
        ("", {"EXMETA_API__PORTT": "1"}, "EXMETA_API__PORTT"),
        ("", {"EXMETA_NOPE__X": "1"}, "EXMETA_NOPE__X"),
        ("[api]\nport = 'eighty'\n", {}, "[api] port must be an integer"),
        ("", {"EXMETA_API__PORT": "eighty"}, "[api] port must be an integer"),
        ("[poller]\nexchange_info_interval = 0\n", {}, "must be positive"),
        ("[binance]\nbase_url = 'ftp://x'\n", {}, "base_url must start with"),
        ("[binance]\nmax_attempts = 0\n", {}, "max_attempts must be 1..10"),
        ("", {"EXMETA_BINANCE__BACKOFF_CAP_SECONDS": "0.1"}, "at most backoff_cap_seconds"),
        ("[poller]\nweight_budget = 1.5\n", {}, "weight_budget must be in (0, 1]"),
        ("[api]\nanswer_cache_entries = -1\n", {}, "answer_cache_entries must be 0 or more"),
        ("[api\n", {}, "not valid TOML"),
        # TOML and float() both read nan and inf: a NaN window passes every "< 0" check.
        (
            "[poller]\nobservation_detail_hours = nan\n",
            {},
            "[poller] observation_detail_hours must be a finite number, got nan",
        ),
        (
            "",
            {"EXMETA_POLLER__SERVER_TIME_TOLERANCE_SECONDS": "inf"},
            "[poller] server_time_tolerance_seconds must be a finite number, got 'inf'",
        ),
        ("", {"EXMETA_POLLER__EXCHANGE_INFO_INTERVAL": "NaN"}, "must be a finite number"),
        (
            "",
            {"EXMETA_POLLER__SERVER_TIME_TOLERANCE_SECONDS": "1e300"},
            "[poller] server_time_tolerance_seconds must be 0 to 86400 (a day), got 1e+300",
        ),
        ("", {"EXMETA_POLLER__HEARTBEAT_SECONDS": "0"}, "heartbeat_seconds must be positive"),
        ("[poller]\nlease_seconds = -1\n", {}, "[poller] lease_seconds must be positive, got -1"),
        (
            "[poller]\nshutdown_grace_seconds = -1\n",
            {},
            "[poller] shutdown_grace_seconds must be 0 or more, got -1",
        ),
        # PostgreSQL reads a statement_timeout of 0 ms as none at all, and holds at most
        # 2^31 - 1 ms: both used to pass, and fail at connect as "cannot reach".
        (
            "[database]\nstatement_timeout_seconds = 0\n",
            {},
            "[database] statement_timeout_seconds must be 0.001 to 2147483.647, got 0",
        ),
        (
            "",
            {"EXMETA_DATABASE__STATEMENT_TIMEOUT_SECONDS": "3000000"},
            "statement_timeout_seconds must be 0.001 to 2147483.647, got 3e+06",
        ),
        (
            "",
            {"EXMETA_DATABASE__CONNECT_TIMEOUT_SECONDS": "-3"},
            "[database] connect_timeout_seconds must be 0.001 to 2147483.647, got -3",
        ),
        (
            "[poller]\nobservation_detail_hours = -1\n",
            {},
            "observation_detail_hours must be 0 (keep all) or more",
        ),
        (
            "[poller]\nobservation_detail_hours = 2e7\n",
            {},
            "observation_detail_hours must be at most 876000 (a century), got 2e+07",
        ),
        (
            "[poller]\ncompaction_interval_seconds = 0\n",
            {},
            "compaction_interval_seconds must be positive",
        ),
        ("[binance]\nkey_type = 'rsa'\n", {}, "key_type must be hmac or ed25519"),
        ("[binance]\nrecv_window_ms = 60001\n", {}, "recv_window_ms must be 1..60000"),
        ("[poller]\ncommission_symbols = 'BTCUSDT'\n", {}, "must be a list of strings"),
        ("", {"EXMETA_BINANCE__API_KEY": "k"}, "api_secret (EXMETA_BINANCE__API_SECRET) is not"),
        (
            "[binance]\nkey_type = 'ed25519'\n",
            {"EXMETA_BINANCE__API_KEY": "k"},
            "private_key_path (EXMETA_BINANCE__PRIVATE_KEY_PATH) is not",
        ),
    ],
)
def test_bad_settings_are_rejected_with_the_key_named(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as excinfo:
        load_settings(write(tmp_path, text), env)
    assert message in str(excinfo.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml", {})


def test_unrelated_exmeta_variables_without_a_section_are_ignored() -> None:
    s = load_settings(None, {"EXMETA_TEST_DATABASE_URL": "postgresql://x/y"})
    assert s.database.url.reveal() == ""


def test_secrets_never_show_in_reprs() -> None:
    s = load_settings(
        None,
        {
            "EXMETA_BINANCE__API_SECRET": "s3cr3t-value",
            "EXMETA_BINANCE__API_KEY": "k3y-value",
            "EXMETA_DATABASE__URL": "postgresql://u:pw-value@h/db",
            "EXMETA_API__TOKEN": "t0ken-value",
        },
    )
    text = repr(s) + str(s)
    for secret in ("s3cr3t-value", "k3y-value", "pw-value", "t0ken-value"):
        assert secret not in text
    assert s.binance.api_secret.reveal() == "s3cr3t-value"
    assert repr(Secret("x")) == "Secret('***')"


def test_commission_symbols_come_from_a_list_or_a_comma_separated_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\ncommission_symbols = ['BTCUSDT', 'ETHBTC']\n")
    assert load_settings(path, {}).poller.commission_symbols == ("BTCUSDT", "ETHBTC")
    env = {"EXMETA_POLLER__COMMISSION_SYMBOLS": "BTCUSDT, BNBBTC,"}
    assert load_settings(None, env).poller.commission_symbols == ("BTCUSDT", "BNBBTC")


PUBLIC_EXCHANGE_INFOS = ("exchange_info", "usdm_exchange_info", "coinm_exchange_info")
FUTURES = PUBLIC_EXCHANGE_INFOS[1:]


def test_signed_streams_are_enabled_only_with_a_whole_key() -> None:
    assert load_settings(None, {}).enabled_streams() == ("exchange_info", "system_status", *FUTURES)
    keyed = load_settings(None, {"EXMETA_BINANCE__API_KEY": "k", "EXMETA_BINANCE__API_SECRET": "s"})
    assert keyed.enabled_streams() == (
        "exchange_info",
        "account",
        "system_status",
        "delistings",
        "wallet_networks",
        "margin_pairs",  # unsigned, but sent with the key (MARKET_DATA): off without one
        "margin_isolated_pairs",
        "margin_delistings",
        *FUTURES,
    )


def test_each_market_is_polled_on_its_own_base_url_each_overridable() -> None:
    defaults = load_settings(None, {})
    assert [base_url(defaults, s) for s in (*PUBLIC_EXCHANGE_INFOS, "account")] == [
        "https://api.binance.com",
        "https://fapi.binance.com",
        "https://dapi.binance.com",
        "https://api.binance.com",
    ]
    env = {
        "EXMETA_BINANCE__USDM_BASE_URL": "http://127.0.0.1:9001/",
        "EXMETA_BINANCE__COINM_BASE_URL": "http://127.0.0.1:9002",
        "EXMETA_POLLER__USDM_EXCHANGE_INFO_INTERVAL": "2.5",
    }
    moved = load_settings(None, env)
    assert base_url(moved, "usdm_exchange_info") == "http://127.0.0.1:9001"
    assert base_url(moved, "coinm_exchange_info") == "http://127.0.0.1:9002"
    assert base_url(moved, "exchange_info") == "https://api.binance.com"
    assert moved.stream_intervals()["usdm_exchange_info"] == 2.5
    assert moved.stream_intervals()["coinm_exchange_info"] == 10.0


def test_a_futures_base_url_that_is_not_http_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="coinm_base_url must start with"):
        load_settings(None, {"EXMETA_BINANCE__COINM_BASE_URL": "dapi.binance.com"})


def test_a_detail_window_of_zero_keeps_every_polls_detail(tmp_path: Path) -> None:
    keep_all = load_settings(write(tmp_path, "[poller]\nobservation_detail_hours = 0\n"), {})
    default = load_settings(write(tmp_path, ""), {})

    assert keep_all.poller.observation_detail() is None
    assert default.poller.observation_detail() == timedelta(hours=48)


def test_a_config_file_over_a_mebibyte_is_refused_unread(tmp_path: Path) -> None:
    # Read whole, --config /dev/zero (or a FIFO that never ends) filled memory.
    huge = write(tmp_path, "# padding\n" * 110_000)

    with pytest.raises(ConfigError, match="is larger than 1 MiB: not a settings file"):
        load_settings(huge, {})
