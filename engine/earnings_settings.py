"""``[earnings]`` configuration: the daily earnings-calendar sync, flags and fundamentals.

Written in the style of :mod:`engine.config` (frozen, unknown keys refused, constraints in
``Annotated``) so that it can move there as ``Config.earnings`` unchanged; until it does,
:func:`earnings_settings` reads ``config.earnings`` when present and falls back to the defaults.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final, Literal

import msgspec

_HHMM: Final = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

Subject = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")]
StreamName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
KeyPrefix = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_:\-]{1,64}$")]
TableName = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,32}$")]


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
            raise ValueError("sync_times: must list at least one HH:MM time")
        for t in self.sync_times:
            if not _HHMM.match(t):
                raise ValueError(f"sync_times: {t!r} is not an HH:MM time (00:00-23:59)")
        if self.retry_max_s < self.retry_base_s:
            raise ValueError(f"retry_max_s: {self.retry_max_s} must be >= retry_base_s")
        if self.flag_key_prefix == self.analysis_key_prefix:
            raise ValueError("flag_key_prefix and analysis_key_prefix must differ")

    def times(self) -> tuple[dt.time, ...]:
        """``sync_times`` as sorted, distinct :class:`datetime.time` values."""
        return tuple(sorted({dt.time.fromisoformat(t) for t in self.sync_times}))


def earnings_settings(config: Any) -> EarningsSettings:
    """``config.earnings`` once the lead has moved the section into Config, else defaults."""
    value = getattr(config, "earnings", None)
    return value if isinstance(value, EarningsSettings) else EarningsSettings()
