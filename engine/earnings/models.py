"""What the earnings sources produce: events, row issues, calendar pages and fetches, fundamentals.

Both sources (:mod:`engine.earnings.calendar`, the primary, and
:mod:`engine.earnings.quotesummary`, the fallback and the fundamentals) produce these types, and
:class:`CalendarCollector` merges pages of either into one :class:`CalendarFetch`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final, Literal, TypeVar

import msgspec

SOURCE_CALENDAR: Final = "yahoo_calendar"
SOURCE_QUOTE_SUMMARY: Final = "yahoo_quotesummary"

Timing = Literal["BMO", "AMC", "DMH", "TMC"]
Clock = Callable[[], dt.datetime]
S = TypeVar("S", bound=msgspec.Struct)


class Trigger(StrEnum):
    """What started a sync: its slot came, or an operator ran ``earnings sync``."""

    SCHEDULE = "schedule"
    MANUAL = "manual"


class SyncStatus(StrEnum):
    """How a sync ended (``<table>_syncs.status``): only a complete one covers its slot."""

    COMPLETE = "complete"
    FAILED = "failed"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EarningsEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One earnings report as the engine keeps it."""

    symbol: str
    event_date: dt.date  # New York date of event_time
    event_time: dt.datetime  # UTC; a placeholder when timing is TMC
    timing: Timing
    company_name: str | None = None
    event_name: str | None = None
    market_cap: int | None = None
    eps_estimate: float | None = None
    eps_reported: float | None = None
    surprise_pct: float | None = None
    source: str = SOURCE_CALENDAR

    @property
    def key(self) -> tuple[str, dt.date]:
        return self.symbol, self.event_date


def project(e: EarningsEvent, into: type[S], **extra: Any) -> S:
    """An ``into`` holding the same-named fields of ``e`` and ``extra`` (validated; the other
    fields of ``e`` are left out): the event as a flag, a message, ..."""
    return msgspec.convert({**msgspec.structs.asdict(e), **extra}, into)


class RowIssue(msgspec.Struct, frozen=True):
    """A rejected row (``rejections``) or a field that was nulled (``warnings``)."""

    row: int  # 0-based position in its page
    symbol: str | None
    reason: str
    detail: str = ""


class CalendarPage(msgspec.Struct):
    events: list[EarningsEvent]
    rejections: list[RowIssue]
    warnings: list[RowIssue]
    rows: int  # rows in the page, whatever became of them
    total: int | None  # Yahoo's total match count, when given


class CalendarFetch(msgspec.Struct):
    """A whole calendar window."""

    start: dt.date
    end: dt.date
    source: str
    events: list[EarningsEvent]
    rejections: list[RowIssue]
    warnings: list[RowIssue]
    pages: int = 0
    requests: int = 0
    total: int | None = None
    outside_window: int = 0
    duplicates: int = 0


class Fundamentals(msgspec.Struct, frozen=True, kw_only=True):
    """Basic fundamentals of one symbol (fractions for margins, USD unless ``currency``)."""

    symbol: str
    fetched_at: dt.datetime
    eps_trailing: float | None = None
    eps_forward: float | None = None
    revenue: float | None = None
    gross_margin: float | None = None
    operating_margin: float | None = None
    profit_margin: float | None = None
    currency: str | None = None
    latest_quarter: str | None = None  # Yahoo's label, e.g. "3Q2026"
    latest_quarter_eps_estimate: float | None = None
    latest_quarter_eps_actual: float | None = None
    source: str = SOURCE_QUOTE_SUMMARY
    available: bool = True  # False: Yahoo has no fundamentals for the symbol (404)


class CalendarCollector:
    """Merges pages: de-duplication by (symbol, date), window filter, counters."""

    def __init__(self, start: dt.date, end: dt.date, source: str) -> None:
        self.out = CalendarFetch(start, end, source, [], [], [])
        self._seen: set[tuple[str, dt.date]] = set()

    def add(self, page: CalendarPage) -> None:
        out = self.out
        out.pages += 1
        out.rejections.extend(page.rejections)
        out.warnings.extend(page.warnings)
        for e in page.events:
            if not out.start <= e.event_date <= out.end:
                out.outside_window += 1
            elif e.key in self._seen:
                out.duplicates += 1
            else:
                self._seen.add(e.key)
                out.events.append(e)
