"""engine.observe.metrics.families: every family follows the naming conventions."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.observe import metrics
from engine.observe.metrics.families import Families, metric_name
from tests.unit.observe.metrics.support import summary


def test_names_follow_the_conventions() -> None:
    metrics.set_build_info("1.2.3")
    metrics.record_batch(50, 0.2)
    metrics.record_cycle(summary())
    text = generate_latest(metrics.registry()).decode()
    names = {m.name for m in text_string_to_metric_families(text)} - {
        m.name for m in text_string_to_metric_families(text) if m.name.endswith("_created")
    }
    assert names, text
    for name in names:
        assert name.startswith("ingestion_"), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    types = {m.name: m.type for m in text_string_to_metric_families(text) if m.name in names}
    for name, typ in types.items():
        if typ == "counter":
            assert "_total" in text and f"{name}_total" in text
        if "latency" in name or "duration" in name:
            assert name.endswith("_seconds"), name


def test_every_declared_family_is_prefixed_and_unit_named() -> None:
    reg = CollectorRegistry()
    Families(reg)
    names = [f.name for f in reg.collect()]
    assert len(names) > 40
    for name in names:
        assert name.startswith("ingestion_"), name
        if "latency" in name or "duration" in name:
            assert name.endswith("_seconds"), name
    assert metric_name("x") == "ingestion_x"


def test_no_symbol_label_outside_the_quality_collector() -> None:
    metrics.record_batch(50, 0.2, "RateLimitedError")
    metrics.record_cycle(summary())
    metrics.set_ring_occupancy(0, 10, 1024)
    text = generate_latest(metrics.registry()).decode()
    assert "symbol=" not in text
