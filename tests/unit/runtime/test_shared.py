"""Shard assignments and the last-seen table carried over a new universe."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from engine.config import Config, WorkersSettings
from engine.errors import ConfigError
from engine.ringbuf import segment_size
from engine.runtime.cycles import CycleBook
from engine.runtime.shared import SharedState, check_shm, shm_needed
from engine.runtime.status import EngineStatus
from engine.source.breaker import BreakerState
from engine.source.guard import YahooGuard, policies_from
from engine.source.universe import load_symbols
from engine.stats import CycleStats


def _universe(tmp_path: Path, symbols: list[str]):  # type: ignore[no-untyped-def]
    path = tmp_path / f"s{len(symbols)}.json"
    path.write_text(msgspec.json.encode(symbols).decode(), encoding="utf-8")
    return load_symbols(path)


def test_assignments_cover_the_universe_and_carry_rows_over(tmp_path: Path) -> None:
    config = msgspec.structs.replace(Config(), workers=WorkersSettings(count=2, shards=8))
    shared = SharedState(config, 2)
    try:
        shared.assign(_universe(tmp_path, ["AAPL", "MSFT", "NVDA"]))
        assert shared.generation == 1
        owned = sorted(s for a in shared.assignments for sh in a.shards for s in sh.symbols)
        assert owned == ["AAPL", "MSFT", "NVDA"]
        assert shared.symbols_of(0) + shared.symbols_of(1) == 3
        assert shared.requests_per_cycle() >= 1
        assert shared.table is not None
        row = next(
            sh.indices[sh.symbols.index("MSFT")]
            for a in shared.assignments
            for sh in a.shards
            if "MSFT" in sh.symbols
        )
        shared.table.times[row] = 1234
        shared.assign(_universe(tmp_path, ["MSFT", "TSLA"]))
        assert shared.generation == 2
        assert shared.table.times[0] == 1234  # MSFT is row 0 now and kept its last time
        assert all(a.generation == 2 for a in shared.assignments)
    finally:
        shared.release()


def test_status_without_a_guard(tmp_path: Path) -> None:
    """Before the shared memory exists the page shows a closed breaker and no rate figures."""
    shared = SharedState(Config(), 1)
    book = CycleBook()
    status = EngineStatus(Config(), shared, book)
    assert status.rate_figures() is None
    assert status.rate_limit() is None
    assert status.breaker_state() is BreakerState.CLOSED
    assert status.quality() is None
    s = CycleStats(cycle=1)
    status.stamp(s)
    assert (s.rate_rps, s.breaker) == (0.0, "CLOSED")
    book.recent.append(s)
    assert status.recent_cycles() == (s,)


def test_status_reads_the_shared_guard(tmp_path: Path) -> None:
    config = msgspec.structs.replace(Config(), workers=WorkersSettings(count=1, shards=4))
    shared = SharedState(config, 1)
    shared.assign(_universe(tmp_path, ["AAPL", "MSFT", "NVDA"]))
    shared.guard = YahooGuard.create(str(tmp_path), *policies_from(config.yahoo))
    try:
        status = EngineStatus(config, shared, CycleBook())
        f = status.rate_figures()
        assert f is not None
        assert f.need == 1 and f.breaker is BreakerState.CLOSED
        s = CycleStats(cycle=1)
        status.stamp(s)
        assert s.rate_rps == round(f.current_rps, 3) > 0
        assert 0.0 < s.rate_headroom <= 1.0
        view = status.rate_limit()
        assert view is not None and view.max_rps == f.max_rps
        status.refresh_metrics()
    finally:
        shared.guard.close()
        shared.guard = None
        shared.release()


class _Statvfs:
    """A statvfs result with ``free`` bytes available."""

    def __init__(self, free: int) -> None:
        self.f_frsize = 4096
        self.f_bavail = free // 4096


def test_shm_too_small_is_a_config_error_naming_the_fix() -> None:
    need = shm_needed(4, 65536, 5000)
    assert need > 4 * segment_size(65536)
    check_shm(need, "/x", lambda _: _Statvfs(need + 4096))  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError) as exc:
        check_shm(need, "/x", lambda _: _Statvfs(need // 2))  # type: ignore[arg-type,return-value]
    assert exc.value.key == "workers.ring_capacity"
    for needle in ("/x", "shm_size", "--shm-size", "workers.ring_capacity", "workers.count"):
        assert needle in str(exc.value)


def test_create_refuses_before_mapping_anything(tmp_path: Path) -> None:
    """The check runs on the real filesystem's numbers (here a directory as the shm dir)."""
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    capacity = 1 << 24
    workers = free // segment_size(capacity) + 1
    if workers > 256:
        pytest.skip("the filesystem is larger than 256 of the largest rings")
    config = msgspec.structs.replace(
        Config(), workers=WorkersSettings(count=workers, ring_capacity=capacity)
    )
    shared = SharedState(config, workers, shm_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="shm_size"):
        shared.create(_universe(tmp_path, ["AAPL"]))
    assert shared.rings == [] and shared.table is None


def test_a_reload_unlinks_the_replaced_table(tmp_path: Path) -> None:
    """Every SIGHUP used to leave its old table in /dev/shm until shutdown."""
    shared = SharedState(Config(), 1)
    try:
        shared.assign(_universe(tmp_path, ["AAPL", "MSFT"]))
        assert shared.table is not None
        names = [shared.table.name]
        for symbols in (["AAPL"], ["AAPL", "MSFT", "NVDA"], ["NVDA"]):
            shared.assign(_universe(tmp_path, symbols))
            names.append(shared.table.name)
        alive = [n for n in names if Path("/dev/shm", n.lstrip("/")).exists()]
        assert alive == [names[-1]]
    finally:
        shared.release()
    assert not Path("/dev/shm", names[-1].lstrip("/")).exists()
