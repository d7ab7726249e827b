"""The earnings job: daily calendar sync, flags, announcements and basic fundamentals.

One sync (:meth:`EarningsSync.run`) for New York date ``D``:

1. fetch the calendar from ``lookback_days`` trading days before ``D`` to ``D + window_days``
   (:class:`~engine.earnings.source.EarningsCalendarFetcher`; the quoteSummary fallback when
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
NATS outage, some fundamentals missing) is simply run again: :class:`EarningsJob` retries it
after ``retry_base_s`` (doubling up to ``retry_max_s``) until it completes or the next slot is
due. Only symbols of the universe (``symbols.file``) are flagged, announced and analysed when
``restrict_to_universe`` is set; the table keeps the whole calendar.

Scheduling (:mod:`engine.earnings.schedule`): at each ``sync_times`` slot (09:30 New York) of
every NYSE session, and at start-up when today's latest passed slot has no completed run.

Entry points: :func:`run_earnings` (the loop, for the supervisor's child process
:func:`earnings_main`) and :func:`sync_command` (``ingestion-agent earnings sync [--date]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Final, Literal, TextIO

import msgspec

from engine.config import Config, EarningsSettings
from engine.earnings.cache import EarningsCache, flags_for
from engine.earnings.publish import EarningsPublisher, Kind, build_message, message_id
from engine.earnings.schedule import (
    ExchangeCalendar,
    TradingCalendar,
    next_sync,
    ny_date,
    previous_trading_day,
    retry_delay,
)
from engine.earnings.source import (
    CalendarFetch,
    EarningsCalendarFetcher,
    EarningsEvent,
    QuoteSummarySource,
    RowIssue,
    utcnow,
)
from engine.earnings.store import AnnounceColumn, EarningsStore, SyncRun, UpsertResult
from engine.errors import (
    ConfigError,
    IngestionError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamStatusError,
)
from engine.observe import logs, metrics
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.source.client import YahooClient
from engine.source.guard import Guard
from engine.source.universe import load_symbols

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Waiter = Callable[[asyncio.Event, float], Awaitable[None]]
UniverseLoader = Callable[[], frozenset[str] | None]
MAX_WAIT_S: Final = 300.0  # re-evaluate the schedule at least this often
_SHOWN_ISSUES: Final = 20


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did (printed by ``earnings sync``, stored as the run's summary)."""

    sync_date: dt.date
    trigger: Literal["schedule", "manual"]
    status: Literal["complete", "failed"] = "failed"
    current: bool = True  # sync_date is today: flags, announcements and fundamentals apply
    source: str | None = None
    fetch_start: dt.date | None = None
    fetch_end: dt.date | None = None
    fetched: int = 0
    rejected: int = 0
    warnings: int = 0
    outside_window: int = 0
    duplicates: int = 0
    pages: int = 0
    requests: int = 0
    fallback_used: bool = False
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rescheduled: int = 0
    time_changed: int = 0
    flags_set: int = 0
    flags_cleared: int = 0
    announced_reporting: int = 0
    announced_eps: int = 0
    publish_duplicates: int = 0
    fundamentals_written: int = 0
    fundamentals_unavailable: int = 0
    fundamentals_skipped: int = 0
    fundamentals_failed: list[str] = msgspec.field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    started_at: dt.datetime | None = None
    duration_s: float = 0.0
    rejections: list[RowIssue] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def _fallback_worthy(exc: UpstreamError) -> bool:
    """The calendar endpoint itself looks broken (not throttling, auth, network or breaker)."""
    if isinstance(exc, RateLimitedError | UpstreamAuthError):
        return False
    return isinstance(exc, UpstreamPayloadError | UpstreamStatusError)


def universe_loader(config: Config, settings: EarningsSettings) -> UniverseLoader:
    """Reads ``symbols.file`` at every sync (None when the sync is not restricted)."""

    def load() -> frozenset[str] | None:
        if not settings.restrict_to_universe:
            return None
        return frozenset(load_symbols(config.symbols.file, config.symbols.on_invalid).symbols)

    return load


