"""Where the metrics live: this process's registry, or prometheus-client's multiprocess files.

Processes (``multiprocess mode``)
    The supervisor forks workers and a publisher; each records into its own memory-mapped files
    under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and the supervisor's
    HTTP endpoint aggregates every file at scrape time (``MultiProcessCollector``): counters and
    histograms are summed over processes, gauges are combined per their ``multiprocess_mode``.
    Call :func:`setup_multiprocess` first thing in the supervisor, before any child is forked
    (it also works if the metrics were imported earlier: metric objects are built lazily, on
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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, values
from prometheus_client import multiprocess as prom_mp
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from engine.observe.metrics.families import Families

ENV_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"


class _Registry:
    """Module state: the registry, the metric objects and the multiprocess directory."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: Families | None = None
        self.dir: Path | None = None
        self.owns_dir = False
        self.snapshots: dict[str, dict[str, int]] = {}


_state = _Registry()


def _new_state(path: Path | None, owns: bool) -> None:
    global _state
    _state = _Registry()
    _state.dir, _state.owns_dir = path, owns


def families() -> Families:
    """The metric objects of this process (built on first use)."""
    m = _state.metrics
    if m is None:
        m = _state.metrics = Families(_state.registry)
    return m


def deltas(key: str, totals: Mapping[str, int]) -> Iterator[tuple[str, int]]:
    """Increase of each running total since the previous call with ``key`` in this process."""
    prev = _state.snapshots.setdefault(key, {})
    for name, total in totals.items():
        before = prev.get(name, 0)
        prev[name] = total
        if total > before:
            yield name, total - before
        elif 0 < total < before:  # the source restarted from zero
            yield name, total


def _pick_value_class() -> None:
    close = getattr(values, "close_all_multiprocess_files", None)
    if close is not None:
        close()
    # prometheus-client picks its value class when it is imported; pick again now that the
    # directory is known or gone (its own test-suite does the same).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


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
    _pick_value_class()
    _new_state(path, owns)
    families()
    return path


def teardown_multiprocess() -> None:
    """Leave multiprocess mode (supervisor exit); removes the directory if setup made it."""
    path, owns = _state.dir, _state.owns_dir
    os.environ.pop(ENV_DIR, None)
    _pick_value_class()
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
    ``extra`` collectors (e.g. :class:`~engine.observe.metrics.quality_collector.
    QualityCollector`)."""
    families()
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
