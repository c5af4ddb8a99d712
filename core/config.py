"""Settings: one loader for every entry point.

Precedence is environment > config file > defaults (DESIGN §8). Every key that may be set
is a field of a section dataclass below, so an unknown key in the file or in an
``EXMETA_<SECTION>__<KEY>`` variable is a typo, and typos are errors: a silently ignored
``exchange_info_intreval`` would leave a production poller on the wrong schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, cast, get_type_hints

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core import streams as catalogue
from core.sources import SourceError, source_of

ENV_PREFIX = "EXMETA_"


class ConfigError(ValueError):
    """A setting is missing, unknown or malformed; the message names it."""


class Secret:
    """A string that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class DatabaseSettings:
    url: Secret = field(default_factory=lambda: Secret(""))
    embedded_data_dir: str = ""
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 20.0


@dataclass(frozen=True)
class BinanceSettings:
    base_url: str = "https://api.binance.com"
    usdm_base_url: str = "https://fapi.binance.com"
    coinm_base_url: str = "https://dapi.binance.com"
    api_key: Secret = field(default_factory=lambda: Secret(""))
    api_secret: Secret = field(default_factory=lambda: Secret(""))
    connect_timeout_seconds: float = 3.05
    timeout_seconds: float = 8.0
    key_type: str = "hmac"
    private_key_path: str = ""
    recv_window_ms: int = 5000
    time_sync_interval_seconds: float = 300.0
    allow_unsafe_key: bool = False
    max_attempts: int = 3
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0

    def has_key(self) -> bool:
        """Whether signed endpoints (account, delistings, wallet networks) can be polled at all."""
        if not self.api_key:
            return False
        return bool(self.api_secret) if self.key_type == "hmac" else bool(self.private_key_path)


MAX_SERVER_TIME_TOLERANCE = 86_400

# The longest detail window: a century is older than any history, and now() minus it is
# still a date (about 2,300 years before now leaves PostgreSQL's timestamps).
MAX_DETAIL_HOURS = 100 * 365 * 24


@dataclass(frozen=True)
class PollerSettings:
    exchange_info_interval: float = 10.0
    usdm_exchange_info_interval: float = 10.0
    coinm_exchange_info_interval: float = 10.0
    account_interval: float = 10.0
    system_status_interval: float = 30.0
    delistings_interval: float = 300.0
    wallet_networks_interval: float = 60.0
    margin_pairs_interval: float = 60.0
    margin_isolated_pairs_interval: float = 60.0
    margin_delistings_interval: float = 300.0
    commission_symbols: tuple[str, ...] = ()
    replica_id: str = ""
    shutdown_grace_seconds: float = 5.0
    weight_budget: float = 0.25
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 5.0
    server_time_tolerance_seconds: float = 5.0
    observation_detail_hours: float = 48.0
    compaction_interval_seconds: float = 3600.0

    def observation_detail(self) -> timedelta | None:
        """How long an unchanged poll keeps its detail row (core.obslog); None: forever."""
        if self.observation_detail_hours == 0:
            return None
        return timedelta(hours=self.observation_detail_hours)

    def server_time_tolerance(self) -> timedelta:
        """How far Binance's serverTime may lie outside its request's window (core.dating)."""
        return timedelta(seconds=self.server_time_tolerance_seconds)


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: Secret = field(default_factory=lambda: Secret(""))
    database_url: Secret = field(default_factory=lambda: Secret(""))
    workers: int = 2
    threads: int = 8
    answer_cache_entries: int = 4096


