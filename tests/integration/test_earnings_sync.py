"""The earnings sync end to end: emulator, PostgreSQL, Redis and NATS JetStream, all real.

The emulator runs in-process on an ephemeral port with a fake clock (Wednesday 25 November
2026, 11:00 New York - the day before Thanksgiving), and the engine's clock is the same fake
clock, so :func:`yahoo_emulator.earnings.earnings_schedule` is the exact truth the table, the
flags and the published events must match. Each test has its own table, stream, subject and key
prefixes, removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
import nats.js.errors
import orjson
import pytest
import redis.asyncio as aioredis

from engine.commands.earnings import sync_command
from engine.config import Config, EarningsSettings, load_config
from engine.earnings.job import EarningsJob
from engine.earnings.process import run_earnings
from engine.earnings.schedule import NY, ExchangeCalendar
from engine.earnings.services import open_services
from engine.errors import CircuitOpenError
from engine.source.guard import CallOutcome
from yahoo_emulator import EmulatorConfig, RunningEmulator, serve_emulator
from yahoo_emulator.earnings import EarningsEvent as Truth
from yahoo_emulator.earnings import earnings_schedule, symbol_events
from yahoo_emulator.universe import load_universe

pytestmark = pytest.mark.integration

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS = os.environ.get("IA_TEST_NATS_URL", "nats://127.0.0.1:4222")
SEED = 21
START_TS = dt.datetime(2026, 11, 25, 11, 0, tzinfo=NY).timestamp()
TODAY = dt.date(2026, 11, 25)
FETCH_START = dt.date(2026, 11, 24)  # previous NYSE session
END = dt.date(2026, 12, 2)
SLOT = dt.datetime(2026, 11, 25, 9, 30, tzinfo=NY)
DELISTED = EmulatorConfig().delisted


class FakeClock:
    def __init__(self, t: float = START_TS) -> None:
        self.t = t
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


def truth(
    start: dt.date = FETCH_START, end: dt.date = END, **kw: Any
) -> list[Truth]:  # fmt: skip
    return earnings_schedule(SEED, start, end, exclude=DELISTED, **kw)


class Env:
    """Names of one test and the handles the assertions need."""

    def __init__(self, uid: str, emu: RunningEmulator, clock: FakeClock, tmp: Path) -> None:
        self.uid = uid
        self.emu = emu
        self.clock = clock
        self.tmp = tmp
        self.settings = EarningsSettings(
            table=f"t_earn_{uid}",
            stream=f"T_EARN_{uid}",
            subject=f"test.{uid}.earnings",
            flag_key_prefix=f"test:{uid}:earnings_flag:",
            analysis_key_prefix=f"test:{uid}:earnings_analysis:",
            restrict_to_universe=False,
        )

    def config(self, **env: str) -> Config:
        return load_config(
            None,
            environ={
                "INGEST_YAHOO__BASE_URL": self.emu.url,
                "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
                "INGEST_YAHOO__BACKOFF_BASE_S": "0.01",
                "INGEST_YAHOO__BACKOFF_MAX_S": "0.02",
                "INGEST_YAHOO__MAX_ATTEMPTS": "2",
                "INGEST_POSTGRES__DSN": DSN,
                "INGEST_REDIS__URL": REDIS,
                "INGEST_NATS__URL": NATS,
                **env,
            },
        )

    def services(self, settings: EarningsSettings | None = None, **kw: Any) -> Any:
        return open_services(
            kw.pop("config", None) or self.config(),
            settings or self.settings,
            calendar=ExchangeCalendar(),
            clock=self.clock.now,
            **kw,
        )

    # -- reading what the sync left --------------------------------------------------------

    async def rows(self) -> list[Any]:
        conn = await asyncpg.connect(DSN)
        try:
            return list(
                await conn.fetch(
                    f'SELECT * FROM "{self.settings.table}" ORDER BY event_date, symbol'
                )
            )
        finally:
            await conn.close()

    async def sql(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(DSN)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def flags(self) -> dict[str, tuple[dict[str, Any], int]]:
        r = aioredis.Redis.from_url(REDIS)
        try:
            prefix = self.settings.flag_key_prefix
            out = {}
            async for key in r.scan_iter(match=prefix + "*"):
                raw = await r.get(key)
                assert isinstance(raw, bytes)
                out[key.decode()[len(prefix) :]] = (orjson.loads(raw), await r.ttl(key))
            return out
        finally:
            await r.aclose()

    async def analyses(self) -> dict[str, dict[Any, Any]]:
        r = aioredis.Redis.from_url(REDIS, decode_responses=True)
        try:
            prefix = self.settings.analysis_key_prefix
            return {
                key[len(prefix) :]: await r.hgetall(key)
                async for key in r.scan_iter(match=prefix + "*")
            }
        finally:
            await r.aclose()

    async def messages(self) -> list[tuple[dict[str, Any], str]]:
        nc = await nats.connect(NATS)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(self.settings.stream)
            except nats.js.errors.NotFoundError:
                return []
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                if info.state.messages == 0:
                    break
                m = await js.get_msg(self.settings.stream, seq)
                out.append((orjson.loads(m.data or b"{}"), (m.headers or {})["Nats-Msg-Id"]))
            return out
        finally:
            await nc.close()

    async def cleanup(self) -> None:
        t = self.settings.table
        conn = await asyncpg.connect(DSN)
        try:
            for name in (t, f"{t}_changes", f"{t}_syncs"):
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            await conn.execute("DELETE FROM ingestion_schema_migrations WHERE table_name = $1", t)
        finally:
            await conn.close()
        r = aioredis.Redis.from_url(REDIS)
        try:
            keys = [k async for k in r.scan_iter(match=f"test:{self.uid}:*")]
            if keys:
                await r.delete(*keys)
        finally:
            await r.aclose()
        nc = await nats.connect(NATS)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(self.settings.stream)
        finally:
            await nc.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock()
    async with serve_emulator(EmulatorConfig(seed=SEED), clock=clock) as emu:
        e = Env(uuid.uuid4().hex[:10], emu, clock, tmp_path)
        try:
            yield e
        finally:
            await e.cleanup()


def row_tuple(r: Any) -> tuple[Any, ...]:
    return (
        r["symbol"], r["event_date"], r["event_time"], r["timing"], r["company_name"],
        r["event_name"], r["market_cap"], r["eps_estimate"], r["eps_reported"],
        r["surprise_pct"],
    )  # fmt: skip


def truth_tuple(e: Truth, now: float) -> tuple[Any, ...]:
    return (
        e.symbol, e.day, dt.datetime.fromtimestamp(e.start, dt.UTC), e.timing, e.company,
        e.event_name, e.market_cap or None, e.eps_estimate, e.eps_actual(now),
        e.surprise_pct(now),
    )  # fmt: skip


def in_window(events: list[Truth], start: dt.date = TODAY, end: dt.date = END) -> set[str]:
    return {e.symbol for e in events if start <= e.day <= end}


# -- the full sync -----------------------------------------------------------------------------


async def test_full_sync_matches_the_emulator_schedule(env: Env) -> None:
    now = env.clock()
    events = truth()
    async with env.services() as svc:
        report = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
    assert report.ok, report.error
    assert (report.fetched, report.inserted, report.rejected, report.warnings) == (
        len(events), len(events), 0, 0,
    )  # fmt: skip
    assert report.pages == -(-len(events) // 100) and len(events) > 300

    # the table holds the calendar exactly
    assert [row_tuple(r) for r in await env.rows()] == [truth_tuple(e, now) for e in events]

    # one flag per symbol reporting today .. today + 7, with a 24 h TTL
    flags = await env.flags()
    assert set(flags) == in_window(events) and report.flags_set == len(flags)
    for sym, (value, ttl) in flags.items():
        assert 86400 - 60 < ttl <= 86400, sym
        first = min((e for e in events if e.symbol == sym and e.day >= TODAY), key=lambda e: e.day)
        assert value["event_date"] == first.day.isoformat() and value["timing"] == first.timing
        assert value["eps_estimate"] == first.eps_estimate

    # one reporting_today per symbol reporting today, one eps_reported per reported EPS
    msgs = await env.messages()
    today = {e.symbol for e in events if e.day == TODAY}
    reported = {e.symbol: e for e in events if e.reported(now)}
    assert sorted(m["symbol"] for m, _ in msgs if m["kind"] == "reporting_today") == sorted(today)
    eps = {m["symbol"]: m for m, _ in msgs if m["kind"] == "eps_reported"}
    assert set(eps) == set(reported) and reported  # incl. yesterday's after-close reports
    for sym, m in eps.items():
        assert m["eps_reported"] == reported[sym].eps_actual_value
        assert m["surprise_pct"] == reported[sym].surprise_pct(now)
    ids = [i for _, i in msgs]
    assert len(ids) == len(set(ids)) == len(today) + len(reported)
    assert all(i == f"earnings:{m['kind']}:{m['symbol']}:{m['event_date']}" for m, i in msgs)

    # fundamentals for every flagged symbol
    analyses = await env.analyses()
    assert set(analyses) == set(flags)
    u = load_universe()
    for sym in list(flags)[:25]:
        a = analyses[sym]
        assert a["available"] == "1" and a["fetched_at"].startswith("2026-11-25T16:00")
        assert float(a["eps_trailing"]) == float(u.eps_ttm[u.index[sym]])
        past = [
            e
            for e in symbol_events(SEED, u.index[sym], TODAY - dt.timedelta(days=400), END)
            if e.reported(now)
        ]
        assert float(a["latest_quarter_eps_actual"]) == past[-1].eps_actual_value
        for k in ("revenue", "gross_margin", "operating_margin", "profit_margin"):
            assert k in a or u.market_cap[u.index[sym]] == 0, (sym, k)


async def test_second_sync_changes_nothing_and_publishes_no_duplicates(env: Env) -> None:
    async with env.services() as svc:
        first = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
        before_rows = await env.rows()
        before_msgs = await env.messages()
        before_analyses = await env.analyses()
        env.clock.t += 120
        second = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)  # e.g. a retry
        assert second.ok
        assert (second.inserted, second.updated, second.rescheduled) == (0, 0, 0)
        assert second.unchanged == first.fetched
        assert (second.announced_reporting, second.announced_eps) == (0, 0)
        assert second.fundamentals_skipped == first.fundamentals_written
        assert await env.rows() == before_rows  # last_updated included
        assert await env.messages() == before_msgs
        assert await env.analyses() == before_analyses

        # even if the table forgot what it announced, JetStream drops the re-publish
        await env.sql(f'UPDATE "{env.settings.table}" SET announced_at = NULL')
        third = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
        assert third.announced_reporting == 0
        assert third.publish_duplicates == first.announced_reporting > 0
        assert len(await env.messages()) == len(before_msgs)


async def test_reported_eps_appearing_later_is_published_once(env: Env) -> None:
    async with env.services() as svc:
        await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
        n_before = len(await env.messages())
        env.clock.t += 8 * 3600  # 19:00 New York: today's after-close EPS are out
        later = await svc.sync.run(TODAY, trigger="manual", covers=env.clock.now())
    now = env.clock()
    newly = {e.symbol for e in truth() if e.reported(now) and not e.reported(START_TS)}
    assert newly and later.announced_eps == len(newly) and later.updated == len(newly)
    msgs = await env.messages()
    new_msgs = msgs[n_before:]
    assert {m["symbol"] for m, _ in new_msgs} == newly
    assert all(m["kind"] == "eps_reported" for m, _ in new_msgs)
    rows = {r["symbol"]: r for r in await env.rows() if r["event_date"] == TODAY}
    for sym in newly:
        assert rows[sym]["eps_reported"] is not None
        assert rows[sym]["reported_announced_at"] is not None


async def test_rescheduled_event_updates_its_row(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    async with env.services() as svc:
        await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
        env.emu.configure(earnings_reschedule=0.25, earnings_reschedule_days=2)
        with caplog.at_level(logging.WARNING, logger="engine.earnings.store"):
            report = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
    assert report.ok, report.error
    after = truth(reschedule=0.25, reschedule_days=2)
    stored_unreported = {(e.symbol, e.day) for e in truth() if not e.reported(START_TS)}
    moved = [e for e in after if (e.symbol, e.original_day) in stored_unreported]
    assert moved and report.rescheduled == len(moved)
    keys = {(r["symbol"], r["event_date"]) for r in await env.rows()}
    for e in moved:
        assert (e.symbol, e.day) in keys and (e.symbol, e.original_day) not in keys
    changes = await env.sql(
        f'SELECT symbol, old_date, new_date, kind FROM "{env.settings.table}_changes"'
    )
    assert {(c["symbol"], c["old_date"], c["new_date"]) for c in changes} == {
        (e.symbol, e.original_day, e.day) for e in moved
    }
    logged = {r.symbol for r in caplog.records if r.getMessage() == "earnings_rescheduled"}  # type: ignore[attr-defined]
    assert logged == {e.symbol for e in moved}
    # the flags follow the new dates exactly
    assert set(await env.flags()) == in_window(after)


# -- failures are retried later, not lost ------------------------------------------------------


async def test_rate_limited_sync_is_retried_later_and_completes(env: Env) -> None:
    env.emu.configure(fault_429=1.0)
    async with env.services() as svc:
        job = EarningsJob(svc.sync, clock=env.clock.now, wait=env.clock.wait, max_wait_s=1e9)
        stop = asyncio.Event()
        failed = await job.step(stop)  # 11:00, nothing ran today: today's 09:30 sync at once
        assert failed is not None and not failed.ok and failed.error_kind == "RateLimitedError"
        assert job.retry_at == env.clock.now() + dt.timedelta(seconds=30)
        assert await job.step(stop) is None and env.clock.waits == [pytest.approx(30, abs=1)]
        env.emu.configure(fault_429=0.0)
        done = await job.step(stop)
        assert done is not None and done.ok and done.sync_date == TODAY
        assert await svc.store.covered(TODAY) == SLOT
        # then it waits for the next session: Friday 09:30 (Thursday is Thanksgiving)
        assert await job.step(stop) is None
        assert env.clock.now() == dt.datetime(2026, 11, 27, 9, 30, tzinfo=NY)
    runs = await env.sql(f'SELECT status, covers FROM "{env.settings.table}_syncs" ORDER BY id')
    assert [r["status"] for r in runs] == ["failed", "complete"]
    assert len(await env.rows()) == len(truth())
    assert set(await env.flags()) == in_window(truth())


class FlakyGuard:
    """A guard whose breaker opens after ``budget`` calls, until closed by the test."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.calls = 0
        self.open = False

    async def acquire(self) -> None:
        self.calls += 1
        if self.open or self.calls > self.budget:
            self.open = True
            raise CircuitOpenError("Yahoo circuit breaker is open (test)")

    def record(
        self, outcome: CallOutcome, latency_s: float, retry_after_s: float | None = None
    ) -> None:
        return None


