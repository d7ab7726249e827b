"""Fresh single-process metrics around every test; ``mp_dir`` for multiprocess mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.observe import metrics


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


@pytest.fixture
def mp_dir(tmp_path: Path) -> Iterator[Path]:
    d = metrics.setup_multiprocess(tmp_path / "prom")
    try:
        yield d
    finally:
        metrics.teardown_multiprocess()
