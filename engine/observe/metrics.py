"""Every Prometheus metric of the engine, and the small typed functions that record them.

Naming follows the Prometheus conventions: prefix ``ingestion_``, base units in the name
(``_seconds``, ``_records``, ``_ratio``), counters end in ``_total``, and labels are bounded -
error kinds (the classes of :mod:`engine.errors`), reject reasons (:class:`~engine.quote.
RejectReason`), outcomes, worker indices, dependency names, sectors (capped by
:mod:`engine.observe.quality`). No high-volume series carries a symbol label; the only per-symbol
series
is the top-10 failing symbols, computed at scrape time (see :class:`QualityCollector`).

Processes (``multiprocess mode``)
    The supervisor forks workers and a publisher; each records into its own memory-mapped files
    under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and the supervisor's
    HTTP endpoint aggregates every file at scrape time (``MultiProcessCollector``): counters and
    histograms are summed over processes, gauges are combined per their ``multiprocess_mode``.
    Call :func:`setup_multiprocess` first thing in the supervisor, before any child is forked
    (it also works if this module was imported earlier: metric objects are built lazily, on
    first use or by the setup call). Call :func:`mark_process_dead` with the pid of every child
    that exited, so its ``live*`` gauges stop being reported; its counters stay in the sums,
    which keeps them monotonic across child restarts.

    Gauge modes: ``livemostrecent`` for state that any process may report (the newest value
    wins; gone with the process that reported it: breaker state, rate limit, ring occupancy,
    store/cache health), ``mostrecent`` for depths whose last known value is still the best
    guess after the reporting process died (DLQ and outbox depth), ``max`` for timestamps and
    constants written by the supervisor (children inherit the key at 0, and max keeps the real
    value).

    Without :func:`setup_multiprocess` (unit tests, one-off tools) the metrics live in this
    process's :func:`registry`.

Where each function is called (the supervisor, a worker or the publisher) is listed in each
docstring; recording is cheap (a dict lookup and an 8-byte write into a memory map), but is
meant per batch or per cycle, never per quote.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client import multiprocess as prom_mp
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.source import ratelimit
from engine.stats import CycleStats

if TYPE_CHECKING:
    from engine.observe.quality import QualitySnapshot

ENV_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
PREFIX: Final = "ingestion"

FETCH_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SYMBOL_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CYCLE_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0)
STORE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

BREAKER_STATES: Final = ("closed", "half_open", "open")
"""Values of ``ingestion_breaker_state``: the index is the value
(engine.source.breaker.BreakerState)."""

GaugeMode = Literal["max", "mostrecent", "livemostrecent"]


class StoreStatsView(Protocol):
    """What :func:`record_store_stats` reads (``engine.sinks.store.StoreStats``)."""

    @property
    def available(self) -> bool: ...
    @property
    def rows_written(self) -> int: ...
    @property
    def rows_duplicate(self) -> int: ...
    @property
    def rows_expired(self) -> int: ...
    @property
    def rows_rejected(self) -> int: ...
    @property
    def rows_dropped(self) -> int: ...
    @property
    def rows_buffered(self) -> int: ...
    @property
    def rows_spilled(self) -> int: ...
    @property
    def outages(self) -> int: ...


class CacheStatsView(Protocol):
    """What :func:`record_cache_stats` reads (``engine.sinks.cache.CacheStats``)."""

    @property
    def available(self) -> bool: ...
    @property
    def keys_written(self) -> int: ...
    @property
    def keys_skipped_older(self) -> int: ...
    @property
    def keys_unencodable(self) -> int: ...
    @property
    def pending_symbols(self) -> int: ...
    @property
    def outages(self) -> int: ...


def _n(name: str) -> str:
    return f"{PREFIX}_{name}"


class _Metrics:
    """The metric objects, built on one registry (lazily: see the module docstring)."""

    def __init__(self, reg: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(_n(name), doc, labels, registry=reg)

        def gauge(name: str, doc: str, mode: GaugeMode, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(_n(name), doc, labels, registry=reg, multiprocess_mode=mode)

        def hist(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(_n(name), doc, labels, registry=reg, buckets=buckets)

        # -- engine ----------------------------------------------------------------------------
        self.build_info = gauge(
            "build_info",
            "Engine build: always 1, labelled with versions.",
            "max",
            ("version", "python"),
        )
        self.start_time = gauge(
            "start_time_seconds", "When the supervisor started (Unix time).", "max"
        )
        self.child_restarts = counter(
            "child_restarts", "Child processes restarted after dying, by kind.", ("kind",)
        )
        self.task_failures = counter(
            "task_failures",
            "Supervised long-lived tasks that failed, by owner:task (engine.runtime.tasks).",
            ("task",),
        )
        # -- fetch (workers, per batch request) -----------------------------------------------
        self.fetch_requests = counter(
            "fetch_requests", "Yahoo quote batch requests finished (after retries)."
        )
        self.fetch_failures = counter(
            "fetch_failures",
            "Yahoo quote batch requests that failed after retries, by error kind.",
            ("error",),
        )
        self.fetch_retries = counter(
            "fetch_retries", "Yahoo HTTP attempts retried, by error kind.", ("error",)
        )
        self.fetch_latency = hist(
            "fetch_latency_seconds",
            "Duration of one batch request, retries included, by outcome.",
            FETCH_BUCKETS,
            ("outcome",),
        )
        self.fetch_symbol_latency = hist(
            "fetch_symbol_latency_seconds",
            "Duration of a successful batch request divided by its number of symbols.",
            SYMBOL_BUCKETS,
        )
        # -- rate limit and breaker -----------------------------------------------------------
        self.rate_rps = gauge(
            "rate_limit_requests_per_second",
            "Current request rate allowed by the adaptive limiter.",
            "livemostrecent",
        )
        self.rate_max_rps = gauge(
            "rate_limit_max_requests_per_second",
            "Ceiling of the adaptive limiter.",
            "livemostrecent",
        )
        self.rate_budget = gauge(
            "rate_limit_cycle_budget_requests",
            "Requests the limiter allows in one cycle interval (bucket plus refill).",
            "livemostrecent",
        )
        self.rate_needed = gauge(
            "rate_limit_cycle_needed_requests",
            "Requests one full cycle over the universe needs.",
            "livemostrecent",
        )
        self.rate_headroom = gauge(
            "rate_limit_headroom_ratio",
            "Share of the per-cycle request budget left after a full cycle "
            "(0: the limiter cannot cover a cycle).",
            "livemostrecent",
        )
        self.rate_throttles = counter(
            "rate_limit_throttles", "Throttling answers from Yahoo (HTTP 429, crumb refusal)."
        )
        self.rate_wait = counter(
            "rate_limit_wait_seconds", "Time spent waiting for a rate-limit token."
        )
        self.breaker_state = gauge(
            "breaker_state",
            "Yahoo circuit breaker: 0 closed, 1 half-open, 2 open.",
            "livemostrecent",
        )
        # -- cycles (supervisor) --------------------------------------------------------------
        self.cycles = counter(
            "cycles", "Completed cycles, by outcome (ok, degraded).", ("outcome",)
        )
        self.cycle_duration = hist(
            "cycle_duration_seconds",
            "Cycle duration, start to every quote published.",
            CYCLE_BUCKETS,
        )
        self.cycle_fetch_duration = hist(
            "cycle_fetch_duration_seconds",
            "Fetch phase of a cycle: start to every worker done.",
            CYCLE_BUCKETS,
        )
        self.cycle_overruns = counter(
            "cycle_overruns", "Scheduler ticks skipped because a cycle ran past them."
        )
        self.last_success = gauge(
            "last_successful_cycle_timestamp_seconds",
            "When the last cycle without failures completed (Unix time).",
            "max",
        )
        self.failure_ratio = gauge(
            "symbol_failure_ratio_5m",
            "Share of requested symbols whose batch failed after all retries, over the last "
            "5 minutes (the engine's own alerting hook, engine.observe.alerts).",
            "max",
        )
        self.failure_alert = gauge(
            "failure_rate_alert",
            "1 while symbol_failure_ratio_5m is above 5% (failure_rate_high logged), else 0.",
            "max",
        )
        self.symbols_per_second = gauge(
            "symbols_per_second",
            "Symbols answered per second over the last cycle's fetch phase.",
            "livemostrecent",
        )
        self.symbols_requested = counter("symbols_requested", "Symbols requested from Yahoo.")
        self.symbols_fetched = counter(
            "symbols_fetched", "Symbols Yahoo returned a quote for (valid or rejected)."
        )
        self.symbols_missing = counter(
            "symbols_missing", "Symbols requested but absent from Yahoo's answer."
        )
        self.symbols_failed = counter(
            "symbols_failed", "Symbols of batch requests that failed after retries."
        )
        self.quotes_valid = counter(
            "quotes_valid", "Quotes that passed validation (unchanged ones included)."
        )
        self.quotes_unchanged = counter(
            "quotes_unchanged", "Valid quotes identical to the last one (not re-published)."
        )
        self.quotes_stale = counter(
            "quotes_stale", "Valid quotes older than 5 min outside regular hours."
        )
        self.quotes_rejected = counter(
            "quotes_rejected", "Quotes rejected by validation, by reason.", ("reason",)
        )
        self.messages = counter(
            "messages",
            "JetStream messages by outcome (published, deduplicated, failed, dead_lettered, "
            "outboxed: kept in the outbox while NATS was unreachable).",
            ("outcome",),
        )
        # -- rings, publisher, outbox, DLQ ----------------------------------------------------
        self.ring_occupancy = gauge(
            "ring_occupancy_records",
            "Records in a worker's ring not yet published.",
            "livemostrecent",
            ("worker",),
        )
        self.ring_capacity = gauge(
            "ring_capacity_records", "Capacity of a worker's ring.", "livemostrecent", ("worker",)
        )
        self.ring_full_waits = counter(
            "ring_full_waits", "Times a worker waited for room in its ring.", ("worker",)
        )
        self.publish_retries = counter(
            "publish_retries", "JetStream messages published again after no or a failed ack."
        )
        self.dlq_depth = gauge(
            "dlq_depth_messages", "Messages in the dead-letter stream.", "mostrecent"
        )
        self.outbox_depth = gauge(
            "outbox_depth_messages",
            "Messages in the publisher's outbox waiting for JetStream.",
            "mostrecent",
        )
        self.outbox_bytes = gauge(
            "outbox_size_bytes", "Size of the publisher's outbox on disk.", "mostrecent"
        )
        # -- store and cache (publisher) ------------------------------------------------------
        self.store_rows = counter(
            "store_rows",
            "Quotes handled by the PostgreSQL store, by outcome "
            "(written, duplicate, expired, rejected, dropped).",
            ("outcome",),
        )
        self.store_flush = hist(
            "store_flush_seconds",
            "Time for a batch to become durable in PostgreSQL (or spilled).",
            STORE_BUCKETS,
        )
        self.store_buffered = gauge(
            "store_rows_buffered", "Quotes waiting in memory for PostgreSQL.", "livemostrecent"
        )
        self.store_spilled = gauge(
            "store_rows_spilled", "Quotes spilled to disk waiting for PostgreSQL.", "livemostrecent"
        )
        self.store_up = gauge(
            "store_up", "1 if the last attempt to reach PostgreSQL succeeded.", "livemostrecent"
        )
        self.store_outages = counter("store_outages", "PostgreSQL outages seen by the store.")
        self.cache_writes = counter(
            "cache_writes",
            "Redis latest-quote writes by outcome (written, skipped_older, unencodable).",
            ("outcome",),
        )
        self.cache_outages = counter(
            "cache_outages", "Redis write failures that started an outage (writes kept, retried)."
        )
        self.cache_pending = gauge(
            "cache_pending_symbols", "Symbols waiting to be written to Redis.", "livemostrecent"
        )
        self.cache_up = gauge(
            "cache_up", "1 if the last attempt to reach Redis succeeded.", "livemostrecent"
        )
        # -- earnings calendar sync ---------------------------------------------------------
        self.earnings_syncs = counter(
            "earnings_syncs", "Earnings-calendar syncs, by outcome (ok, failed).", ("outcome",)
        )
        self.earnings_fetched = counter(
            "earnings_events_fetched", "Earnings events fetched by the calendar syncs."
        )
        self.earnings_changed = counter(
            "earnings_events_changed", "Earnings events a sync inserted, updated or moved."
        )
        self.earnings_duration = gauge(
            "earnings_last_sync_duration_seconds",
            "Duration of the last earnings sync.",
            "mostrecent",
        )
        self.earnings_last_success = gauge(
            "earnings_last_success_timestamp_seconds",
            "When the last successful earnings sync finished (Unix time).",
            "max",
        )
        # -- dependencies (readiness probe) ---------------------------------------------------
        self.dependency_up = gauge(
            "dependency_up",
            "Result of the last readiness check of a dependency (1 up, 0 down).",
            "livemostrecent",
            ("dependency",),
        )


class _Registry:
    """Module state: the registry, the metric objects and the multiprocess directory."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: _Metrics | None = None
        self.dir: Path | None = None
        self.owns_dir = False
        self.snapshots: dict[str, dict[str, int]] = {}