async def test_breaker_open_during_fundamentals_is_retried_not_lost(env: Env) -> None:
    guard = FlakyGuard(budget=150)
    async with env.services(guard=guard) as svc:
        job = EarningsJob(svc.sync, clock=env.clock.now, wait=env.clock.wait, max_wait_s=1e9)
        stop = asyncio.Event()
        first = await job.step(stop)
        assert first is not None and not first.ok
        assert first.error_kind == "FundamentalsIncomplete" and first.fundamentals_failed
        written = first.fundamentals_written
        assert 0 < written < first.flags_set
        guard.open, guard.budget = False, 10**9
        assert await job.step(stop) is None  # waits 30 s
        second = await job.step(stop)
        assert second is not None and second.ok
        assert second.fundamentals_skipped == written
        assert second.fundamentals_written == len(first.fundamentals_failed)
    events = truth()
    assert set(await env.analyses()) == in_window(events)
    msgs = await env.messages()
    ids = [i for _, i in msgs]
    assert len(ids) == len(set(ids))
    assert {m["symbol"] for m, _ in msgs if m["kind"] == "reporting_today"} == {
        e.symbol for e in events if e.day == TODAY
    }


async def test_breaker_open_before_the_calendar_fails_fast_and_retries(env: Env) -> None:
    guard = FlakyGuard(budget=0)
    async with env.services(guard=guard) as svc:
        job = EarningsJob(svc.sync, clock=env.clock.now, wait=env.clock.wait, max_wait_s=1e9)
        stop = asyncio.Event()
        first = await job.step(stop)
        assert first is not None and first.error_kind == "CircuitOpenError"
        assert not first.fallback_used  # an open breaker is no reason to hammer quoteSummary
        guard.open, guard.budget = False, 10**9
        await job.step(stop)
        second = await job.step(stop)
        assert second is not None and second.ok
    assert len(await env.rows()) == len(truth())