@dataclass(frozen=True)
class RealtimeSettings:
    enabled: bool = False
    spot_stream_url: str = "wss://stream.binance.com:9443"
    usdm_stream_url: str = "wss://fstream.binance.com/market"
    coinm_stream_url: str = "wss://dstream.binance.com"
    spot_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    spot_symbols: tuple[str, ...] = ()
    silence_factor: float = 5.0
    min_silence_seconds: float = 0.5
    suspicion_weight_share: float = 0.2
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    reconnect_base_seconds: float = 0.5
    reconnect_cap_seconds: float = 30.0

    def stream_url(self, market: str) -> str:
        """Where ``market``'s WebSocket streams are, without a trailing slash."""
        url: str = getattr(self, f"{market}_stream_url")
        return url.rstrip("/")


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    binance: BinanceSettings = field(default_factory=BinanceSettings)
    poller: PollerSettings = field(default_factory=PollerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    log: LogSettings = field(default_factory=LogSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)

    def stream_intervals(self) -> dict[str, float]:
        """Seconds between polls of each declared stream (core.streams), as the gap rule
        (3x interval) needs them."""
        return {
            s.name: cast(float, getattr(self.poller, s.interval_setting))
            for s in catalogue.CATALOGUE
        }

    def stream_sources(self) -> dict[str, str]:
        """Where each enabled stream is polled from (core.sources): its history's source."""
        return {name: source_of(base_url(self, name)) for name in self.enabled_streams()}

    def poll_weights(self) -> dict[str, int]:
        """Request weight of one poll of each stream, with these settings, as the weight
        budget's arithmetic counts it (core.weight_plan)."""
        symbols = len(self.poller.commission_symbols)
        return {
            s.name: s.weight * (symbols if s.per_commission_symbol else 1)
            for s in catalogue.CATALOGUE
        }

    def enabled_streams(self) -> tuple[str, ...]:
        """The streams a poller with these settings polls (signed or keyed ones need a key)."""
        return tuple(
            s.name
            for s in catalogue.CATALOGUE
            if (not s.needs_key or self.binance.has_key())
            and (not s.per_commission_symbol or self.poller.commission_symbols)
        )


def base_url(settings: Settings, stream: str) -> str:
    """The base URL ``stream`` is polled on: its market's ``[binance]`` setting
    (core.streams.BASE_URL_SETTINGS), without a trailing slash. The one place a stream's
    base URL is looked up, so that whatever needs it per stream (the poller's clients, a
    history's source) agrees."""
    market = catalogue.stream(stream).market
    url: str = getattr(settings.binance, catalogue.BASE_URL_SETTINGS[market])
    return url.rstrip("/")


def _section_types() -> dict[str, type[Any]]:
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings)}


def _to_bool(raw: object, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and isinstance(raw, str) and raw.lower() in {"true", "false", "1", "0"}:
        return raw.lower() in {"true", "1"}
    raise TypeError("true or false")


def _to_int(raw: object, from_env: bool) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if from_env and isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise TypeError("an integer")


def _to_float(raw: object, from_env: bool) -> float:
    # TOML and float() both read nan and inf; no setting means either, and a NaN passes
    # every range check below (nan < 0 is false) to fail later, as a traceback or worse.
    value = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif from_env and isinstance(raw, str):
        with contextlib.suppress(ValueError):
            value = float(raw)
    if not math.isfinite(value):
        raise TypeError("a finite number")
    return value


def _to_str(raw: object, from_env: bool) -> str:
    if isinstance(raw, str):
        return raw
    raise TypeError("a string")


def _to_str_tuple(raw: object, from_env: bool) -> tuple[str, ...]:
    """A TOML list of strings, or in the environment a comma-separated list."""
    if from_env and isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, list) and all(isinstance(x, str) and x for x in raw):
        return tuple(raw)
    raise TypeError("a list of strings")


_CONVERTERS: dict[Any, Callable[[object, bool], object]] = {
    Secret: lambda raw, env: Secret(_to_str(raw, env)),
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    tuple[str, ...]: _to_str_tuple,
}


def _coerce(section: str, key: str, kind: Any, raw: object, *, from_env: bool) -> object:
    try:
        return _CONVERTERS[kind](raw, from_env)
    except TypeError as expected:
        raise ConfigError(f"[{section}] {key} must be {expected}, got {raw!r}") from None