_state = _Registry()


def _new_state(path: Path | None, owns: bool) -> None:
    global _state
    _state = _Registry()
    _state.dir, _state.owns_dir = path, owns


def _m() -> _Metrics:
    m = _state.metrics
    if m is None:
        m = _state.metrics = _Metrics(_state.registry)
    return m


# --------------------------------------------------------------------------- set-up and scrape


def setup_multiprocess(directory: str | os.PathLike[str] | None = None) -> Path:
    """Switch to multiprocess mode; call in the supervisor before forking any child.

    ``directory`` defaults to ``$PROMETHEUS_MULTIPROC_DIR`` if set, else a new temporary
    directory (removed by :func:`teardown_multiprocess`). Files a previous run left there are
    deleted: a new run starts its counters at zero. Returns the directory.
    """
    env = os.environ.get(ENV_DIR)
    owns = directory is None and not env
    path = Path(directory or env or tempfile.mkdtemp(prefix="ingestion-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink(missing_ok=True)
    os.environ[ENV_DIR] = str(path)
    close = getattr(values, "close_all_multiprocess_files", None)
    if close is not None:
        close()
    # prometheus-client picks its value class when it is imported; pick again now that the
    # directory is known (its own test-suite does the same).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _new_state(path, owns)
    _m()
    return path


def teardown_multiprocess() -> None:
    """Leave multiprocess mode (supervisor exit); removes the directory if setup made it."""
    path, owns = _state.dir, _state.owns_dir
    close = getattr(values, "close_all_multiprocess_files", None)
    if close is not None:
        close()
    os.environ.pop(ENV_DIR, None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _new_state(None, False)
    if path is not None and owns:
        shutil.rmtree(path, ignore_errors=True)


def reset() -> None:
    """Fresh single-process metrics (tests, tools). Not for use in the running engine."""
    if _state.dir is not None:
        teardown_multiprocess()
    else:
        _new_state(None, False)


def multiprocess_dir() -> Path | None:
    return _state.dir


def mark_process_dead(pid: int) -> None:
    """Supervisor, when a child exited (``_on_exit``): drop its ``live*`` gauges."""
    if _state.dir is not None:
        prom_mp.mark_process_dead(pid, str(_state.dir))  # type: ignore[no-untyped-call]


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry to scrape: every process's metrics (multiprocess) or this process's, plus
    ``extra`` collectors (e.g. :class:`QualityCollector`)."""
    _m()
    if _state.dir is not None:
        reg = CollectorRegistry(auto_describe=False)
        prom_mp.MultiProcessCollector(reg, path=str(_state.dir))  # type: ignore[no-untyped-call]
    elif not extra:
        return _state.registry
    else:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Forward(_state.registry))
    for c in extra:
        reg.register(c)
    return reg


class _Forward(Collector):
    def __init__(self, reg: CollectorRegistry) -> None:
        self._reg = reg

    def collect(self) -> Iterable[Metric]:
        return self._reg.collect()


# ----------------------------------------------------------------------------------- engine


def set_build_info(version: str, now: float | None = None) -> None:
    """Supervisor, at start (after :func:`setup_multiprocess`)."""
    m = _m()
    py = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    m.build_info.labels(version=version, python=py).set(1)
    m.start_time.set(time.time() if now is None else now)


ChildKind = Literal["worker", "publisher", "earnings"]


def record_child_restart(kind: ChildKind) -> None:
    """Supervisor, when it respawns a child that died (``_on_exit``)."""
    _m().child_restarts.labels(kind=kind).inc()


def record_task_failure(task: str) -> None:
    """A supervised task (``owner:name``, a bounded set) failed (engine.runtime.tasks)."""
    _m().task_failures.labels(task=task).inc()


# ------------------------------------------------------------------------------------ fetch


def record_batch(symbols: int, latency_s: float, error_kind: str | None = None) -> None:
    """Worker, once per batch request when it finished (``YahooPollSource._one``).

    ``latency_s`` is the whole request with its retries; ``error_kind`` is
    ``UpstreamError.kind`` of the final failure, None on success.
    """
    m = _m()
    m.fetch_requests.inc()
    if error_kind is None:
        m.fetch_latency.labels(outcome="ok").observe(latency_s)
        if symbols > 0:
            m.fetch_symbol_latency.observe(latency_s / symbols)
    else:
        m.fetch_failures.labels(error=error_kind).inc()
        m.fetch_latency.labels(outcome="error").observe(latency_s)


def record_retry(error_kind: str) -> None:
    """Worker, each time a Yahoo request is retried (``YahooClient.get_with_retries``)."""
    _m().fetch_retries.labels(error=error_kind).inc()


def record_throttle() -> None:
    """Worker, each time Yahoo throttles (``YahooGuard.record`` with outcome ``throttled``)."""
    _m().rate_throttles.inc()


def record_rate_limit_wait(seconds: float) -> None:
    """Worker, time ``YahooGuard.acquire`` slept waiting for a token (when > 0)."""
    if seconds > 0:
        _m().rate_wait.inc(seconds)


def budget_headroom(budget_requests: float, needed_requests: int) -> float:
    """:func:`engine.source.ratelimit.headroom`: share of the per-cycle request budget left after
    one full cycle, in [0, 1]; 0 when the budget cannot cover a cycle."""
    return ratelimit.headroom(budget_requests, needed_requests)


def set_rate_limit(
    current_rps: float, max_rps: float, budget_requests: float, needed_requests: int
) -> None:
    """Supervisor, before each scrape (``StatusSource.refresh_metrics``): from
    ``guard.snapshot()``, ``ratelimit.cycle_budget(...)`` and ``_requests_per_cycle()``."""
    m = _m()
    m.rate_rps.set(current_rps)
    m.rate_max_rps.set(max_rps)
    m.rate_budget.set(budget_requests)
    m.rate_needed.set(needed_requests)
    m.rate_headroom.set(budget_headroom(budget_requests, needed_requests))


def breaker_value(state: int | str) -> int:
    """0/1/2 from ``BreakerState`` (an int) or its name (``"OPEN"``, ``"half_open"``)."""
    if isinstance(state, str):
        name = state.lower()
        if name not in BREAKER_STATES:
            raise ValueError(f"unknown breaker state {state!r}; expected one of {BREAKER_STATES}")
        return BREAKER_STATES.index(name)
    if not 0 <= int(state) < len(BREAKER_STATES):
        raise ValueError(f"unknown breaker state {state!r}")
    return int(state)


def set_breaker_state(state: int | str) -> None:
    """Supervisor, before each scrape, from the guard's shared breaker."""
    _m().breaker_state.set(breaker_value(state))


# ----------------------------------------------------------------------------------- cycles


def record_cycle(summary: CycleStats, now: float | None = None) -> None:
    """Supervisor, once per completed cycle (``CycleBook.finish``)."""
    m = _m()
    s, f, p = summary, summary.fetch, summary.publish
    m.cycles.labels(outcome="ok" if s.ok else "degraded").inc()
    m.cycle_duration.observe(s.seconds)
    m.cycle_fetch_duration.observe(s.fetch_seconds)
    m.symbols_requested.inc(f.requested)
    m.symbols_fetched.inc(f.fetched)
    m.symbols_missing.inc(f.missing)
    m.symbols_failed.inc(f.failed)
    m.quotes_valid.inc(f.valid)
    m.quotes_unchanged.inc(f.unchanged)
    m.quotes_stale.inc(f.stale)
    for reason, n in f.rejected.items():
        if n:
            m.quotes_rejected.labels(reason=reason).inc(n)
    for outcome, n in (
        ("published", p.published),
        ("deduplicated", p.deduplicated),
        ("failed", p.failed),
        ("dead_lettered", p.dlq),
        ("outboxed", p.outboxed),
    ):
        m.messages.labels(outcome=outcome).inc(n)
    if s.fetch_seconds > 0:
        m.symbols_per_second.set(f.fetched / s.fetch_seconds)
    if s.ok:
        m.last_success.set(time.time() if now is None else now)


def set_failure_rate(ratio: float, alerting: bool) -> None:
    """Supervisor, once per completed cycle: the alerting hook's window (engine.observe.alerts)."""
    m = _m()
    m.failure_ratio.set(ratio)
    m.failure_alert.set(1 if alerting else 0)


def record_overrun(missed_ticks: int) -> None:
    """Supervisor, when the scheduler skips ticks (``Supervisor._scheduler``)."""
    if missed_ticks > 0:
        _m().cycle_overruns.inc(missed_ticks)


# -------------------------------------------------------------------------- rings, publisher


def set_ring_occupancy(worker: int, records: int, capacity: int) -> None:
    """Supervisor, before each scrape, for every ring (``Ring.occupancy()``, capacity)."""
    m = _m()
    w = str(worker)
    m.ring_occupancy.labels(worker=w).set(records)
    m.ring_capacity.labels(worker=w).set(capacity)


def record_ring_full(worker: int) -> None:
    """Worker, when its ring was full and it had to wait (``RingSink._on_full``)."""
    _m().ring_full_waits.labels(worker=str(worker)).inc()


def record_publish_retries(messages: int) -> None:
    """Publisher, messages re-published after a missing/failed ack (``JetStreamPublisher``)."""
    if messages > 0:
        _m().publish_retries.inc(messages)


def set_dlq_depth(messages: int) -> None:
    """Publisher, periodically (stream info of the dead-letter stream)."""
    _m().dlq_depth.set(messages)


def set_outbox_depth(messages: int, size_bytes: int | None = None) -> None:
    """Publisher, when the outbox grows or shrinks (``Outbox.append``/``remove``: a running
    count is cheaper than ``count_messages()``), with ``Outbox.size_bytes``."""
    m = _m()
    m.outbox_depth.set(messages)
    if size_bytes is not None:
        m.outbox_bytes.set(size_bytes)


# ----------------------------------------------------------------------------- store, cache


def _deltas(key: str, totals: Mapping[str, int]) -> Iterator[tuple[str, int]]:
    """Increase of each running total since the previous call in this process."""
    prev = _state.snapshots.setdefault(key, {})
    for name, total in totals.items():
        before = prev.get(name, 0)
        prev[name] = total
        if total > before:
            yield name, total - before
        elif 0 < total < before:  # the source restarted from zero
            yield name, total


def record_store_stats(stats: StoreStatsView) -> None:
    """Publisher, after each flush (``Publisher._committer``): ``QuoteStore.stats()``."""
    m = _m()
    totals = {
        "written": stats.rows_written,
        "duplicate": stats.rows_duplicate,
        "expired": stats.rows_expired,
        "rejected": stats.rows_rejected,
        "dropped": stats.rows_dropped,
        "_outages": stats.outages,
    }
    for name, d in _deltas("store", totals):
        if name == "_outages":
            m.store_outages.inc(d)
        else:
            m.store_rows.labels(outcome=name).inc(d)
    m.store_buffered.set(stats.rows_buffered)
    m.store_spilled.set(stats.rows_spilled)
    m.store_up.set(1 if stats.available else 0)


def record_store_flush(seconds: float) -> None:
    """Publisher, duration of each ``QuoteStore.flush`` in ``Publisher._committer``."""
    _m().store_flush.observe(seconds)


def record_cache_stats(stats: CacheStatsView) -> None:
    """Publisher, after each drained chunk or periodically: ``QuoteCache.stats()``."""
    m = _m()
    totals = {
        "written": stats.keys_written,
        "skipped_older": stats.keys_skipped_older,
        "unencodable": stats.keys_unencodable,
        "_outages": stats.outages,
    }
    for name, d in _deltas("cache", totals):
        if name == "_outages":
            m.cache_outages.inc(d)
        else:
            m.cache_writes.labels(outcome=name).inc(d)
    m.cache_pending.set(stats.pending_symbols)
    m.cache_up.set(1 if stats.available else 0)


# --------------------------------------------------------------------------------- earnings


def record_earnings_sync(
    ok: bool, fetched: int, changed: int, seconds: float, now: float | None = None
) -> None:
    """Earnings job, after each sync (``EarningsJob.step``): ``report.ok``, ``report.fetched``,
    ``report.inserted + report.updated + report.rescheduled``, ``report.duration_s``."""
    m = _m()
    m.earnings_syncs.labels(outcome="ok" if ok else "failed").inc()
    m.earnings_fetched.inc(fetched)
    m.earnings_changed.inc(changed)
    m.earnings_duration.set(seconds)
    if ok:
        m.earnings_last_success.set(time.time() if now is None else now)


# ----------------------------------------------------------------------------- readiness


def set_dependency_up(dependency: str, up: bool) -> None:
    """HTTP server (supervisor), after each readiness check of a dependency."""
    _m().dependency_up.labels(dependency=dependency).set(1 if up else 0)


# --------------------------------------------------------------------------- data quality


class QualityCollector(Collector):
    """Data-quality gauges computed at scrape time from the supervisor's latest snapshot.

    Not kept in the multiprocess files: the snapshot lives in the supervisor only, and its
    top-10 failing symbols change from one cycle to the next (files cannot forget a series).
    """

    def __init__(self, snapshot: Callable[[], QualitySnapshot | None]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        if snap is None:
            return []
        return list(_quality_families(snap))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(_n(name), doc, value=value)


def _quality_families(s: QualitySnapshot) -> Iterator[Metric]:
    yield _gauge("quality_symbols", "Symbols in the universe.", s.symbols)
    yield _gauge(
        "quality_symbols_missing", "Symbols without a valid quote in the last cycle.", s.missing
    )
    yield _gauge(
        "quality_missing_ratio", "Share of symbols missing in the last cycle.", s.missing_ratio
    )
    yield _gauge(
        "quality_symbols_stale",
        "Symbols whose last quote is older than the stale threshold during regular hours.",
        s.stale,
    )
    yield _gauge("quality_stale_ratio", "Share of symbols stale (regular hours).", s.stale_ratio)
    yield _gauge(
        "quality_regular_hours",
        "1 if the market was in its regular session.",
        float(s.regular_hours),
    )
    yield _gauge("quality_cycle", "Cycle the quality snapshot describes.", s.cycle)
    hist = GaugeHistogramMetricFamily(
        _n("quality_symbol_age_seconds"),
        "Symbols by age of their last quote (now - market time); never-seen symbols excluded.",
        buckets=[(_le(b), float(n)) for b, n in s.age_buckets],
        gsum_value=s.age_sum_s,
    )
    yield hist
    fams = {
        k: GaugeMetricFamily(_n(f"quality_sector_{k}"), doc, labels=["sector"])
        for k, doc in (
            ("symbols", "Symbols in a sector."),
            ("missing", "Symbols of a sector without a valid quote in the last cycle."),
            ("stale", "Symbols of a sector stale during regular hours."),
        )
    }
    for sec in s.sectors:
        fams["symbols"].add_metric([sec.name], sec.symbols)
        fams["missing"].add_metric([sec.name], sec.missing)
        fams["stale"].add_metric([sec.name], sec.stale)
    yield from fams.values()
    top = GaugeMetricFamily(
        _n("quality_failing_symbol_missed_cycles"),
        "Top failing symbols: cycles without a valid quote within the quality window.",
        labels=["symbol", "sector", "rank"],
    )
    for rank, f in enumerate(s.top_failing, start=1):
        top.add_metric([f.symbol, f.sector, str(rank)], f.missed)
    yield top


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
