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

Signals: SIGTERM/SIGINT stop scheduling, let the workers finish the cycle in flight, then let the
publisher drain every ring (into JetStream or its outbox) - all within one deadline,
``scheduler.shutdown_grace_s`` in total (:mod:`engine.runtime.shutdown`); a child still running
then is killed, and nothing is restarted once the shutdown began. SIGHUP reloads the symbols file
and re-shards between two cycles; a bad file is rejected with a logged error and the old universe
kept. A child that dies is restarted (with backoff); the shared memory outlives it, so a restarted
publisher drains what the ring still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

from engine import __version__
from engine.config import Config
from engine.observe import logs, metrics
from engine.observe.http import HttpServer
from engine.observe.quality import QualityTracker
from engine.runtime import identity, ipc
from engine.runtime.children import Child, Children, Entry
from engine.runtime.cycles import (
    PROGRESS_EVERY_S,
    CycleBook,
    OpenCycle,
    Scheduler,
    wait_or_stop,
)
from engine.runtime.reload import ReloadRequest, reload_symbols
from engine.runtime.schedule import spread_window
from engine.runtime.shared import SharedState
from engine.runtime.shutdown import ShutdownBudget
from engine.runtime.startup import TIMER
from engine.runtime.status import EngineStatus
from engine.runtime.tasks import TaskSupervisor
from engine.sinks.publisher import publisher_main
from engine.source.transport import preload
from engine.source.universe import Universe, load_configured, log_notes
from engine.stats import CycleStats
from engine.worker import worker_main

log = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 60.0


@contextlib.asynccontextmanager
async def _http(config: Config, status: EngineStatus) -> AsyncIterator[None]:
    """Serve the HTTP endpoint (when enabled) for as long as the engine runs."""
    if not config.http.enabled:
        yield
        return
    async with HttpServer.serve(config, status, progress=status.progress):
        yield


