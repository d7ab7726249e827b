"""Fetching from Yahoo (workers): batch requests, retries, the rate limiter and the breaker."""

from __future__ import annotations

from typing import Final

from engine.observe.metrics.multiprocess import families as _m
from engine.source import ratelimit
from engine.source.breaker import BreakerState

BREAKER_STATES: Final = tuple(s.name.lower() for s in BreakerState)
"""Names of the :class:`BreakerState` values, the index being the value of
``ingestion_breaker_state``."""


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


def set_universe(symbols: int, skipped: int, translated: int) -> None:
    """Supervisor, whenever it adopts a universe (start, SIGHUP reload): its size, the lines of
    the file skipped as unusable and the entries translated from exchange notation."""
    m = _m()
    m.universe_symbols.set(symbols)
    m.symbols_skipped.set(skipped)
    m.symbols_translated.set(translated)


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


def breaker_value(state: BreakerState) -> int:
    """The gauge value of a breaker state: 0 closed, 1 half-open, 2 open."""
    return int(state)


def breaker_name(state: BreakerState) -> str:
    """The state as ``/status`` and ``/readyz`` name it (``closed``, ``half_open``, ``open``)."""
    return BREAKER_STATES[breaker_value(state)]


def set_breaker_state(state: BreakerState) -> None:
    """Supervisor, before each scrape, from the guard's shared breaker."""
    _m().breaker_state.set(breaker_value(state))
