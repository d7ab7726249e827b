"""Helpers of the metrics tests: read a sample, build a cycle summary."""

from __future__ import annotations

import msgspec
from prometheus_client import CollectorRegistry

from engine.stats import CycleStats, FetchCounts, PublishCounts


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def summary(**kw: object) -> CycleStats:
    base: dict[str, object] = {
        "cycle": 7,
        "requested": 100,
        "fetched": 95,
        "valid": 90,
        "unchanged": 30,
        "stale": 2,
        "missing": 5,
        "failed": 0,
        "requests": 2,
        "attempts": 3,
        "rejected": {"price_out_of_range": 3, "stale": 2},
        "errors": {},
        "published": 58,
        "deduplicated": 2,
        "publish_failed": 0,
        "dlq": 5,
        "fetch_seconds": 0.5,
        "seconds": 0.8,
    }
    base.update(kw)
    publish = {"published", "deduplicated", "publish_failed", "dlq", "outboxed"}
    cycle = {"cycle", "fetch_seconds", "seconds"}
    fetch = {k: v for k, v in base.items() if k not in publish | cycle}
    pub = {k.removeprefix("publish_"): v for k, v in base.items() if k in publish}
    return CycleStats(
        **{k: v for k, v in base.items() if k in cycle},  # type: ignore[arg-type]
        fetch=msgspec.convert(fetch, FetchCounts),
        publish=msgspec.convert(pub, PublishCounts),
    )