class Supervisor:
    """Wires the jobs together: shared memory, children, cycles, reload, HTTP, shutdown."""

    def __init__(self, config: Config, universe: Universe) -> None:
        self.config = config
        self.universe = universe
        self.n_workers = config.worker_count()
        self.shared = SharedState(config, self.n_workers)
        self.book = CycleBook()
        self.status = EngineStatus(config, self.shared, self.book)
        self.workers = [Child("worker", i) for i in range(self.n_workers)]
        self.publisher = Child("publisher", 0)
        self.earnings = Child("earnings", 0) if config.earnings.enabled else None
        self.children: Children | None = None
        self.stopping = asyncio.Event()
        self.reload = ReloadRequest()
        self.fatal: str | None = None
        self.ready_report: dict[str, float] = {}
        """The children's own start-up (:mod:`engine.runtime.startup`): their ready messages."""

    def _use(self, universe: Universe) -> None:
        self.universe = universe
        metrics.set_universe(len(universe), len(universe.skipped), len(universe.translated))
        self.shared.assign(universe)
        self.book.tracker = QualityTracker.for_universe(universe.symbols, universe.meta)

    # -- children (engine.runtime.children.ChildHost) ----------------------------------------

    def entry(self, child: Child, conn: Connection) -> Entry:
        sh = self.shared
        if child.kind == "publisher":
            return publisher_main, (self.config, sh.rings, [r for r, _ in sh.notify], conn,
                                    os.getpid())  # fmt: skip
        if child.kind == "earnings":
            # imported only when the job runs (its modules are a tenth of the start-up)
            from engine.earnings.process import earnings_main

            return earnings_main, (self.config, conn, os.getpid(), sh.guard)
        i = child.index
        return worker_main, (i, self.config, sh.rings[i], sh.notify[i][1], conn, os.getpid(),
                             sh.guard)  # fmt: skip

    def on_started(self, child: Child) -> None:
        if child.kind == "worker" and child.conn is not None:
            ipc.send(child.conn, self.shared.assignments[child.index])

    def on_message(self, child: Child, msg: ipc.Message) -> None:
        if isinstance(msg, ipc.WorkerReady | ipc.PublisherReady):
            child.ready.set()
            if isinstance(msg, ipc.WorkerReady):  # the slowest worker is the one that counts
                crumb = self.ready_report.get("worker_crumb_s", 0.0)
                self.ready_report["worker_crumb_s"] = max(crumb, round(msg.crumb_s, 3))
            else:
                self.ready_report["publisher_connect_s"] = round(msg.connect_s, 3)
            if isinstance(msg, ipc.WorkerReady):
                self._redo_fetch(child)
            if isinstance(msg, ipc.PublisherReady):
                for cyc, c in self.book.open.items():  # a restarted publisher needs open seals
                    if c.fetched.is_set() and not c.published.is_set():
                        self._seal(cyc)
        elif isinstance(msg, ipc.CycleFetched):
            fetched = self.book.open.get(msg.cycle)
            if fetched is not None:
                fetched.add_fetched(msg.worker, msg.counts, msg.ring_head)
                if fetched.fetched.is_set():
                    self._seal(msg.cycle)
        elif isinstance(msg, ipc.CyclePublished):
            published = self.book.open.get(msg.cycle)
            if published is not None:
                published.add_published(msg)
        elif isinstance(msg, ipc.Fatal):
            self.fatal = msg.message
            self.stopping.set()

    def on_died(self, child: Child) -> None:
        """A worker that dies during a fetch phase fetches its share again once it is back
        (what it wrote before dying stays in its ring and is published; what it refetches
        unchanged is dropped by the last-seen table, and JetStream's message ids catch the
        rest). A second death in the same cycle, a stopping engine, or no restart within the
        fetch bound: its share counts as failed (``WorkerDied``)."""
        if child.kind != "worker":
            return
        w = child.index
        for c in list(self.book.open.values()):
            if w not in c.pending:
                continue
            if w in c.redo or w in c.refetching or self.stopping.is_set():
                self._lose_share(c.cycle, w)
                continue
            c.redo.add(w)
            log.warning("worker_share_refetch", extra={"cycle": c.cycle, "worker": w})
            asyncio.get_running_loop().call_later(
                self.config.scheduler.fetch_bound_s(), self._redo_expired, c.cycle, w
            )

    def _lose_share(self, cycle: int, worker: int) -> None:
        c = self.book.open.get(cycle)
        if c is None or worker not in c.pending:
            return
        c.add_lost(worker, self.shared.symbols_of(worker), self.shared.rings[worker].head)
        if c.fetched.is_set():
            self._seal(cycle)

    def _redo_expired(self, cycle: int, worker: int) -> None:
        c = self.book.open.get(cycle)
        if c is not None and worker in c.redo:
            log.error("worker_share_lost", extra={"cycle": cycle, "worker": worker})
            self._lose_share(cycle, worker)

    def _redo_fetch(self, child: Child) -> None:
        """A restarted worker is ready: it fetches the share of any cycle its death left open."""
        w = child.index
        for c in list(self.book.open.values()):
            if w in c.redo and child.conn is not None and not self.stopping.is_set():
                c.redo.discard(w)
                c.refetching.add(w)
                msg = ipc.StartCycle(cycle=c.cycle, started_at=time.time(), spread_s=0.0)
                ipc.send(child.conn, msg)

    def _seal(self, cycle: int) -> None:
        c = self.book.open[cycle]
        if self.publisher.conn is not None and self.publisher.ready.is_set():
            heads = self.shared.heads()
            positions = {w: c.heads.get(w, heads[w]) for w in range(self.n_workers)}
            self.publisher.send(ipc.Seal(cycle=cycle, positions=positions))

    # -- cycles -----------------------------------------------------------------------------

    def _apply_reload(self) -> None:
        universe = reload_symbols(self.config, self.universe)
        if universe is None:
            return
        self._use(universe)
        for w in self.workers:
            if w.conn is not None:
                ipc.send(w.conn, self.shared.assignments[w.index])

    def start_cycle(self) -> OpenCycle:
        if self.reload.take():
            self._apply_reload()
        cyc = self.book.start(range(self.n_workers))
        cyc.start_heads = self.shared.heads()
        spread = spread_window(self.config.scheduler.interval_s, self.config.scheduler.spread)
        msg = ipc.StartCycle(cycle=cyc.cycle, started_at=time.time(), spread_s=spread)
        for w in self.workers:
            if w.conn is not None and w.ready.is_set():
                ipc.send(w.conn, msg)
            else:  # a worker being restarted misses this cycle; its shard resumes next cycle
                cyc.skip(w.index, self.shared.rings[w.index].head)
        if not cyc.pending:
            cyc.fetched.set()
            self._seal(cyc.cycle)
        log.info("cycle_started", extra={"cycle": cyc.cycle})
        self.status.check_budget()
        return cyc

    def complete(self, cyc: OpenCycle) -> None:
        self.status.stamp(cyc.stats)
        self.book.finish(cyc, self.shared.table)

    def waiting(self, cyc: OpenCycle) -> None:
        """A long fetch phase: how long, how many workers still fetch, the records written so
        far, and the breaker and rate (a down Yahoo shows as an OPEN breaker here)."""
        heads = self.shared.heads()
        written = sum(heads[w] - cyc.start_heads.get(w, heads[w]) for w in heads)
        f = self.status.rate_figures()
        log.info(
            "cycle_waiting",
            extra={
                "cycle": cyc.cycle,
                "elapsed_s": round(time.perf_counter() - cyc.t0, 1),
                "workers_fetching": len(cyc.pending),
                "records_written": written,
                "requested": len(self.universe.symbols),
                "breaker": f.breaker.name if f is not None else "CLOSED",
                "rate_rps": round(f.current_rps, 2) if f is not None else None,
            },
        )

    # -- lifecycle --------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            if not self.stopping.is_set():
                log.info("shutdown_requested", extra={"signal": sig.name})
                self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload.request)

    def _all_children(self) -> list[Child]:
        return [*self.workers, self.publisher, *([self.earnings] if self.earnings else [])]

    async def _wait_ready(self, timeout_s: float) -> bool:
        children = [*self.workers, self.publisher]
        ready: asyncio.Future[Any] = asyncio.gather(*(c.ready.wait() for c in children))
        stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({ready, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ready.cancel()
        ok = all(c.ready.is_set() for c in children)
        if not ok:
            missing = [c.name for c in children if not c.ready.is_set()]
            log.warning("children_not_ready", extra={"children": missing})
        return ok

    async def _shutdown(self, children: Children) -> None:
        """Workers finish the cycle in flight, then the publisher drains every ring: both within
        one deadline, ``scheduler.shutdown_grace_s`` from now (:mod:`engine.runtime.shutdown`)."""
        budget = ShutdownBudget(self.config.scheduler.shutdown_grace_s)
        self.stopping.set()
        side = [self.earnings] if self.earnings is not None else []
        phase = budget.workers_phase_s()
        for ch in [*side, *self.workers]:
            ch.send(ipc.Stop(grace_s=budget.grace_s(phase)))
        await children.join(self.workers, phase, reap_s=budget.reap_s())
        heads = self.shared.heads()
        for c in list(self.book.open.values()):  # workers are gone: everything fetched is sealed
            if not c.fetched.is_set():
                c.close_fetch(heads)
                self._seal(c.cycle)
        phase = budget.publisher_phase_s()
        self.publisher.send(ipc.Stop(grace_s=budget.grace_s(phase)))
        await children.join([self.publisher, *side], phase, reap_s=budget.reap_s())
        left = self.shared.unpublished()
        if left:
            log.error("shutdown_left_unpublished", extra={"records": left})
        else:
            log.info("shutdown_complete", extra={"cycles": self.book.cycle_no})

    async def run(self, *, once: bool = False, timeout_s: float | None = None) -> RunResult:
        """Run until SIGTERM/SIGINT (or one cycle with ``once``)."""
        logs.bind(role="supervisor")
        metrics.setup_multiprocess()
        try:
            metrics.set_build_info(__version__)
            async with _http(self.config, self.status):
                TIMER.mark("metrics_http")
                return await self._run(once=once, timeout_s=timeout_s)
        finally:
            metrics.teardown_multiprocess()

    async def _run(self, *, once: bool, timeout_s: float | None) -> RunResult:
        self._install_signals()
        self.shared.create(self.universe)
        self._use(self.universe)
        TIMER.mark("symbols")
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
            # the last published identity per symbol: a restart re-publishes no unchanged quote
            self.shared.restore(await identity.restore(self.config, self.universe.symbols))
            TIMER.mark("identity")
            async with TaskSupervisor("supervisor") as tasks:
                children = Children(
                    self, tasks, restart_backoff_s=self.config.workers.restart_backoff_s
                )
                self.children = children
                interval_s = self.config.scheduler.interval_s
                scheduler = Scheduler(
                    self, tasks, interval_s, progress_s=min(PROGRESS_EVERY_S, interval_s)
                )
                try:
                    await self._serve(tasks, children, scheduler, once=once, timeout_s=timeout_s)
                finally:
                    await self._shutdown(children)
                    children.cancel(self._all_children())
                    scheduler.cancel()
        finally:
            self.shared.release()
        return self._result()

    async def _serve(
        self,
        tasks: TaskSupervisor,
        children: Children,
        scheduler: Scheduler,
        *,
        once: bool,
        timeout_s: float | None,
    ) -> None:
        """Start the children, then run the scheduler until it is done or the engine stops."""
        preload(self.config.yahoo.transport)  # imported once here, not in every worker
        children.spawn(self.publisher)
        for w in self.workers:
            children.spawn(w)
        if self.earnings is not None and not once:
            children.spawn(self.earnings)
        TIMER.mark("fork")
        await self._wait_ready(READY_TIMEOUT_S)
        TIMER.mark("children_ready")
        log.info("engine_started", extra={**TIMER.report(), **self.ready_report})
        if self.stopping.is_set():
            return
        sched = tasks.spawn("scheduler", scheduler.run(once=once))
        if timeout_s is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sched), timeout=timeout_s)
            if not sched.done():
                log.error("run_timed_out", extra={"timeout_s": timeout_s})
                self.stopping.set()
        if once:
            await sched
        else:
            await wait_or_stop(sched, self.stopping)
            sched.cancel()

    def _result(self) -> RunResult:
        """What the run leaves behind: a fatal refusal, and the last completed cycle."""
        return RunResult(fatal=self.fatal, last=self.book.last)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended; the command line turns it into its output and exit status."""

    fatal: str | None
    """A child's fatal set-up refusal (the engine stopped because of it), else None."""
    last: CycleStats | None
    """The last completed cycle (``run --once``: its one cycle), None if none completed."""


async def run_engine(
    config: Config, *, once: bool = False, timeout_s: float | None = None
) -> RunResult:
    universe = load_configured(config.symbols)
    log_notes(universe)
    supervisor = Supervisor(config, universe)
    TIMER.mark("symbols")
    return await supervisor.run(once=once, timeout_s=timeout_s)
