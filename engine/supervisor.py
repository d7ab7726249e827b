"""Supervisor: owns the shared memory, forks the workers and the publisher, drives the cycles.

Process tree (``fork``; one container per host)::

    supervisor (this)      rings + last-seen table (shared memory), scheduler, signals
    ├── worker 0..N-1      uvloop fetch loop over its shards -> its own ring
    ├── publisher          drains all rings -> JetStream, PostgreSQL, Redis
    └── earnings           the daily earnings-calendar job (``[earnings] enabled``)

The supervisor also serves the HTTP endpoint (``/metrics`` aggregated over every process in
prometheus-client's multiprocess mode, ``/healthz``, ``/readyz``, ``/status``:
:mod:`engine.observe.http`)
and keeps the data-quality tracker (:mod:`engine.observe.quality`) fed once per completed cycle.

A cycle: the supervisor sends ``StartCycle`` to every worker; each answers ``CycleFetched`` with
its ring position; once all have, the supervisor ``Seal``s the cycle (the positions every record
of the cycle sits before) and the publisher answers ``CyclePublished`` when its acknowledged
tails pass them. Cycles never overlap (fetch phases are serialised; an overrun is logged and
counted, the missed ticks are skipped and the next cycle starts at once - behind schedule, the
rate budget is better spent than left idle until the next tick).

Signals: SIGTERM/SIGINT stop scheduling, let the workers finish the cycle in flight (up to
``scheduler.shutdown_grace_s``), then let the publisher drain every ring before exit - nothing
fetched is dropped. SIGHUP reloads the symbols file and re-shards between two cycles; a bad file
is rejected with a logged error and the old universe kept. A child that dies is restarted (with
backoff); the shared memory outlives it, so a restarted publisher drains what the ring still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from typing import Any, Final, TextIO

import msgspec

from engine import __version__
from engine.config import Config
from engine.earnings.process import earnings_main
from engine.errors import SymbolsError
from engine.observe import logs, metrics
from engine.observe.alerts import FailureRateWindow
from engine.observe.http import HttpServer, RateView
from engine.observe.quality import QualitySnapshot, QualityTracker, regular_session
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime import ipc
from engine.runtime.child import ConnReader
from engine.runtime.schedule import next_start, spread_window
from engine.sinks.publisher import publisher_main
from engine.source.guard import YahooGuard, policies_from
from engine.source.ratelimit import cycle_budget, cycles_to_cover, headroom
from engine.source.shards import assign_shards, build_shards
from engine.source.universe import Universe, load_symbols
from engine.worker import worker_main

log = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 60.0
MAX_RESTART_BACKOFF_S: Final = 30.0
RECENT_CYCLES: Final = 30

_ctx = mp.get_context("fork")


class CycleSummary(msgspec.Struct):
    cycle: int
    requested: int = 0
    fetched: int = 0
    valid: int = 0
    unchanged: int = 0
    stale: int = 0
    regular: int = 0  # valid quotes in marketState REGULAR
    missing: int = 0
    failed: int = 0
    requests: int = 0
    failed_requests: int = 0  # batch requests failed after retries (ingestion_fetch_failures)
    attempts: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    errors: dict[str, int] = msgspec.field(default_factory=dict)
    published: int = 0
    deduplicated: int = 0
    publish_failed: int = 0
    dlq: int = 0
    outboxed: int = 0
    fetch_seconds: float = 0.0
    seconds: float = 0.0
    rate_rps: float = 0.0
    rate_headroom: float = 0.0
    breaker: str = "CLOSED"

    @property
    def ok(self) -> bool:
        """Everything requested was fetched, and everything fetched is in the stream."""
        return (
            self.failed == 0
            and self.publish_failed == 0
            and self.outboxed == 0
            and self.requested > 0
        )

    def line(self) -> str:
        rej = sum(self.rejected.values())
        reasons = ",".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))
        return (
            f"cycle={self.cycle} requested={self.requested} fetched={self.fetched} "
            f"valid={self.valid} rejected={rej}" + (f" ({reasons})" if reasons else "") + " "
            f"published={self.published} deduplicated={self.deduplicated + self.unchanged} "
            f"failed={self.failed + self.publish_failed} outboxed={self.outboxed} "
            f"missing={self.missing} "
            f"seconds={self.seconds:.3f}"
        )


class _Cycle:
    def __init__(self, cycle: int, workers: int) -> None:
        self.summary = CycleSummary(cycle=cycle)
        self.t0 = time.perf_counter()
        self.pending = set(range(workers))
        self.heads: dict[int, int] = {}
        self.fetched = asyncio.Event()
        self.published = asyncio.Event()

    def add_fetched(self, m: ipc.CycleFetched) -> None:
        s = self.summary
        s.requested += m.requested
        s.fetched += m.fetched
        s.valid += m.valid
        s.unchanged += m.unchanged
        s.stale += m.stale
        s.regular += m.regular
        s.missing += m.missing
        s.failed += m.failed
        s.requests += m.requests
        s.failed_requests += m.failed_requests
        s.attempts += m.attempts
        s.rejected = dict(Counter(s.rejected) + Counter(m.rejected))
        s.errors = dict(Counter(s.errors) + Counter(m.errors))
        self.heads[m.worker] = m.ring_head
        self.pending.discard(m.worker)
        if not self.pending:
            s.fetch_seconds = time.perf_counter() - self.t0
            self.fetched.set()

    def add_published(self, m: ipc.CyclePublished) -> None:
        s = self.summary
        s.published, s.deduplicated = m.published, m.deduplicated
        s.publish_failed, s.dlq, s.outboxed = m.failed, m.dlq, m.outboxed
        s.seconds = time.perf_counter() - self.t0
        self.published.set()


class _Child:
    def __init__(self, kind: metrics.ChildKind, index: int) -> None:
        self.kind = kind
        self.index = index
        self.proc: ForkProcess | None = None
        self.conn: Connection | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.restarts = 0
        self.started_at = 0.0

    @property
    def name(self) -> str:
        return self.kind if self.kind != "worker" else f"worker-{self.index}"


class Supervisor:
    def __init__(self, config: Config, universe: Universe, *, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.universe = universe
        self.out = out
        self.n_workers = config.worker_count()
        self.rings: list[Ring] = []
        self.notify: list[tuple[int, int]] = []
        self.table: LastSeenTable | None = None
        self._index: dict[str, int] = {}
        self.guard: YahooGuard | None = None
        self.lock_dir = ""
        self.old_tables: list[LastSeenTable] = []
        self.assignments: list[ipc.Assign] = []
        self.generation = 0
        self.workers = [_Child("worker", i) for i in range(self.n_workers)]
        self.publisher = _Child("publisher", 0)
        self.earnings = _Child("earnings", 0) if config.earnings.enabled else None
        self.cycles: dict[int, _Cycle] = {}
        self.cycle_no = 0
        self.stopping = asyncio.Event()
        self.reload_requested = False
        self.fatal: str | None = None
        self.overruns = 0
        self.failures = FailureRateWindow()
        self.last_summary: CycleSummary | None = None
        self.recent: deque[CycleSummary] = deque(maxlen=RECENT_CYCLES)
        self.tracker: QualityTracker | None = None
        self.http: HttpServer | None = None

    # -- shared memory and shards -----------------------------------------------------------

    def _build_assignments(self, universe: Universe) -> None:
        n_shards = self.config.workers.shards
        shards = build_shards(universe, n_shards)
        index = {s: i for i, s in enumerate(universe.symbols)}
        table = LastSeenTable.create(len(universe.symbols))
        if self.table is not None:  # carry over what the workers already wrote
            old_index = self._index
            for sym, i in index.items():
                j = old_index.get(sym)
                if j is not None:
                    table.times[i] = self.table.times[j]
                    table.ok_cycle[i] = self.table.ok_cycle[j]
            self.old_tables.append(self.table)
        self.table = table
        self._index = index
        self.tracker = QualityTracker.for_universe(universe.symbols, universe.meta)
        self.generation += 1
        owners = assign_shards(n_shards, self.n_workers)
        by_id = {sh.id: sh for sh in shards}
        self.assignments = [
            ipc.Assign(
                generation=self.generation,
                state_name=table.name,
                state_size=len(universe.symbols),
                shards=[
                    ipc.ShardAssignment(
                        shard=sid,
                        symbols=list(by_id[sid].symbols),
                        indices=[index[s] for s in by_id[sid].symbols],
                    )
                    for sid in owned
                    if sid in by_id
                ],
            )
            for owned in owners
        ]

    def _setup_memory(self) -> None:
        cap = self.config.workers.ring_capacity
        for _ in range(self.n_workers):
            self.rings.append(Ring.create(cap))
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self.notify.append((r, w))
        self._build_assignments(self.universe)
        self.lock_dir = tempfile.mkdtemp(prefix="ingestion-agent-")
        self.guard = YahooGuard.create(self.lock_dir, *policies_from(self.config.yahoo))

    def _release_memory(self) -> None:
        if self.guard is not None:
            self.guard.close()
            shutil.rmtree(self.lock_dir, ignore_errors=True)
        for ring in self.rings:
            ring.close()
        for t in [*self.old_tables, *([self.table] if self.table else [])]:
            t.close()
        for r, w in self.notify:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- children ---------------------------------------------------------------------------

    def _spawn(self, child: _Child) -> None:
        parent_conn, child_conn = _ctx.Pipe(duplex=True)
        target: Callable[..., None]
        args: tuple[Any, ...]
        if child.kind == "publisher":
            target = publisher_main
            args = (self.config, self.rings, [r for r, _ in self.notify], child_conn, os.getpid())
        elif child.kind == "earnings":
            target = earnings_main
            args = (self.config, child_conn, os.getpid(), self.guard)
        else:
            i = child.index
            target = worker_main
            args = (
                i, self.config, self.rings[i], self.notify[i][1], child_conn, os.getpid(),
                self.guard,
            )  # fmt: skip
        proc = _ctx.Process(target=target, args=args, name=f"ingest-{child.name}", daemon=False)
        proc.start()
        child_conn.close()
        child.proc, child.conn = proc, parent_conn
        child.ready.clear()
        child.started_at = time.monotonic()
        child.reader_task = asyncio.create_task(self._read_child(child, parent_conn, proc))
        log.info("child_started", extra={"child": child.name, "pid": proc.pid})
        if child.kind == "worker":
            ipc.send(parent_conn, self.assignments[child.index])

    async def _read_child(self, child: _Child, conn: Connection, proc: ForkProcess) -> None:
        reader = ConnReader(conn)
        try:
            while True:
                msg = await reader.get()
                if msg is None:
                    break
                self._on_message(child, msg)
        finally:
            reader.close()
        await asyncio.get_running_loop().run_in_executor(None, proc.join, 5.0)
        if proc.is_alive():  # EOF without exit: should not happen
            proc.kill()
        await self._on_exit(child, proc)

    def _on_message(self, child: _Child, msg: ipc.Message) -> None:
        if isinstance(msg, ipc.WorkerReady | ipc.PublisherReady):
            child.ready.set()
            if isinstance(msg, ipc.PublisherReady):
                for cyc, c in self.cycles.items():  # a restarted publisher needs open seals
                    if c.fetched.is_set() and not c.published.is_set():
                        self._seal(cyc)
        elif isinstance(msg, ipc.CycleFetched):
            fetched = self.cycles.get(msg.cycle)
            if fetched is not None:
                fetched.add_fetched(msg)
                if fetched.fetched.is_set():
                    self._seal(msg.cycle)
        elif isinstance(msg, ipc.CyclePublished):
            published = self.cycles.get(msg.cycle)
            if published is not None:
                published.add_published(msg)
        elif isinstance(msg, ipc.Fatal):
            self.fatal = msg.message
            self.stopping.set()

    def _seal(self, cycle: int) -> None:
        c = self.cycles[cycle]
        conn = self.publisher.conn
        if conn is not None and self.publisher.ready.is_set():
            positions = {w: c.heads.get(w, self.rings[w].head) for w in range(self.n_workers)}
            with contextlib.suppress(OSError):
                ipc.send(conn, ipc.Seal(cycle=cycle, positions=positions))

    async def _on_exit(self, child: _Child, proc: ForkProcess) -> None:
        code = proc.exitcode
        child.proc = None
        if proc.pid is not None:
            metrics.mark_process_dead(proc.pid)
        if child.conn is not None:
            child.conn.close()
            child.conn = None
        expected = self.stopping.is_set() and code == 0
        if expected or self.fatal:
            log.info("child_exited", extra={"child": child.name, "exit_code": code})
            return
        log.error("child_died", extra={"child": child.name, "exit_code": code})
        if child.kind == "worker":
            for c in self.cycles.values():  # its part of the cycle in flight is lost: count it
                if child.index in c.pending:
                    n = sum(len(s.symbols) for s in self.assignments[child.index].shards)
                    c.add_fetched(
                        ipc.CycleFetched(
                            worker=child.index,
                            cycle=c.summary.cycle,
                            requested=n,
                            fetched=0,
                            valid=0,
                            unchanged=0,
                            stale=0,
                            regular=0,
                            missing=0,
                            failed=n,
                            rejected={},
                            errors={"WorkerDied": 1},
                            requests=0,
                            failed_requests=0,
                            attempts=0,
                            ring_head=self.rings[child.index].head,
                            seconds=0.0,
                        )
                    )
                    if c.fetched.is_set():
                        self._seal(c.summary.cycle)
        quick = time.monotonic() - child.started_at < 10
        child.restarts = child.restarts + 1 if quick else 0
        delay = min(
            MAX_RESTART_BACKOFF_S, self.config.workers.restart_backoff_s * 2**child.restarts
        )
        if self.stopping.is_set() and child.kind != "publisher":
            return
        await asyncio.sleep(delay)
        if not self.stopping.is_set() or child.kind == "publisher":
            metrics.record_child_restart(child.kind)
            self._spawn(child)

    # -- cycles -----------------------------------------------------------------------------

    def _apply_reload(self) -> None:
        self.reload_requested = False
        path = self.config.symbols.file
        try:
            universe = load_symbols(path, self.config.symbols.on_invalid)
        except SymbolsError as exc:
            log.error(
                "symbols_reload_rejected",
                extra={"file": path, "error": str(exc)[:2000], "kept": len(self.universe.symbols)},
            )
            return
        for sym in universe.skipped:
            log.warning("symbol_skipped", extra={"file": path, "problem": str(sym)})
        if universe.digest == self.universe.digest:
            log.info("symbols_unchanged", extra={"file": path})
            return
        old = len(self.universe.symbols)
        self.universe = universe
        self._build_assignments(universe)
        for w in self.workers:
            if w.conn is not None:
                ipc.send(w.conn, self.assignments[w.index])
        log.info(
            "symbols_reloaded",
            extra={"file": path, "before": old, "after": len(universe.symbols)},
        )

    async def _run_cycle(self) -> _Cycle:
        self.cycle_no += 1
        cyc = _Cycle(self.cycle_no, self.n_workers)
        self.cycles[self.cycle_no] = cyc
        spread = spread_window(self.config.scheduler.interval_s, self.config.scheduler.spread)
        msg = ipc.StartCycle(cycle=self.cycle_no, started_at=time.time(), spread_s=spread)
        for w in self.workers:
            if w.conn is not None and w.ready.is_set():
                ipc.send(w.conn, msg)
            else:  # a worker being restarted misses this cycle; its shard resumes next cycle
                cyc.pending.discard(w.index)
                cyc.heads[w.index] = self.rings[w.index].head
        if not cyc.pending:
            cyc.fetched.set()
            self._seal(self.cycle_no)
        log.info("cycle_started", extra={"cycle": self.cycle_no})
        self._check_budget()
        return cyc

    def _requests_per_cycle(self) -> int:
        size = self.config.yahoo.batch_size
        return sum(-(-sum(len(sh.symbols) for sh in a.shards) // size) for a in self.assignments)

    def _check_budget(self) -> None:
        """Say so when the rate limiter's budget cannot cover a whole cycle."""
        if self.guard is None:
            return
        rate, _ = self.guard.snapshot()
        policy = self.guard.rate_policy
        need = self._requests_per_cycle()
        budget = cycle_budget(rate, policy, self.config.scheduler.interval_s)
        if budget < need:
            log.warning(
                "rate_budget_insufficient",
                extra={
                    "requests_needed": need,
                    "budget": round(budget, 1),
                    "rate_rps": round(rate.rate, 3),
                    "cycles_per_pass": cycles_to_cover(need, budget),
                },
            )

    def _finish(self, cyc: _Cycle) -> None:
        s = cyc.summary
        if self.guard is not None:
            rate, brk_state = self.guard.snapshot()
            s.rate_rps = round(rate.rate, 3)
            budget = cycle_budget(rate, self.guard.rate_policy, self.config.scheduler.interval_s)
            s.rate_headroom = round(headroom(budget, self._requests_per_cycle()), 3)
            s.breaker = brk_state.state.name
        self.cycles.pop(s.cycle, None)
        self.last_summary = s
        self.recent.append(s)
        metrics.record_cycle(s)
        self._observe_quality(s)
        level = logging.INFO if s.ok else logging.WARNING
        log.log(level, "cycle_completed", extra=msgspec.structs.asdict(s))
        now = time.monotonic()
        self.failures.add(now, s.requested, s.failed)
        change = self.failures.check(now)
        metrics.set_failure_rate(self.failures.rate(now), self.failures.alerting)
        if change == "raised":
            log.error(
                "failure_rate_high",
                extra={"rate": round(self.failures.rate(now), 4), "window_s": 300},
            )
        elif change == "cleared":
            log.info("failure_rate_recovered", extra={"rate": round(self.failures.rate(now), 4)})

    def _observe_quality(self, s: CycleSummary) -> None:
        if self.tracker is None or self.table is None:
            return
        now = time.time()
        self.tracker.observe(
            cycle=s.cycle,
            now=now,
            market_time=self.table.times.copy(),
            ok_cycle=self.table.ok_cycle.copy(),
            regular_hours=regular_session(s.regular, s.valid, now),
        )

    # -- what the HTTP endpoint shows (engine.observe.http.StatusSource) -------------------------

    def recent_cycles(self) -> Sequence[CycleSummary]:
        return tuple(self.recent)

    def breaker_state(self) -> int | str:
        if self.guard is None:
            return "closed"
        _, brk_state = self.guard.snapshot()
        return int(brk_state.state)

    def _rate_figures(self) -> tuple[float, float, float, int] | None:
        """Current rate, max rate, per-cycle request budget, requests one cycle needs."""
        if self.guard is None:
            return None
        rate, _ = self.guard.snapshot()
        policy = self.guard.rate_policy
        budget = cycle_budget(rate, policy, self.config.scheduler.interval_s)
        return rate.rate, policy.max_rps, budget, self._requests_per_cycle()

    def rate_limit(self) -> RateView | None:
        figures = self._rate_figures()
        if figures is None:
            return None
        current, max_rps, budget, need = figures
        return RateView(current, max_rps, metrics.budget_headroom(budget, need))

    def quality(self) -> QualitySnapshot | None:
        return self.tracker.last if self.tracker is not None else None

    def refresh_metrics(self) -> None:
        figures = self._rate_figures()
        if figures is not None:
            metrics.set_rate_limit(*figures)
            metrics.set_breaker_state(self.breaker_state())
        for i, ring in enumerate(self.rings):
            metrics.set_ring_occupancy(i, ring.occupancy(), ring.capacity)

    async def _watch_published(self, cyc: _Cycle) -> None:
        await cyc.published.wait()
        self._finish(cyc)

    async def _scheduler(self, *, once: bool) -> None:
        interval = self.config.scheduler.interval_s
        due = time.monotonic()
        while not self.stopping.is_set():
            if self.reload_requested:
                self._apply_reload()
            cyc = await self._run_cycle()
            watcher = asyncio.create_task(self._watch_published(cyc))
            if once:
                await self._wait_or_stop(watcher)
                return
            await self._wait_or_stop(asyncio.create_task(cyc.fetched.wait()))
            due, missed = next_start(due, interval, time.monotonic())
            if missed:
                self.overruns += missed
                metrics.record_overrun(missed)
                log.warning(
                    "cycle_overrun",
                    extra={"cycle": cyc.summary.cycle, "missed_ticks": missed},
                )
                # behind schedule: the next pass starts now (the grid moves) rather than idling
                # until the next grid point with the rate budget unused
                due = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=due - time.monotonic())

    async def _wait_or_stop(self, task: asyncio.Task[Any]) -> None:
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

    # -- lifecycle --------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            if not self.stopping.is_set():
                log.info("shutdown_requested", extra={"signal": sig.name})
                self.stopping.set()

        def hup() -> None:
            log.info("reload_requested", extra={"signal": "SIGHUP"})
            self.reload_requested = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        loop.add_signal_handler(signal.SIGHUP, hup)

    async def _wait_ready(self, timeout_s: float) -> bool:
        children = [*self.workers, self.publisher]
        waits = [asyncio.create_task(c.ready.wait()) for c in children]
        stop = asyncio.create_task(self.stopping.wait())
        all_ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*waits))
        await asyncio.wait(
            {all_ready, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        stop.cancel()
        ok = all(c.ready.is_set() for c in children)
        if not ok:
            for w in waits:
                w.cancel()
            missing = [c.name for c in children if not c.ready.is_set()]
            log.warning("children_not_ready", extra={"children": missing})
        return ok

    async def _shutdown(self) -> None:
        grace = self.config.scheduler.shutdown_grace_s
        self.stopping.set()
        side = [self.earnings] if self.earnings is not None else []
        for ch in side:
            if ch.conn is not None:
                with contextlib.suppress(OSError):
                    ipc.send(ch.conn, ipc.Stop(grace_s=grace))
        for w in self.workers:
            if w.conn is not None:
                with contextlib.suppress(OSError):
                    ipc.send(w.conn, ipc.Stop(grace_s=grace))
        await self._join(self.workers, grace + 5)
        for c in list(self.cycles.values()):  # workers are gone: everything fetched is sealed
            if not c.fetched.is_set():
                for wi in list(c.pending):
                    c.heads[wi] = self.rings[wi].head
                c.pending.clear()
                c.fetched.set()
                self._seal(c.summary.cycle)
        if self.publisher.conn is not None:
            with contextlib.suppress(OSError):
                ipc.send(self.publisher.conn, ipc.Stop(grace_s=grace))
        await self._join([self.publisher, *side], grace + 10)
        left = sum(r.occupancy() for r in self.rings)
        if left:
            log.error("shutdown_left_unpublished", extra={"records": left})
        else:
            log.info("shutdown_complete", extra={"cycles": self.cycle_no})

    async def _join(self, children: list[_Child], timeout_s: float) -> None:
        tasks = [c.reader_task for c in children if c.reader_task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for c in children:
            if c.proc is not None and c.proc.is_alive() and c.reader_task in pending:
                log.error("child_kill", extra={"child": c.name})
                c.proc.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[None]:
        if not self.config.http.enabled:
            yield
            return
        async with HttpServer.serve(self.config, self) as server:
            self.http = server
            try:
                yield
            finally:
                self.http = None

    async def run(self, *, once: bool = False, timeout_s: float | None = None) -> int:
        """Run until SIGTERM/SIGINT (or one cycle with ``once``). Returns the exit code."""
        logs.bind(role="supervisor")
        metrics.setup_multiprocess()
        try:
            metrics.set_build_info(__version__)
            async with self._http():
                return await self._run(once=once, timeout_s=timeout_s)
        finally:
            metrics.teardown_multiprocess()

    async def _run(self, *, once: bool, timeout_s: float | None) -> int:
        self._install_signals()
        self._setup_memory()
        log.info(
            "engine_starting",
            extra={
                "workers": self.n_workers,
                "symbols": len(self.universe.symbols),
                "shards": self.config.workers.shards,
                "interval_s": self.config.scheduler.interval_s,
            },
        )
        try:
            self._spawn(self.publisher)
            for w in self.workers:
                self._spawn(w)
            if self.earnings is not None and not once:
                self._spawn(self.earnings)
            await self._wait_ready(READY_TIMEOUT_S)
            if not self.stopping.is_set():
                sched = asyncio.create_task(self._scheduler(once=once))
                if timeout_s is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(sched), timeout=timeout_s)
                    if not sched.done():
                        log.error("run_timed_out", extra={"timeout_s": timeout_s})
                        self.stopping.set()
                if once:
                    await sched
                else:
                    await self._wait_or_stop(sched)
                    sched.cancel()
        finally:
            await self._shutdown()
            self._release_memory()
        if self.fatal:
            print(f"ingestion-agent: fatal: {self.fatal}", file=sys.stderr)
            return 2
        if once:
            s = self.last_summary
            if s is None:
                print("ingestion-agent: the cycle did not complete", file=sys.stderr)
                return 1
            print(s.line(), file=self.out, flush=True)
            return 0 if s.ok else 1
        return 0


async def run_engine(
    config: Config, *, once: bool = False, timeout_s: float | None = None, out: TextIO = sys.stdout
) -> int:
    universe = load_symbols(config.symbols.file, config.symbols.on_invalid)
    for problem in universe.skipped:
        log.warning("symbol_skipped", extra={"problem": str(problem)})
    return await Supervisor(config, universe, out=out).run(once=once, timeout_s=timeout_s)
