"""Data-quality gauges, computed at scrape time from the supervisor's latest snapshot.

The only per-symbol series of the engine (the top failing symbols) lives here; sectors are
capped by :mod:`engine.observe.quality`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.observe.metrics.families import metric_name

if TYPE_CHECKING:
    from engine.observe.quality import QualitySnapshot


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
    return GaugeMetricFamily(metric_name(name), doc, value=value)


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
        metric_name("quality_symbol_age_seconds"),
        "Symbols by age of their last quote (now - market time); never-seen symbols excluded.",
        buckets=[(_le(b), float(n)) for b, n in s.age_buckets],
        gsum_value=s.age_sum_s,
    )
    yield hist
    fams = {
        k: GaugeMetricFamily(metric_name(f"quality_sector_{k}"), doc, labels=["sector"])
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
        metric_name("quality_failing_symbol_missed_cycles"),
        "Top failing symbols: cycles without a valid quote within the quality window.",
        labels=["symbol", "sector", "rank"],
    )
    for rank, f in enumerate(s.top_failing, start=1):
        top.add_metric([f.symbol, f.sector, str(rank)], f.missed)
    yield top


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
