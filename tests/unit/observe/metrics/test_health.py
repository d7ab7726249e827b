"""engine.observe.metrics.health: build info, child restarts, task failures, dependencies."""

from __future__ import annotations

import sys

from engine.observe import metrics
from tests.unit.observe.metrics.support import value


def test_build_info_and_start_time() -> None:
    metrics.set_build_info("1.2.3", now=1234.0)
    reg = metrics.registry()
    py = "{}.{}.{}".format(*sys.version_info[:3])
    assert value(reg, "ingestion_build_info", version="1.2.3", python=py) == 1
    assert value(reg, "ingestion_start_time_seconds") == 1234.0


def test_restarts_task_failures_and_dependencies() -> None:
    metrics.record_child_restart("worker")
    metrics.record_child_restart("worker")
    metrics.record_task_failure("publisher:drain-0")
    metrics.set_dependency_up("nats", True)
    metrics.set_dependency_up("redis", False)
    reg = metrics.registry()
    assert value(reg, "ingestion_child_restarts_total", kind="worker") == 2
    assert value(reg, "ingestion_task_failures_total", task="publisher:drain-0") == 1
    assert value(reg, "ingestion_dependency_up", dependency="nats") == 1
    assert value(reg, "ingestion_dependency_up", dependency="redis") == 0