def _validate(settings: Settings) -> None:
    for s in catalogue.CATALOGUE:
        value = getattr(settings.poller, s.interval_setting)
        if value <= 0:
            raise ConfigError(f"[poller] {s.interval_setting} must be positive, got {value}")
    b = settings.binance
    if b.timeout_seconds <= 0 or b.connect_timeout_seconds <= 0:
        raise ConfigError("[binance] timeouts must be positive")
    if not 1 <= b.max_attempts <= 10:
        raise ConfigError(f"[binance] max_attempts must be 1..10, got {b.max_attempts}")
    if not 0 < b.backoff_base_seconds <= b.backoff_cap_seconds:
        raise ConfigError(
            "[binance] backoff_base_seconds must be positive and at most backoff_cap_seconds"
        )
    if not 0 < settings.poller.weight_budget <= 1:
        raise ConfigError(
            f"[poller] weight_budget must be in (0, 1], got {settings.poller.weight_budget}"
        )
    _validate_replica_timing(settings.poller)
    # A serverTime a day outside its request dates nothing; past ~1e14 s the timedelta
    # every command builds from it (verify, the poller) overflows.
    if not 0 <= settings.poller.server_time_tolerance_seconds <= MAX_SERVER_TIME_TOLERANCE:
        raise ConfigError(
            f"[poller] server_time_tolerance_seconds must be 0 to {MAX_SERVER_TIME_TOLERANCE}"
            f" (a day), got {settings.poller.server_time_tolerance_seconds:g}"
        )
    _validate_database_timeouts(settings.database)
    _validate_compaction(settings.poller)
    _validate_realtime(settings.realtime)
    _validate_database_url("database", "url", settings.database.url)
    _validate_database_url("api", "database_url", settings.api.database_url)
    _validate_log(settings.log)
    for key in catalogue.BASE_URL_SETTINGS.values():
        try:
            source_of(getattr(b, key))
        except SourceError as exc:
            raise ConfigError(f"[binance] {key} {exc}") from None
    _validate_signing(b)
    if not 0 <= settings.api.port <= 65535:
        raise ConfigError(f"[api] port must be 0..65535, got {settings.api.port}")
    if settings.api.workers < 1 or settings.api.threads < 1:
        raise ConfigError("[api] workers and threads must be at least 1")
    if settings.api.answer_cache_entries < 0:
        raise ConfigError(
            f"[api] answer_cache_entries must be 0 or more, got {settings.api.answer_cache_entries}"
        )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


