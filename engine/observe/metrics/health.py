"""The engine's own health: build info, child restarts, failed tasks, dependency readiness."""

from __future__ import annotations

import sys
import time
from typing import Literal

from engine.observe.metrics.multiprocess import families as _m

ChildKind = Literal["worker", "publisher", "earnings"]


def set_build_info(version: str, now: float | None = None) -> None:
    """Supervisor, at start (after :func:`~engine.observe.metrics.setup_multiprocess`)."""
    m = _m()
    py = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    m.build_info.labels(version=version, python=py).set(1)
    m.start_time.set(time.time() if now is None else now)


def record_child_restart(kind: ChildKind) -> None:
    """Supervisor, when it respawns a child that died (``_on_exit``)."""
    _m().child_restarts.labels(kind=kind).inc()


def record_task_failure(task: str) -> None:
    """A supervised task (``owner:name``, a bounded set) failed (engine.runtime.tasks)."""
    _m().task_failures.labels(task=task).inc()


def set_dependency_up(dependency: str, up: bool) -> None:
    """HTTP server (supervisor), after each readiness check of a dependency."""
    _m().dependency_up.labels(dependency=dependency).set(1 if up else 0)


def set_stage_liveness(stage: str, stalled: bool, since_progress_s: float) -> None:
    """HTTP server (supervisor), after each liveness reading of a stage."""
    m = _m()
    m.stage_stalled.labels(stage=stage).set(1 if stalled else 0)
    m.stage_progress_age.labels(stage=stage).set(since_progress_s)
