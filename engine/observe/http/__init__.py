"""The engine's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``.

Run by the supervisor (``async with HttpServer.serve(config, source) as http``) on
``http.host``:``http.port`` - loopback by default: the status page is operational detail, not a
public page (no secret is ever shown). Everything it shows comes from a :class:`StatusSource`
the supervisor implements; the server keeps no state of its own besides the readiness results.

``/metrics``
    Prometheus exposition (text 0.0.4, or OpenMetrics when the scraper asks) of every process's
    metrics (:mod:`engine.observe.metrics`, multiprocess mode) plus the data-quality gauges of the
    supervisor's latest :class:`~engine.observe.quality.QualitySnapshot`. Before collecting, the
    source's ``refresh_metrics()`` sets the gauges read from shared state (breaker, rate limit,
    rings). Reading the metric files runs in a thread so a scrape never stalls the supervisor's
    loop.
``/healthz``
    Liveness: 200 while no stage is stalled, 503 naming the stage (``scheduler``, ``fetch``,
    ``publisher``) that has had work and made no progress for ``http.stall_after_s``
    (:mod:`.liveness`; without a progress source: 200 while the process serves requests).
``/readyz``
    200 only if NATS (a round trip and JetStream's account info), PostgreSQL (``SELECT 1``) and
    Redis (``PING``) answer within ``check_timeout_s`` each, and the Yahoo circuit breaker is not
    open; else 503. The JSON body has one entry per check: ``ok`` (with the latency),
    ``fail`` (with the exception's class name or ``timeout``: never a message, which could quote
    a DSN), or ``skipped`` for a dependency disabled in the configuration. Each check keeps one
    connection of its own open, reconnecting after a failure, closed on shutdown (the engine's
    pooled connections live in the publisher process); concurrent probes share one run. The
    server also runs the checks every
    ``probe_interval_s`` by itself, so ``ingestion_dependency_up`` stays current without an
    orchestrator probing. A dependency changing state is logged once.
``/status``
    A small self-contained HTML page (no script; refreshes itself every 10 s): breaker state,
    rate limit and headroom, error rates, the last cycles, the freshness heatmap of every symbol
    grouped by sector, the top 10 failing symbols. ``/status.json`` has the same figures (no
    heatmap).

Modules: :mod:`.server` (the aiohttp application and its lifecycle), :mod:`.readiness` (the
checks and the background probe), :mod:`.liveness` (the stall judge), :mod:`.status` (what the
supervisor exposes, the status document) and :mod:`.page` (the HTML page).
"""

from __future__ import annotations

from engine.observe.http.page import render_status
from engine.observe.http.readiness import (
    CHECK_TIMEOUT_S,
    PROBE_INTERVAL_S,
    Check,
    CheckResult,
    Readiness,
    ReadinessReport,
    default_checks,
    run_check,
)
from engine.observe.http.server import HttpServer
from engine.observe.http.status import (
    CycleStatus,
    ErrorRates,
    RateView,
    StatusSource,
    StatusView,
    error_rates,
    status_doc,
)

__all__ = [
    "CHECK_TIMEOUT_S",
    "PROBE_INTERVAL_S",
    "Check",
    "CheckResult",
    "CycleStatus",
    "ErrorRates",
    "HttpServer",
    "RateView",
    "Readiness",
    "ReadinessReport",
    "StatusSource",
    "StatusView",
    "default_checks",
    "error_rates",
    "render_status",
    "run_check",
    "status_doc",
]