# -- fallback, universe, CLI, process loop -----------------------------------------------------


def write_symbols(path: Path, symbols: list[str]) -> Path:
    path.write_text(orjson.dumps([{"symbol": s} for s in symbols]).decode())
    return path


async def test_fallback_to_quote_summary_when_the_calendar_is_broken(env: Env) -> None:
    events = truth()
    upcoming = [e for e in events if not e.reported(START_TS)]
    universe = sorted({e.symbol for e in upcoming[:40]} | {"AAPL", "MSFT"})
    symbols = write_symbols(env.tmp / "symbols.json", universe)
    env.emu.configure(fault_5xx=1.0, fault_endpoints=["visualization"])
    settings = msgspec.structs.replace(env.settings, restrict_to_universe=True)
    config = env.config(INGEST_SYMBOLS__FILE=str(symbols))
    async with env.services(settings, config=config) as svc:
        report = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
    assert report.ok, report.error
    assert report.fallback_used and report.source == "yahoo_quotesummary"
    expected = sorted((e.day, e.symbol) for e in upcoming if e.symbol in universe)
    rows = await env.rows()
    assert sorted((r["event_date"], r["symbol"]) for r in rows) == expected
    by = {e.symbol: e for e in upcoming}
    for r in rows:
        e = by[r["symbol"]]
        assert r["timing"] == e.timing and r["eps_estimate"] == e.eps_estimate
        assert r["event_time"] == dt.datetime.fromtimestamp(e.start, dt.UTC)
        assert r["source"] == "yahoo_quotesummary" and r["eps_reported"] is None


