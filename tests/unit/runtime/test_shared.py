"""Shard assignments and the last-seen table carried over a new universe."""

from __future__ import annotations

from pathlib import Path

import msgspec

from engine.config import Config, WorkersSettings
from engine.runtime.cycles import CycleBook
from engine.runtime.shared import SharedState
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