def postgres_url(url: str) -> URL:
    """The URLs people paste (``postgres://``, ``postgresql://``), pinned to psycopg 3.

    The message never repeats an unparsable value: it is a secret that may hold a password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number (h:5432x)
        raise ConfigError(
            "is not a URL; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"is not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}"
            " (expected postgresql://...)"
        )
    return parsed.set(drivername="postgresql+psycopg")


# PostgreSQL's statement_timeout and libpq's timeouts are whole milliseconds in a 32-bit
# integer, and 0 ms means no bound at all (core.db).
DATABASE_TIMEOUT_RANGE = (0.001, 2_147_483.647)


def _validate_database_timeouts(d: DatabaseSettings) -> None:
    low, high = DATABASE_TIMEOUT_RANGE
    for key in ("connect_timeout_seconds", "statement_timeout_seconds"):
        value = getattr(d, key)
        if not low <= value <= high:
            raise ConfigError(f"[database] {key} must be {low} to {high}, got {value:g}")


def _validate_replica_timing(p: PollerSettings) -> None:
    # A replica heartbeating every 0 s is "silent" to `exmeta replicas` at once, and a
    # lease of 0 s is taken over by the next replica's tick.
    for key in ("lease_seconds", "heartbeat_seconds"):
        if getattr(p, key) <= 0:
            raise ConfigError(f"[poller] {key} must be positive, got {getattr(p, key):g}")
    if p.shutdown_grace_seconds < 0:
        raise ConfigError(
            f"[poller] shutdown_grace_seconds must be 0 or more, got {p.shutdown_grace_seconds:g}"
        )


def _validate_compaction(p: PollerSettings) -> None:
    if p.observation_detail_hours < 0:
        raise ConfigError(
            "[poller] observation_detail_hours must be 0 (keep all) or more,"
            f" got {p.observation_detail_hours}"
        )
    if p.observation_detail_hours > MAX_DETAIL_HOURS:
        raise ConfigError(
            f"[poller] observation_detail_hours must be at most {MAX_DETAIL_HOURS} (a century),"
            f" got {p.observation_detail_hours:g}"
        )
    if p.compaction_interval_seconds <= 0:
        raise ConfigError(
            f"[poller] compaction_interval_seconds must be positive, got {p.compaction_interval_seconds}"
        )


def _validate_realtime(r: RealtimeSettings) -> None:
    urls = {f"{market}_stream_url": r.stream_url(market) for market in catalogue.MARKETS}
    for key, url in {**urls, "spot_api_url": r.spot_api_url}.items():
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"[realtime] {key} must be a ws:// or wss:// URL")
    if r.silence_factor <= 1 or r.min_silence_seconds <= 0:
        raise ConfigError(
            "[realtime] silence_factor must be above 1 and min_silence_seconds positive"
        )
    if not 0 <= r.suspicion_weight_share <= 1:
        raise ConfigError(
            f"[realtime] suspicion_weight_share must be in [0, 1], got {r.suspicion_weight_share}"
        )
    if r.ping_interval_seconds <= 0 or r.ping_timeout_seconds <= 0:
        raise ConfigError(
            "[realtime] ping_interval_seconds and ping_timeout_seconds must be positive"
        )
    if not 0 < r.reconnect_base_seconds <= r.reconnect_cap_seconds:
        raise ConfigError(
            "[realtime] reconnect_base_seconds must be positive and at most reconnect_cap_seconds"
        )


def _validate_log(log: LogSettings) -> None:
    # logging.basicConfig would raise on an unknown level, after a command had started.
    if log.level.upper() not in LOG_LEVELS:
        raise ConfigError(f"[log] level must be one of {', '.join(LOG_LEVELS)}, got {log.level!r}")


def _validate_database_url(section: str, key: str, value: Secret) -> None:
    if value:
        try:
            postgres_url(value.reveal())
        except ConfigError as exc:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(f"[{section}] {key} ({env}) {exc}") from None


KEY_TYPES = ("hmac", "ed25519")
MAX_RECV_WINDOW_MS = 60_000  # Binance refuses a larger recvWindow


def _validate_signing(b: BinanceSettings) -> None:
    if b.key_type not in KEY_TYPES:
        raise ConfigError(f"[binance] key_type must be hmac or ed25519, got {b.key_type!r}")
    if not 1 <= b.recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ConfigError(f"[binance] recv_window_ms must be 1..60000, got {b.recv_window_ms}")
    if b.time_sync_interval_seconds <= 0:
        raise ConfigError("[binance] time_sync_interval_seconds must be positive")
    # Half a key is a mistake, not a wish to leave the account stream off: say so.
    if b.api_key and not b.has_key():
        missing = (
            "api_secret (EXMETA_BINANCE__API_SECRET)"
            if b.key_type == "hmac"
            else "private_key_path (EXMETA_BINANCE__PRIVATE_KEY_PATH)"
        )
        raise ConfigError(f"[binance] api_key is set but {missing} is not")


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (if given) and the environment into validated, immutable settings."""
    env = os.environ if environ is None else environ
    data = _read_file(path) if path is not None else {}

    section_types = _section_types()
    values: dict[str, dict[str, object]] = {name: {} for name in section_types}
    for section, content in data.items():
        if section not in section_types:
            raise ConfigError(f"unknown section [{section}] in {path}")
        if not isinstance(content, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
        hints = get_type_hints(section_types[section])
        for key, raw in content.items():
            if key not in hints:
                raise ConfigError(f"unknown setting [{section}] {key} in {path}")
            values[section][key] = _coerce(section, key, hints[key], raw, from_env=False)

    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        if "__" not in var:
            _refuse_single_underscore(var, section_types)
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if section not in section_types:
            raise ConfigError(f"unknown section in environment variable {var}")
        hints = get_type_hints(section_types[section])
        if key not in hints:
            raise ConfigError(f"unknown setting in environment variable {var}")
        values[section][key] = _coerce(section, key, hints[key], raw, from_env=True)

    settings = Settings(
        **{name: kind(**values[name]) for name, kind in section_types.items()},
    )
    _validate(settings)
    return settings


# A settings file is a few KiB; reading more would let --config /dev/zero fill memory. A
# size cap rather than "regular files only": --config <(...) is a FIFO.
MAX_CONFIG_BYTES = 1024 * 1024


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than 1 MiB: not a settings file")
        return tomllib.loads(data.decode())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _refuse_single_underscore(var: str, section_types: Mapping[str, type[Any]]) -> None:
    """``EXMETA_API_TOKEN`` for ``EXMETA_API__TOKEN`` would be silently ignored (the
    section is separated by two underscores), leaving a secret unset: refuse it by name.
    Other ``EXMETA_*`` variables (the tests' ``EXMETA_TEST_DATABASE_URL``) name no setting
    and pass."""
    name = var[len(ENV_PREFIX) :].lower()
    for section, kind in section_types.items():
        key = name.removeprefix(f"{section}_")
        if key != name and key in get_type_hints(kind):
            meant = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(f"environment variable {var} is not a setting; did you mean {meant}?")


def replace_section(settings: Settings, section: str, **changes: object) -> Settings:
    """A copy of ``settings`` with some keys of one section changed (for `exmeta up`, tests)."""
    current = getattr(settings, section)
    return dataclasses.replace(settings, **{section: dataclasses.replace(current, **changes)})