async def test_restricted_to_the_universe(env: Env) -> None:
    events = truth()
    window = sorted(in_window(events))
    universe = window[::5]
    symbols = write_symbols(env.tmp / "symbols.json", universe)
    settings = msgspec.structs.replace(env.settings, restrict_to_universe=True)
    config = env.config(INGEST_SYMBOLS__FILE=str(symbols))
    async with env.services(settings, config=config) as svc:
        report = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
    assert report.ok
    assert len(await env.rows()) == len(events)  # the table keeps the whole calendar
    assert set(await env.flags()) == set(universe) == set(await env.analyses())
    assert {m["symbol"] for m, _ in await env.messages()} <= set(universe)


async def test_sync_command_prints_a_summary(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    async with serve_emulator(EmulatorConfig(seed=SEED)) as emu:  # real clock: the CLI's
        e = Env(uid, emu, FakeClock(), tmp_path)
        try:
            out, err = io.StringIO(), io.StringIO()
            code = await sync_command(e.config(), None, out, err=err, settings=e.settings)
            assert code == 0, err.getvalue() + out.getvalue()
            text = out.getvalue()
            assert "COMPLETE" in text and "events" in text and "flags" in text
            past = dt.date.today() - dt.timedelta(days=10)
            out = io.StringIO()
            assert await sync_command(e.config(), past, out, settings=e.settings) == 0
            assert "not today" in out.getvalue()
            bad = e.config(INGEST_POSTGRES__DSN="postgresql://postgres@127.0.0.1:1/none")
            err = io.StringIO()
            assert await sync_command(bad, None, io.StringIO(), err=err, settings=e.settings) == 1
            assert "cannot connect to PostgreSQL" in err.getvalue()
        finally:
            await e.cleanup()


async def test_run_earnings_starts_and_stops(env: Env) -> None:
    stop = asyncio.Event()
    settings = msgspec.structs.replace(env.settings, sync_times=("23:59",))  # nothing due now
    task = asyncio.create_task(run_earnings(env.config(), stop, settings=settings))
    await _wait_for(lambda: _table_exists(env.settings.table))
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def _table_exists(table: str) -> bool:
    conn = await asyncpg.connect(DSN)
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await conn.close()


async def _wait_for(cond: Callable[[], Any]) -> None:
    for _ in range(400):
        if await cond():
            return
        await asyncio.sleep(0.05)
    pytest.fail("condition not met within 20 s")
