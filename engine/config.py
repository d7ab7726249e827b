"""Configuration: ``config.toml`` decoded into msgspec Structs, with environment overrides.

Precedence (lowest to highest): the Struct defaults, the TOML file, then environment variables
named ``INGEST_<SECTION>__<KEY>`` (``INGEST_NATS__URL``, ``INGEST_SCHEDULER__INTERVAL_S``, ...).
Environment values are strings; they are converted to the field's type (``"true"``/``"1"`` for
booleans, JSON for lists). Anything invalid raises :class:`~engine.errors.ConfigError` naming the
key (and its env name), the offending value and what is allowed. Values of secret fields
(DSNs, URLs that may carry a password) are wrapped in :class:`Secret` and never printed.
The Structs here are the one place each setting and its default is defined; the loading
machinery (environment variables, per-key checks and messages) is :mod:`engine.configload`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import msgspec

from engine.configload import Secret as Secret
from engine.configload import SettingError, build, env_overrides
from engine.configload import env_name as env_name
from engine.configload import redact_url as redact_url
from engine.errors import ConfigError
from engine.retry import RETRY_AFTER_CAP_S

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Subject = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")]
StreamName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
KeyPrefix = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_:\-]{1,64}$")]
TableName = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,32}$")]
FETCH_BOUND_MIN_S: Final = 30.0
"""The default fetch-phase bound (``scheduler.fetch_timeout_s = 0``) is never shorter."""
_HHMM: Final = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
NATS_SCHEMES: Final = ("nats", "tls", "ws", "wss")
POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
REDIS_SCHEMES: Final = ("redis", "rediss", "unix")


def url_problem(url: str, schemes: tuple[str, ...], example: str) -> str | None:
    """Why ``url`` is not a ``scheme://[user@]host[:port][,host[:port]...]/...`` URL of one of
    ``schemes`` (the value quoted with its credentials redacted), or None if it is one."""
    shown = repr(redact_url(url))
    allowed = f"use e.g. {example}"
    if not url.strip():
        return f"is empty: {allowed}"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        names = ", ".join(f"{s}://" for s in schemes)
        return f"{shown} must start with {names}: {allowed}"
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if not netloc and scheme.lower() != "unix":
        return f"{shown} names no host: {allowed}"
    for host in filter(None, netloc.split(",")):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, digits = port.rpartition(":")
        if colon and not (digits.isdigit() and 0 < int(digits) <= 65535):
            return f"{shown} has port {digits!r}: a port is a number 1-65535; {allowed}"
    return None


class YahooSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base_url: str = ""
    """One origin (``http://127.0.0.1:8765``) replacing every Yahoo host; empty = real Yahoo."""
    transport: Literal["curl_cffi", "aiohttp"] = "curl_cffi"
    impersonate: str = "chrome"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1500)] = 50
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=512)] = 4
    timeout_s: PositiveFloat = 10.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    backoff_base_s: PositiveFloat = 0.25
    backoff_max_s: PositiveFloat = 8.0
    crumb_min_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    # adaptive rate limit shared by every process and every Yahoo call (engine/source/ratelimit.py)
    rate_initial_rps: PositiveFloat = 10.0
    rate_min_rps: PositiveFloat = 0.2
    rate_max_rps: PositiveFloat = 50.0
    rate_burst: Annotated[float, msgspec.Meta(ge=1)] = 120.0
    rate_increase_rps: PositiveFloat = 0.5
    rate_decrease_factor: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    rate_slow_latency_s: PositiveFloat = 3.0
    rate_window: Annotated[int, msgspec.Meta(ge=1, le=52)] = 20
    rate_window_throttles: Annotated[int, msgspec.Meta(ge=1, le=52)] = 5
    """A 429 cuts the rate only when it is one of at least ``rate_window_throttles`` 429s among
    the last ``rate_window`` answers (congestion); an isolated 429 is retried, not obeyed."""
    # circuit breaker (engine/source/breaker.py)
    breaker_consecutive_failures: Annotated[int, msgspec.Meta(ge=1)] = 8
    breaker_failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    breaker_min_calls: Annotated[int, msgspec.Meta(ge=1)] = 20
    breaker_window_s: PositiveFloat = 60.0
    breaker_cooldown_s: PositiveFloat = 5.0
    retry_after_max_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = RETRY_AFTER_CAP_S
    """Longest Retry-After honoured (the rate limiter's pause, a retry's wait): a server asking
    for more is waited on for this long."""

    def __post_init__(self) -> None:
        if self.base_url:
            parts = urlsplit(self.base_url)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
            ):
                raise SettingError(
                    "base_url",
                    f"{self.base_url!r} must be one origin such as "
                    "http://127.0.0.1:8765 (scheme and host, no path), or empty for real Yahoo",
                )
        if not self.rate_min_rps <= self.rate_initial_rps <= self.rate_max_rps:
            raise SettingError(
                "rate_initial_rps",
                f"{self.rate_initial_rps} must lie between rate_min_rps "
                f"({self.rate_min_rps}) and rate_max_rps ({self.rate_max_rps})",
            )
        if self.rate_window_throttles > self.rate_window:
            raise SettingError(
                "rate_window_throttles",
                f"{self.rate_window_throttles} must be <= rate_window ({self.rate_window})",
            )
        if self.backoff_max_s < self.backoff_base_s:
            raise SettingError(
                "backoff_max_s",
                f"{self.backoff_max_s} must be >= backoff_base_s ({self.backoff_base_s})",
            )


class SchedulerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval_s: Annotated[float, msgspec.Meta(ge=0.5, le=3600)] = 10.0
    spread: bool = False
    """Spread a cycle's batches evenly over the interval (true) or send them at once (false)."""
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 20.0
    """TOTAL seconds from SIGTERM to exit: the workers finish the cycle in flight, then the
    publisher drains the rings; a child still running then is killed. Keep it below the stop
    timeout of the container (``stop_grace_period``) or unit (``TimeoutStopSec``)."""
    fetch_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0.0
    """Longest fetch phase of one cycle; symbols not fetched by then count as failed
    (``FetchTimeout``) and go first next cycle. 0: twice ``interval_s``, at least
    :data:`FETCH_BOUND_MIN_S` (a slow but working cycle over a large universe is not cut)."""

    def fetch_bound_s(self) -> float:
        """The fetch phase's bound in seconds (``fetch_timeout_s``, or twice the interval)."""
        return self.fetch_timeout_s or max(2 * self.interval_s, FETCH_BOUND_MIN_S)


class WorkersSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=0, le=256)] = 0
    """Worker processes; 0 means one per CPU core available to the process."""
    shards: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 64
    ring_capacity: Annotated[int, msgspec.Meta(ge=1024, le=1 << 24)] = 65536
    """Records per worker ring (rounded up to a power of two)."""
    restart_backoff_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0
    skip_unchanged: bool = True
    """Do not re-publish a quote whose market time equals the last one written for its symbol
    (JetStream would deduplicate it only within its duplicate window)."""


OnInvalid = Literal["reject", "skip"]
"""What an unusable line of the symbols file does: stop the load, or be skipped (summarised in
one ``symbols_skipped`` warning and counted in ``ingestion_symbols_skipped``)."""


class SymbolsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    file: str = "symbols.json"
    on_invalid: OnInvalid = "skip"
    """``skip``: drop unusable lines (one summarised warning, a metric); ``reject``: refuse the
    whole file (strict: exit 2 at start, the old universe kept on SIGHUP)."""
    translate_nasdaq: bool = True
    """Translate Nasdaq-screener and dot notation (``BRK/B``, ``ABR^D``, ``RAC/WS``, ``BRK.B``)
    into Yahoo's (``BRK-B``, ``ABR-PD``, ``RAC-WT``); false: such a line is unusable."""


class NatsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Secret = msgspec.field(default_factory=lambda: Secret("nats://127.0.0.1:4222"))
    stream: StreamName = "MARKET_QUOTES"
    subject: Subject = "data.market.quote"
    dlq_stream: StreamName = "MARKET_DLQ"
    dlq_subject: Subject = "data.market.dlq"
    duplicate_window_s: Annotated[float, msgspec.Meta(ge=1, le=86400)] = 120.0
    max_age_s: Annotated[float, msgspec.Meta(ge=60)] = 7 * 86400.0
    max_pending_acks: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 4000
    ack_timeout_s: PositiveFloat = 5.0
    connect_timeout_s: PositiveFloat = 5.0
    outbox_dir: str = "var/outbox"
    """Durable outbox for messages NATS could not take; replayed in order when it is back."""
    outbox_max_bytes: Annotated[int, msgspec.Meta(ge=1 << 20)] = 1 << 30
    outbox_after_s: PositiveFloat = 2.0
    """Seconds a batch is retried against JetStream before it is put in the outbox."""

    def __post_init__(self) -> None:
        example = "nats://127.0.0.1:4222 (several servers: nats://a:4222,nats://b:4222)"
        for url in self.url.reveal().split(","):
            problem = url_problem(url, NATS_SCHEMES, example)
            if problem:
                raise SettingError("url", problem)

    def servers(self) -> list[str]:
        """The servers of ``url`` (``nats://a:4222,nats://b:4222`` names two)."""
        return [u.strip() for u in self.url.reveal().split(",") if u.strip()]


class PostgresSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    dsn: Secret = msgspec.field(
        default_factory=lambda: Secret("postgresql://postgres@127.0.0.1:5432/postgres")
    )
    table: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,40}$")] = "market_data"
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 7
    partitions_ahead_days: Annotated[int, msgspec.Meta(ge=1, le=60)] = 3
    pool_size: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    command_timeout_s: PositiveFloat = 10.0
    connect_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    connect_backoff_s: PositiveFloat = 1.0
    max_buffered_rows: Annotated[int, msgspec.Meta(ge=1000)] = 200_000
    """Rows kept in memory while PostgreSQL is down before spilling to ``spill_dir``."""
    spill_dir: str = "var/spill"
    flush_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 2.0
    """How long the publisher waits for PostgreSQL to take a batch before spilling it to disk
    (only then may the batch leave the shared-memory ring)."""
    reconcile_lookback_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 300.0
    """At start the publisher writes to PostgreSQL the quotes the stream stored in this many
    seconds before its last message that the table lacks (an engine killed after JetStream's ack,
    before the COPY); 0 disables it."""

    def __post_init__(self) -> None:
        example = "postgresql://user@127.0.0.1:5432/dbname"
        problem = url_problem(self.dsn.reveal(), POSTGRES_SCHEMES, example)
        if problem and self.enabled:
            raise SettingError("dsn", problem)


class RedisSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    url: Secret = msgspec.field(default_factory=lambda: Secret("redis://127.0.0.1:6379/0"))
    key_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_:\-]{0,64}$")] = "market:"
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    timeout_s: PositiveFloat = 2.0

    def __post_init__(self) -> None:
        problem = url_problem(self.url.reveal(), REDIS_SCHEMES, "redis://127.0.0.1:6379/0")
        if problem and self.enabled:
            raise SettingError("url", problem)


class HttpSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9108
    stall_after_s: PositiveFloat = 60.0
    """/healthz turns 503 when a stage with work makes no progress for this long."""


class ValidationSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_move: Annotated[float, msgspec.Meta(gt=1, le=1000)] = 5.0
    """A price more than ``max_move`` times (or less than 1/``max_move``) its own reference
    (previous close, else day range, else 52-week range, from the same quote) is held as
    ``price_unconfirmed`` until a second read confirms it (engine/plausibility.py)."""
    min_price: PositiveFloat = 0.0001
    max_price: PositiveFloat = 10_000_000.0
    """Absolute bounds (inclusive): only for a quote without any reference and for a confirmed
    move beyond ``max_move``; wide enough for sub-cent warrants and BRK-A (~$740,000). The seed's
    literal bounds, applied to every quote, were 0.01..100,000."""
    max_age_regular_s: PositiveFloat = 300.0
    max_future_skew_s: PositiveFloat = 120.0
    dlq_dedupe_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    """At most one dead letter per (symbol, reason) within this many seconds (0: every one)."""

    def __post_init__(self) -> None:
        if self.max_price <= self.min_price:
            raise SettingError(
                "max_price", f"{self.max_price} must be greater than min_price ({self.min_price})"
            )


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: LogLevel = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class EarningsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    """Run the daily sync as a child process of the supervisor."""
    sync_times: tuple[str, ...] = ("09:30",)
    """``HH:MM`` America/New_York wall times of the sync on each trading day (DST follows the
    zone). Add e.g. ``"17:30"`` to pick up after-close reports the same evening."""
    exchange_calendar: str = "XNYS"
    """exchange_calendars name of the trading calendar (holidays, half days)."""
    window_days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 7
    """Flags and fundamentals cover events from today to today + window_days (New York)."""
    lookback_days: Annotated[int, msgspec.Meta(ge=0, le=10)] = 1
    """Also fetch this many trading days before today, so that EPS reported after the previous
    sync (after-close reports) is stored and announced."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    max_pages: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    """Safety cap of calendar pages per sync (100 x 100 rows)."""
    restrict_to_universe: bool = True
    """Flags, events and fundamentals only for symbols of ``symbols.file`` (the table keeps
    every event of the calendar)."""
    fallback: Literal["none", "quote_summary"] = "quote_summary"
    """When the calendar endpoint fails after retries: ``quote_summary`` asks quoteSummary
    ``calendarEvents`` per universe symbol (slow, needs restrict_to_universe), ``none`` fails."""
    table: TableName = "earnings_calendar"
    subject: Subject = "data.earnings.reported"
    stream: StreamName = "EARNINGS_EVENTS"
    duplicate_window_s: Annotated[float, msgspec.Meta(ge=60, le=7 * 86400)] = 2 * 86400.0
    """JetStream de-duplication window of the stream (Nats-Msg-Id); the table also records what
    was announced, so re-runs after the window do not duplicate either."""
    max_age_s: Annotated[float, msgspec.Meta(ge=3600)] = 30 * 86400.0
    flag_key_prefix: KeyPrefix = "earnings_flag:"
    flag_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 86400
    analysis_key_prefix: KeyPrefix = "earnings_analysis:"
    analysis_ttl_s: Annotated[int, msgspec.Meta(ge=0)] = 8 * 86400
    """TTL of ``earnings_analysis:{SYMBOL}`` hashes; 0 = keep forever."""
    fundamentals: bool = True
    fundamentals_concurrency: Annotated[int, msgspec.Meta(ge=1, le=32)] = 4
    retry_base_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    retry_max_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 900.0
    """A failed sync (429, breaker open, outage) is retried after retry_base_s, doubling up to
    retry_max_s, until it completes or the next sync time arrives."""

    def __post_init__(self) -> None:
        if not self.sync_times:
            raise SettingError("sync_times", "must list at least one HH:MM time")
        for t in self.sync_times:
            if not _HHMM.match(t):
                raise SettingError("sync_times", f"{t!r} is not an HH:MM time (00:00-23:59)")
        if self.retry_max_s < self.retry_base_s:
            raise SettingError("retry_max_s", f"{self.retry_max_s} must be >= retry_base_s")
        if self.flag_key_prefix == self.analysis_key_prefix:
            raise SettingError("flag_key_prefix", "must differ from analysis_key_prefix")

    def times(self) -> tuple[dt.time, ...]:
        """``sync_times`` as sorted, distinct :class:`datetime.time` values."""
        return tuple(sorted({dt.time.fromisoformat(t) for t in self.sync_times}))


class CliSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    service_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    """How long a command waits for a service it needs (NATS, PostgreSQL, Redis) to answer
    before it gives up with one line naming the service; ``run`` waits as long at start before
    it warns that NATS is unreachable (its quotes then go to the outbox)."""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    yahoo: YahooSettings = msgspec.field(default_factory=YahooSettings)
    scheduler: SchedulerSettings = msgspec.field(default_factory=SchedulerSettings)
    workers: WorkersSettings = msgspec.field(default_factory=WorkersSettings)
    symbols: SymbolsSettings = msgspec.field(default_factory=SymbolsSettings)
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    validation: ValidationSettings = msgspec.field(default_factory=ValidationSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    earnings: EarningsSettings = msgspec.field(default_factory=EarningsSettings)
    cli: CliSettings = msgspec.field(default_factory=CliSettings)

    def worker_count(self) -> int:
        if self.workers.count:
            return self.workers.count
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A configuration and where its values came from (``config show`` says so)."""

    config: Config
    file: Path | None
    """The TOML file read (None: defaults and environment only)."""
    env: dict[str, str]
    """``section.key`` -> the ``INGEST_*`` variable that set it."""


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (TOML; None = defaults only) and apply ``INGEST_*`` environment overrides."""
    return load(path, environ).config


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """:func:`load_config`, telling which file and which environment variables it used."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    p = None if path is None else Path(path)
    if p is not None:
        raw = _read_toml(p)
    overrides = env_overrides(env, Config)
    env_keys: set[str] = set()
    for section, values in overrides.items():
        current = raw.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"config file: [{section}] must be a table", key=section)
        raw.setdefault(section, {}).update(values)
        env_keys.update(f"{section}.{k}" for k in values)
    config = build(raw, Config, env_keys)
    return LoadedConfig(config, p, {k: env_name(k) for k in sorted(env_keys)})


def _read_toml(p: Path) -> dict[str, Any]:
    hint = "pass --config PATH of a TOML file (the repo's config.toml documents every key)"
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found; {hint}", key="--config") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {p} is a directory; {hint}", key="--config") from None
    except OSError as exc:
        raise ConfigError(
            f"config file {p} cannot be read ({exc.strerror or type(exc).__name__}); {hint}",
            key="--config",
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}", key="--config") from None


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets redacted (logs, ``config show``)."""

    def enc(obj: Any) -> Any:
        if isinstance(obj, Secret):
            return obj.redacted()
        raise NotImplementedError

    out: dict[str, Any] = msgspec.to_builtins(config, enc_hook=enc)
    return out
