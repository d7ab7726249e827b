"""The declaration of every metric family of the engine: name, help text, type, labels, buckets.

Names follow the Prometheus conventions: prefix ``ingestion_``, base units in the name
(``_seconds``, ``_records``, ``_ratio``), counters end in ``_total``, and labels are bounded.
Gauges carry their ``multiprocess_mode`` (see :mod:`engine.observe.metrics.multiprocess`).
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX: Final = "ingestion"

FETCH_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SYMBOL_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CYCLE_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0)
STORE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

GaugeMode = Literal["max", "mostrecent", "livemostrecent"]


def metric_name(name: str) -> str:
    """``ingestion_<name>``."""
    return f"{PREFIX}_{name}"


class Families:
    """The metric objects, built on one registry (lazily, by
    :func:`engine.observe.metrics.multiprocess.families`)."""

    def __init__(self, reg: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(metric_name(name), doc, labels, registry=reg)

        def gauge(name: str, doc: str, mode: GaugeMode, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(metric_name(name), doc, labels, registry=reg, multiprocess_mode=mode)

        def hist(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(metric_name(name), doc, labels, registry=reg, buckets=buckets)

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
        self.universe_symbols = gauge(
            "universe_symbols", "Symbols in the universe in use (symbols.file).", "livemostrecent"
        )
        self.symbols_skipped = gauge(
            "symbols_skipped",
            "Lines of symbols.file skipped as unusable when the universe in use was loaded "
            "(symbols.on_invalid = skip; the symbols_skipped warning names the first ones).",
            "livemostrecent",
        )
        self.symbols_translated = gauge(
            "symbols_translated",
            "Entries of symbols.file translated from Nasdaq-screener or dot notation to Yahoo's "
            "when the universe in use was loaded (symbols.translate_nasdaq).",
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
        self.store_reconciled = counter(
            "store_rows_reconciled",
            "Quotes found in the stream but not in PostgreSQL at start (an engine killed after"
            " JetStream's ack, before the COPY), inserted by the reconcile.",
        )
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
        # -- poison records (quarantine, dead-letter de-duplication) --------------------------
        self.records_quarantined = counter(
            "records_quarantined",
            "Records that passed validation but could not be encoded (stage=ring) or built into"
            " a message (stage=publish): dead-lettered as encoding_failed, the ring moves on.",
            ("stage",),
        )
        self.dlq_suppressed = counter(
            "dlq_letters_suppressed",
            "Dead letters not published because the same symbol and reason already had one"
            " within validation.dlq_dedupe_s.",
            ("reason",),
        )
        # -- liveness (supervisor: engine.observe.http.liveness) -------------------------------
        self.stage_stalled = gauge(
            "stage_stalled",
            "1 while a stage has work and made no progress for its threshold (/healthz 503).",
            "livemostrecent",
            ("stage",),
        )
        self.stage_progress_age = gauge(
            "stage_progress_age_seconds",
            "Seconds since a stage last made progress while it had work (0 when idle).",
            "livemostrecent",
            ("stage",),
        )
