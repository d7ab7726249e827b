"""When the earnings sync runs: trading days of a real exchange calendar, New York wall times.

Pure decisions with the clock passed in (no sleeping here):

* a *slot* is one configured wall time (``09:30`` by default) on one trading session day,
  as an aware ``America/New_York`` datetime - ``datetime.combine`` with the zone, so the UTC
  instant follows DST (13:30Z in summer, 14:30Z in winter);
* trading days come from ``exchange_calendars`` (``XNYS``: weekends, NYSE holidays such as
  Thanksgiving or Good Friday, and their observed dates) rather than a hand-kept list;
* :func:`next_sync` answers "which slot should run next": the latest slot of *today* that has
  passed and is not yet covered by a completed sync (the start-up catch-up: an engine started
  at 11:00 runs today's 09:30 sync at once), else the first future slot on a trading day.
  Earlier days' missed slots are never back-filled: a sync always looks at today.

``covered`` is the newest slot instant a completed sync accounts for (a scheduled sync covers
its slot; a manual ``earnings sync`` covers every slot up to the moment it started).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import warnings
from collections.abc import Sequence
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from engine.retry import backoff_s

NY: Final = ZoneInfo("America/New_York")
_SEARCH_DAYS: Final = 30  # the longest NYSE closure is far shorter


class TradingCalendar(Protocol):
    def is_trading_day(self, day: dt.date) -> bool: ...


class ExchangeCalendar:
    """A ``TradingCalendar`` backed by ``exchange_calendars`` (built lazily per year range)."""

    def __init__(self, name: str = "XNYS") -> None:
        self.name = name

    def is_trading_day(self, day: dt.date) -> bool:
        return day in _sessions(self.name, day.year)


@functools.lru_cache(maxsize=16)
def _sessions(name: str, year: int) -> frozenset[dt.date]:
    """Session dates of ``year`` (the library's build warns about pandas deprecations)."""
    # imported late (heavy: pandas) and untyped: Any either way, whatever mypy knows of it
    xcals: Any = importlib.import_module("exchange_calendars")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = xcals.get_calendar(name, start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")
        sessions = cal.sessions_in_range(f"{year}-01-01", f"{year}-12-31")
        return frozenset(ts.date() for ts in sessions)


@functools.lru_cache(maxsize=1)
def calendar_names() -> frozenset[str]:
    """Every name ``exchange_calendars`` knows (aliases such as NYSE included)."""
    xcals: Any = importlib.import_module("exchange_calendars")
    return frozenset(xcals.get_calendar_names(include_aliases=True))


class WeekdayCalendar:
    """Monday-Friday, no holidays (tests and tools only)."""

    def is_trading_day(self, day: dt.date) -> bool:
        return day.weekday() < 5


def ny_date(now: dt.datetime) -> dt.date:
    return now.astimezone(NY).date()


def slots_on(day: dt.date, times: Sequence[dt.time]) -> list[dt.datetime]:
    """The sync instants of ``day`` (aware, New York), in order."""
    return [dt.datetime.combine(day, t, tzinfo=NY) for t in sorted(times)]


def due_slot(
    now: dt.datetime,
    covered: dt.datetime | None,
    calendar: TradingCalendar,
    times: Sequence[dt.time],
) -> dt.datetime | None:
    """Today's latest passed slot that no completed sync covers yet, or None."""
    today = ny_date(now)
    if not calendar.is_trading_day(today):
        return None
    passed = [s for s in slots_on(today, times) if s <= now]
    if not passed:
        return None
    latest = passed[-1]
    if covered is not None and covered >= latest:
        return None
    return latest


def next_slot(now: dt.datetime, calendar: TradingCalendar, times: Sequence[dt.time]) -> dt.datetime:
    """The first slot strictly after ``now`` on a trading day."""
    day = ny_date(now)
    for _ in range(_SEARCH_DAYS + 1):
        if calendar.is_trading_day(day):
            for s in slots_on(day, times):
                if s > now:
                    return s
        day += dt.timedelta(days=1)
    raise ValueError(f"no trading day within {_SEARCH_DAYS} days after {now.isoformat()}")


def next_sync(
    now: dt.datetime,
    covered: dt.datetime | None,
    calendar: TradingCalendar,
    times: Sequence[dt.time],
) -> dt.datetime:
    """The slot to run next: a due slot of today (<= ``now``: run at once) or the next one."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    due = due_slot(now, covered, calendar, times)
    return due if due is not None else next_slot(now, calendar, times)


def previous_trading_day(day: dt.date, calendar: TradingCalendar, n: int = 1) -> dt.date:
    """The ``n``-th trading day before ``day`` (``day`` itself for n = 0)."""
    for _ in range(n):
        day -= dt.timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if calendar.is_trading_day(day):
                break
            day -= dt.timedelta(days=1)
    return day


def retry_delay(failures: int, base_s: float, max_s: float) -> float:
    """Seconds before retry number ``failures`` of a failed sync (doubling, capped)."""
    if failures < 1:
        return 0.0
    return backoff_s(failures - 1, base_s=base_s, cap_s=max_s, jitter=0.0)
