"""Every Prometheus metric of the engine, and the small typed functions that record them.

Naming follows the Prometheus conventions: prefix ``ingestion_``, base units in the name
(``_seconds``, ``_records``, ``_ratio``), counters end in ``_total``, and labels are bounded -
error kinds (the classes of :mod:`engine.errors`), reject reasons (:class:`~engine.quote.
RejectReason`), outcomes, worker indices, dependency names, sectors (capped by
:mod:`engine.observe.quality`). No high-volume series carries a symbol label; the only per-symbol
series is the top-10 failing symbols, computed at scrape time (see :class:`QualityCollector`).

Callers use the package: ``from engine.observe import metrics; metrics.record_batch(...)``.
Inside, one module per job:

- :mod:`.families`: the declaration of every metric family (name, help, labels, buckets);
- :mod:`.multiprocess`: where they live (this process, or multiprocess files) and the scrape
  registry; :func:`setup_multiprocess` and its companions;
- :mod:`.health`, :mod:`.fetch`, :mod:`.cycles`, :mod:`.sinks`, :mod:`.earnings`: the recording
  functions, per stage;
- :mod:`.quality_collector`: the data-quality gauges computed at scrape time.

Where each function is called (the supervisor, a worker or the publisher) is listed in each
docstring; recording is cheap (a dict lookup and an 8-byte write into a memory map), but is
meant per batch or per cycle, never per quote.
"""

from __future__ import annotations

from engine.observe.metrics.cycles import (
    record_cycle,
    record_overrun,
    set_failure_rate,
)
from engine.observe.metrics.earnings import record_earnings_sync
from engine.observe.metrics.families import PREFIX
from engine.observe.metrics.fetch import (
    BREAKER_STATES,
    breaker_name,
    breaker_value,
    budget_headroom,
    record_batch,
    record_rate_limit_wait,
    record_retry,
    record_throttle,
    set_breaker_state,
    set_rate_limit,
    set_universe,
)
from engine.observe.metrics.health import (
    ChildKind,
    record_child_restart,
    record_task_failure,
    set_build_info,
    set_dependency_up,
    set_stage_liveness,
)
from engine.observe.metrics.multiprocess import (
    ENV_DIR,
    mark_process_dead,
    multiprocess_dir,
    registry,
    reset,
    setup_multiprocess,
    teardown_multiprocess,
)
from engine.observe.metrics.poison import record_dlq_suppressed, record_quarantined
from engine.observe.metrics.quality_collector import QualityCollector
from engine.observe.metrics.sinks import (
    CacheStatsView,
    StoreStatsView,
    record_cache_stats,
    record_publish_retries,
    record_ring_full,
    record_store_flush,
    record_store_reconciled,
    record_store_stats,
    set_dlq_depth,
    set_outbox_depth,
    set_ring_occupancy,
)

__all__ = [
    "BREAKER_STATES",
    "ENV_DIR",
    "PREFIX",
    "CacheStatsView",
    "ChildKind",
    "QualityCollector",
    "StoreStatsView",
    "breaker_name",
    "breaker_value",
    "budget_headroom",
    "mark_process_dead",
    "multiprocess_dir",
    "record_batch",
    "record_cache_stats",
    "record_child_restart",
    "record_cycle",
    "record_dlq_suppressed",
    "record_earnings_sync",
    "record_overrun",
    "record_publish_retries",
    "record_quarantined",
    "record_rate_limit_wait",
    "record_retry",
    "record_ring_full",
    "record_store_flush",
    "record_store_reconciled",
    "record_store_stats",
    "record_task_failure",
    "record_throttle",
    "registry",
    "reset",
    "set_breaker_state",
    "set_build_info",
    "set_dependency_up",
    "set_dlq_depth",
    "set_failure_rate",
    "set_outbox_depth",
    "set_rate_limit",
    "set_ring_occupancy",
    "set_stage_liveness",
    "set_universe",
    "setup_multiprocess",
    "teardown_multiprocess",
]