class EarningsSync:
    """One sync run with its collaborators injected (see the module docstring)."""

    def __init__(
        self,
        settings: EarningsSettings,
        *,
        fetcher: EarningsCalendarFetcher,
        summaries: QuoteSummarySource,
        store: EarningsStore,
        cache: EarningsCache | None,
        publisher: EarningsPublisher,
        calendar: TradingCalendar,
        universe: UniverseLoader = lambda: None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.summaries = summaries
        self.store = store
        self.cache = cache
        self.publisher = publisher
        self.calendar = calendar
        self.universe = universe
        self.clock = clock

    async def run(
        self,
        sync_date: dt.date,
        *,
        trigger: Literal["schedule", "manual"],
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
            report.status = "failed" if report.fundamentals_failed else "complete"
            if report.fundamentals_failed:
                report.error = f"fundamentals failed for {len(report.fundamentals_failed)} symbols"
                report.error_kind = "FundamentalsIncomplete"
        except IngestionError as exc:
            report.status = "failed"
            report.error = str(exc)[:500]
            report.error_kind = exc.kind
        report.duration_s = round(time.perf_counter() - t0, 3)
        await self._record(report, covers, started)
        level = logging.INFO if report.ok else logging.WARNING
        log.log(level, "earnings_sync_finished", extra=_log_fields(report))
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
            log.warning("earnings_run_not_recorded", extra={"error": str(exc)[:300]})
            if report.ok:
                report.status = "failed"
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
        _count_upsert(report, upsert)
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
            if self.settings.fallback == "none" or universe is None or not _fallback_worthy(exc):
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


def _count_upsert(report: SyncReport, upsert: UpsertResult) -> None:
    report.inserted = upsert.inserted
    report.updated = upsert.updated
    report.unchanged = upsert.unchanged
    report.rescheduled = len(upsert.moves)
    report.time_changed = len(upsert.time_changes)


def _log_fields(r: SyncReport) -> dict[str, Any]:
    keys = (
        "sync_date", "trigger", "status", "source", "fetched", "rejected", "inserted", "updated",
        "rescheduled", "announced_reporting", "announced_eps", "fundamentals_written",
        "error_kind", "duration_s",
    )  # fmt: skip
    out = {k: getattr(r, k) for k in keys}
    out["sync_date"] = r.sync_date.isoformat()
    out["flags_set"] = r.flags_set
    out["fundamentals_failed"] = len(r.fundamentals_failed)
    return out


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


class EarningsJob:
    """The loop: wait for the next slot, sync, retry a failed sync with backoff, repeat."""

    def __init__(
        self,
        sync: EarningsSync,
        *,
        clock: Clock = utcnow,
        wait: Waiter = wait_or_stop,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.sync = sync
        self.settings = sync.settings
        self.times = sync.settings.times()
        self.clock = clock
        self.wait = wait
        self.max_wait_s = max_wait_s
        self.failures = 0
        self.retry_at: dt.datetime | None = None
        self.retry_slot: dt.datetime | None = None
        self.reports: list[SyncReport] = []  # the latest runs, newest last (bounded)

    async def next_due(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(when to run, the slot it runs for); a run time in the past means "at once"."""
        covered = await self.sync.store.covered(ny_date(now))
        slot = next_sync(now, covered, self.sync.calendar, self.times)
        if self.retry_slot is not None and slot != self.retry_slot:
            self.failures, self.retry_at, self.retry_slot = 0, None, None  # a new slot
        if self.retry_at is not None and self.retry_at > slot:
            return self.retry_at, slot
        return slot, slot

    async def step(self, stop: asyncio.Event) -> SyncReport | None:
        """Wait (at most ``max_wait_s``) or run the due sync; the run's report, if any."""
        now = self.clock()
        try:
            run_at, slot = await self.next_due(now)
        except IngestionError as exc:  # PostgreSQL unreachable: cannot tell what is due
            self._failed(now, self.retry_slot, exc.kind)
            await self.wait(stop, retry_delay(self.failures, *self._retry_bounds()))
            return None
        delay = (run_at - now).total_seconds()
        if delay > 0:
            await self.wait(stop, min(delay, self.max_wait_s))
            return None
        report = await self.sync.run(ny_date(slot), trigger="schedule", covers=slot)
        self.reports = [*self.reports[-9:], report]
        metrics.record_earnings_sync(
            report.ok,
            report.fetched,
            report.inserted + report.updated + report.rescheduled,
            report.duration_s,
        )
        if report.ok:
            self.failures, self.retry_at, self.retry_slot = 0, None, None
        else:
            self._failed(self.clock(), slot, report.error_kind)
        return report

    def _retry_bounds(self) -> tuple[float, float]:
        return self.settings.retry_base_s, self.settings.retry_max_s

    def _failed(self, now: dt.datetime, slot: dt.datetime | None, kind: str | None) -> None:
        self.failures += 1
        delay = retry_delay(self.failures, *self._retry_bounds())
        self.retry_at = now + dt.timedelta(seconds=delay)
        self.retry_slot = slot
        log.warning(
            "earnings_sync_retry_scheduled",
            extra={
                "failures": self.failures,
                "retry_in_s": delay,
                "retry_at": self.retry_at.isoformat(),
                "error_kind": kind,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info("earnings_job_started", extra={"sync_times": list(self.settings.sync_times)})
        while not stop.is_set():
            try:
                await self.step(stop)
            except Exception:  # a bug, not an outage: keep the job alive, retry later
                log.exception("earnings_step_crashed")
                self._failed(self.clock(), self.retry_slot, "Crash")
                await self.wait(stop, retry_delay(self.failures, *self._retry_bounds()))
        log.info("earnings_job_stopped")


# -- wiring ------------------------------------------------------------------------------------


class Services(msgspec.Struct):
    """The connections of one earnings process and the sync built on them."""

    client: YahooClient
    store: EarningsStore
    cache: EarningsCache | None
    publisher: EarningsPublisher
    sync: EarningsSync


@contextlib.asynccontextmanager
async def open_services(
    config: Config,
    settings: EarningsSettings,
    *,
    guard: Guard | None = None,
    calendar: TradingCalendar | None = None,
    clock: Clock = utcnow,
) -> AsyncIterator[Services]:
    """Yahoo client, PostgreSQL, Redis (if enabled) and NATS, and the sync using them."""
    if not config.postgres.enabled:
        raise ConfigError(
            "the earnings sync stores its calendar in PostgreSQL: enable [postgres] or set "
            "earnings.enabled = false",
            key="earnings.enabled",
        )
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            YahooClient.connect(
                config.yahoo, max_clients=settings.fundamentals_concurrency + 1, guard=guard
            )
        )
        store = await stack.enter_async_context(
            EarningsStore.connect(config.postgres, settings.table)
        )
        cache = None
        if config.redis.enabled:
            cache = await stack.enter_async_context(EarningsCache.connect(config.redis, settings))
        publisher = await stack.enter_async_context(
            EarningsPublisher.connect(config.nats, settings)
        )
        sync = EarningsSync(
            settings,
            fetcher=EarningsCalendarFetcher(
                client, page_size=settings.page_size, max_pages=settings.max_pages, clock=clock
            ),
            summaries=QuoteSummarySource(
                client, concurrency=settings.fundamentals_concurrency, clock=clock
            ),
            store=store,
            cache=cache,
            publisher=publisher,
            calendar=calendar or ExchangeCalendar(settings.exchange_calendar),
            universe=universe_loader(config, settings),
            clock=clock,
        )
        yield Services(client, store, cache, publisher, sync)


async def run_earnings(
    config: Config,
    stop: asyncio.Event,
    *,
    guard: Guard | None = None,
    settings: EarningsSettings | None = None,
    startup_retry_s: float = 5.0,
) -> None:
    """Run the earnings job until ``stop`` is set (connections retried while they fail)."""
    settings = settings or config.earnings
    if not settings.enabled:
        log.info("earnings_disabled")
        return
    attempt = 0
    while not stop.is_set():
        try:
            async with open_services(config, settings, guard=guard) as svc:
                attempt = 0
                await EarningsJob(svc.sync).run(stop)
                return
        except ConfigError:
            raise
        except IngestionError as exc:
            attempt += 1
            delay = min(300.0, startup_retry_s * 2 ** min(attempt - 1, 6))
            log.error(
                "earnings_startup_failed",
                extra={"error": str(exc)[:300], "error_kind": exc.kind, "retry_in_s": delay},
            )
            await wait_or_stop(stop, delay)


async def _stop_on_message(reader: ConnReader, stop: asyncio.Event) -> None:
    while True:
        msg = await reader.get()
        if msg is None or isinstance(msg, ipc.Stop):
            stop.set()
            return


async def _child(config: Config, conn: Connection, guard: Guard | None) -> None:
    logs.bind(role="earnings")
    stop = asyncio.Event()
    reader = ConnReader(conn, child=True)
    watcher = asyncio.create_task(_stop_on_message(reader, stop))
    try:
        await run_earnings(config, stop, guard=guard)
    except ConfigError as exc:
        log.error("earnings_fatal", extra={"error": str(exc)})
        ipc.send(conn, ipc.Fatal(message=str(exc)))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        reader.close()


def earnings_main(
    config: Config, conn: Connection, parent_pid: int, guard: Guard | None = None
) -> None:
    """Entry point of the forked earnings process (stops on ``ipc.Stop`` or pipe EOF)."""
    child_init(parent_pid, config, "ingest-earnings")
    run_loop(_child(config, conn, guard))


# -- CLI ---------------------------------------------------------------------------------------


def format_report(r: SyncReport) -> str:
    window = f"{r.fetch_start} .. {r.fetch_end}" if r.fetch_start else "-"
    lines = [
        f"earnings sync {r.sync_date} ({r.trigger}): {r.status.upper()} in {r.duration_s:.1f} s",
        f"  source        {r.source or '-'}{' (fallback)' if r.fallback_used else ''}",
        f"  window        {window}",
        f"  calendar      {r.fetched} events, {r.rejected} rejected, {r.warnings} warnings, "
        f"{r.pages} pages, {r.requests} requests",
        f"  table         {r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged, "
        f"{r.rescheduled} rescheduled",
    ]
    if r.current:
        lines += [
            f"  flags         {r.flags_set} set, {r.flags_cleared} cleared",
            f"  published     {r.announced_reporting} reporting today, {r.announced_eps} EPS "
            f"reported ({r.publish_duplicates} duplicates dropped)",
            f"  fundamentals  {r.fundamentals_written} written, {r.fundamentals_unavailable} "
            f"without data, {r.fundamentals_skipped} fresh, {len(r.fundamentals_failed)} failed",
        ]
    else:
        lines.append("  (not today: stored only; no flags, events or fundamentals)")
    lines += [f"  rejected row  {i.symbol or '?'}: {i.reason} {i.detail}" for i in r.rejections]
    if r.error:
        lines.append(f"  error         {r.error_kind}: {r.error}")
    return "\n".join(lines) + "\n"


async def sync_command(
    config: Config,
    date: dt.date | None,
    out: TextIO,
    *,
    err: TextIO | None = None,
    settings: EarningsSettings | None = None,
    guard: Guard | None = None,
) -> int:
    """``ingestion-agent earnings sync [--date YYYY-MM-DD]``: one sync now, a summary printed.

    Exit status: 0 complete, 1 failed (the summary says why).
    """
    err = err or sys.stderr
    settings = settings or config.earnings
    now = utcnow()
    day = date or ny_date(now)
    try:
        async with open_services(config, settings, guard=guard) as svc:
            report = await svc.sync.run(day, trigger="manual", covers=now)
    except IngestionError as exc:
        print(f"earnings sync failed: {type(exc).__name__}: {exc}", file=err)
        return 1
    out.write(format_report(report))
    return 0 if report.ok else 1
