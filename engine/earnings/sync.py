"""One earnings sync (:meth:`EarningsSync.run`) for New York date ``D``.

1. fetch the calendar from ``lookback_days`` trading days before ``D`` to ``D + window_days``
   (:class:`~engine.earnings.calendar.EarningsCalendarFetcher`; the quoteSummary fallback when
   the calendar endpoint is broken - not when Yahoo throttles us or the breaker is open);
2. upsert it into PostgreSQL (:class:`~engine.earnings.store.EarningsStore`: reschedules move
   rows and are logged);
3. if ``D`` is today: set ``earnings_flag:{SYMBOL}`` (TTL 24 h) for every symbol reporting in
   ``[D, D + window_days]`` and delete the flags of symbols that left the window; publish
   ``reporting_today`` for each symbol reporting on ``D`` and ``eps_reported`` for each newly
   reported EPS, each exactly once (:mod:`engine.earnings.publish`); fetch the fundamentals of
   every flagged symbol not already fetched since the slot began into ``earnings_analysis:*``;
4. record the run in ``<table>_syncs``.

Every step is idempotent, so a sync that failed half-way (429 storm, breaker open, database or
NATS outage, some fundamentals missing) is simply run again (:class:`~engine.earnings.job.
EarningsJob` retries it). Only symbols of the universe (``symbols.file``) are flagged, announced
and analysed when ``restrict_to_universe`` is set; the table keeps the whole calendar.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Final

import msgspec

from engine.config import Config, EarningsSettings
from engine.earnings.cache import EarningsCache, flags_for
from engine.earnings.calendar import EarningsCalendarFetcher
from engine.earnings.models import (
    CalendarFetch,
    Clock,
    EarningsEvent,
    SyncStatus,
    Trigger,
    utcnow,
)
from engine.earnings.publish import EarningsPublisher, Kind, build_message, message_id
from engine.earnings.quotesummary import QuoteSummarySource
from engine.earnings.report import SyncReport, count_upsert, log_fields
from engine.earnings.schedule import TradingCalendar, ny_date, previous_trading_day
from engine.earnings.store import AnnounceColumn, EarningsStore, SyncRun
from engine.errors import (
    IngestionError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamStatusError,
)
from engine.source.universe import load_configured

log = logging.getLogger(__name__)

UniverseLoader = Callable[[], frozenset[str] | None]
_SHOWN_ISSUES: Final = 20


def _no_universe() -> frozenset[str] | None:
    return None


def fallback_worthy(exc: UpstreamError) -> bool:
    """The calendar endpoint itself looks broken (not throttling, auth, network or breaker)."""
    if isinstance(exc, RateLimitedError | UpstreamAuthError):
        return False
    return isinstance(exc, UpstreamPayloadError | UpstreamStatusError)


def universe_loader(config: Config, settings: EarningsSettings) -> UniverseLoader:
    """Reads ``symbols.file`` at every sync (None when the sync is not restricted)."""

    def load() -> frozenset[str] | None:
        if not settings.restrict_to_universe:
            return None
        return frozenset(load_configured(config.symbols).symbols)

    return load


@dataclass
class EarningsSync:
    """One sync run with its collaborators injected (see the module docstring)."""

    settings: EarningsSettings
    _: KW_ONLY
    fetcher: EarningsCalendarFetcher
    summaries: QuoteSummarySource
    store: EarningsStore
    cache: EarningsCache | None
    publisher: EarningsPublisher
    calendar: TradingCalendar
    universe: UniverseLoader = _no_universe
    clock: Clock = utcnow

    async def run(
        self,
        sync_date: dt.date,
        *,
        trigger: Trigger,
        covers: dt.datetime,
    ) -> SyncReport:
        """Run one sync; never raises for operational failures (see ``status``/``error``)."""
        started = self.clock()
        t0 = time.perf_counter()
        report = SyncReport(
            sync_date=sync_date,
            trigger=trigger,
            current=sync_date == ny_date(started),
            started_at=started,
        )
        try:
            await self._run(report, covers)
            report.status = SyncStatus.FAILED if report.fundamentals_failed else SyncStatus.COMPLETE
            if report.fundamentals_failed:
                report.error = f"fundamentals failed for {len(report.fundamentals_failed)} symbols"
                report.error_kind = "FundamentalsIncomplete"
        except IngestionError as exc:
            report.status = SyncStatus.FAILED
            report.error = str(exc)[:500]
            report.error_kind = exc.kind
        report.duration_s = round(time.perf_counter() - t0, 3)
        await self._record(report, covers, started)
        level = logging.INFO if report.ok else logging.WARNING
        log.log(level, "earnings_sync_finished", extra=log_fields(report))
        return report

    async def _record(self, report: SyncReport, covers: dt.datetime, started: dt.datetime) -> None:
        summary: dict[str, Any] = msgspec.to_builtins(report)
        run = SyncRun(
            sync_date=report.sync_date,
            trigger=report.trigger,
            covers=covers,
            started_at=started,
            finished_at=self.clock(),
            status=report.status,
            source=report.source,
            summary=summary,
        )
        try:
            await self.store.record_run(run)
        except IngestionError as exc:  # the run itself is what matters; it will be redone
            log.warning(
                "earnings_run_not_recorded",
                extra={"error_kind": exc.kind, "error": str(exc)[:300]},
            )
            if report.ok:
                report.status = SyncStatus.FAILED
                report.error, report.error_kind = str(exc)[:500], exc.kind

    async def _run(self, report: SyncReport, covers: dt.datetime) -> None:
        s = self.settings
        day = report.sync_date
        start = previous_trading_day(day, self.calendar, s.lookback_days)
        end = day + dt.timedelta(days=s.window_days)
        report.fetch_start, report.fetch_end = start, end
        universe = self.universe()
        fetch = await self._fetch(start, end, universe, report)
        upsert = await self.store.upsert(fetch.events, start, end, self.clock())
        count_upsert(report, upsert)
        if not report.current:
            return
        in_scope = [e for e in fetch.events if universe is None or e.symbol in universe]
        window = [e for e in in_scope if day <= e.event_date <= end]
        flagged = await self._flags(window, report)
        await self._announce(in_scope, day, report)
        if s.fundamentals and self.cache is not None:
            await self._fundamentals(flagged, covers, report)

    async def _fetch(
        self, start: dt.date, end: dt.date, universe: frozenset[str] | None, report: SyncReport
    ) -> CalendarFetch:
        try:
            fetch = await self.fetcher.fetch(start, end)
        except UpstreamError as exc:
            if self.settings.fallback == "none" or universe is None or not fallback_worthy(exc):
                raise
            log.warning(
                "earnings_calendar_fallback",
                extra={"error_kind": exc.kind, "error": str(exc)[:300], "symbols": len(universe)},
            )
            fetch = await self.summaries.fetch_calendar_events(sorted(universe), start, end)
            report.fallback_used = True
        report.source = fetch.source
        report.fetched = len(fetch.events)
        report.rejected = len(fetch.rejections)
        report.warnings = len(fetch.warnings)
        report.outside_window = fetch.outside_window
        report.duplicates = fetch.duplicates
        report.pages = fetch.pages
        report.requests = fetch.requests
        report.rejections = fetch.rejections[:_SHOWN_ISSUES]
        for issue in fetch.rejections[:_SHOWN_ISSUES]:
            log.warning(
                "earnings_row_rejected",
                extra={"symbol": issue.symbol, "reason": issue.reason, "detail": issue.detail},
            )
        return fetch

    async def _flags(self, window: Sequence[EarningsEvent], report: SyncReport) -> list[str]:
        flags = flags_for(window)
        if self.cache is not None:
            report.flags_set = await self.cache.set_flags(flags)
            report.flags_cleared = await self.cache.clear_stale_flags(flags)
        return list(flags)

    async def _announce(
        self, events: Sequence[EarningsEvent], day: dt.date, report: SyncReport
    ) -> None:
        today = [e for e in events if e.event_date == day]
        reported = [e for e in events if e.eps_reported is not None]
        n, dup = await self._announce_kind("reporting_today", "announced_at", today, day)
        report.announced_reporting, report.publish_duplicates = n, dup
        n, dup = await self._announce_kind("eps_reported", "reported_announced_at", reported, day)
        report.announced_eps = n
        report.publish_duplicates += dup

    async def _announce_kind(
        self, kind: Kind, column: AnnounceColumn, events: Sequence[EarningsEvent], day: dt.date
    ) -> tuple[int, int]:
        if not events:
            return 0, 0
        pending = await self.store.unannounced([e.key for e in events], column)
        todo = sorted((e for e in events if e.key in pending), key=lambda e: e.key)
        if not todo:
            return 0, 0
        now = self.clock()
        outcome = await self.publisher.publish(
            [(message_id(kind, e), build_message(kind, e, day, now)) for e in todo]
        )
        await self.store.mark_announced([e.key for e in todo], column, now)
        return outcome.published, outcome.duplicates

    async def _fundamentals(
        self, symbols: Sequence[str], since: dt.datetime, report: SyncReport
    ) -> None:
        assert self.cache is not None
        fresh = await self.cache.fresh_analyses(symbols, since)
        todo = [s for s in symbols if s not in fresh]
        report.fundamentals_skipped = len(symbols) - len(todo)
        ok, failed = await self.summaries.many_fundamentals(todo)
        await self.cache.write_analyses(ok)
        report.fundamentals_written = sum(1 for f in ok if f.available)
        report.fundamentals_unavailable = sum(1 for f in ok if not f.available)
        report.fundamentals_failed = sorted(failed)
        if failed:
            kinds = sorted({e.kind for e in failed.values()})
            log.warning(
                "earnings_fundamentals_incomplete", extra={"failed": len(failed), "errors": kinds}
            )
