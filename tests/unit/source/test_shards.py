"""engine.source.shards: the jump-hash shard of a symbol, a universe's shards, shards per worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.source.shards import Shard, assign_shards, build_shards, shard_of
from engine.source.universe import load_symbols
from tests.unit.source.files import REPO, SYMBOLS_JSON, write


class TestShardOf:
    @pytest.mark.parametrize(
        ("symbol", "n_shards", "shard"),
        [
            ("AAPL", 64, 38),
            ("MSFT", 64, 14),
            ("BRK-B", 64, 53),
            ("NVDA", 64, 1),
            ("ABR-PD", 64, 29),
            ("AAPL.X12", 64, 3),
            ("AAPL", 1024, 461),
            ("MSFT", 1024, 727),
            ("AAPL", 8, 6),
            ("AAPL", 1, 0),
        ],
    )
    def test_pinned_values(self, symbol: str, n_shards: int, shard: int) -> None:
        """Known shard ids: a change of hash function breaks this test (and every lease)."""
        assert shard_of(symbol, n_shards) == shard

    def test_stable_across_processes(self) -> None:
        """Other interpreters with other hash seeds compute the same shards."""
        syms = ["AAPL", "MSFT", "BRK-B", "ABR-PD", "GOOG", "XOM"]
        here = [shard_of(s, 64) for s in syms]
        code = (
            "import json,sys; from engine.source.shards import shard_of; "
            f"print(json.dumps([shard_of(s, 64) for s in {syms!r}]))"
        )
        for seed in ("1", "987654"):
            env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, check=True, text=True
            )
            assert json.loads(out.stdout) == here

    def test_in_range(self) -> None:
        """Shard ids are in [0, n_shards)."""
        for n in (1, 2, 3, 7, 64, 4096):
            assert all(0 <= shard_of(f"S{i}", n) < n for i in range(300))

    @pytest.mark.parametrize("n", [0, -1])
    def test_invalid_count(self, n: int) -> None:
        """A shard count below one is a ValueError."""
        with pytest.raises(ValueError, match="n_shards"):
            shard_of("AAPL", n)

    def test_growing_count_moves_few_symbols(self) -> None:
        """From n to n+1 shards, only symbols moving to the new shard change (about 1/(n+1))."""
        syms = [f"S{i}" for i in range(4000)]
        before = {s: shard_of(s, 16) for s in syms}
        after = {s: shard_of(s, 17) for s in syms}
        moved = [s for s in syms if before[s] != after[s]]
        assert all(after[s] == 16 for s in moved)
        assert 0.03 < len(moved) / len(syms) < 0.09


class TestBuildShards:
    def test_partition(self) -> None:
        """Shards 0..n-1 partition the universe, each sorted, each symbol where shard_of says."""
        syms = [f"S{i}" for i in range(500)]
        shards = build_shards(syms, 16)
        assert [s.id for s in shards] == list(range(16))
        assert sorted(x for s in shards for x in s.symbols) == sorted(syms)
        for s in shards:
            assert list(s.symbols) == sorted(s.symbols)
            assert all(shard_of(x, 16) == s.id for x in s.symbols)

    def test_universe_or_iterable(self, tmp_path: Path) -> None:
        """A Universe and its symbol list give the same shards, empty shards included."""
        u = load_symbols(write(tmp_path, "s.json", '["AAPL", "MSFT", "XOM"]'))
        shards = build_shards(u, 8)
        assert shards == build_shards(iter(u.symbols), 8)
        assert len(shards) == 8 and sum(len(s.symbols) == 0 for s in shards) >= 5
        assert isinstance(shards[0], Shard)

    def test_order_independent(self) -> None:
        """The input order does not change the shards."""
        syms = [f"S{i}" for i in range(200)]
        assert build_shards(syms, 8) == build_shards(list(reversed(syms)), 8)

    @pytest.mark.parametrize("change", ["add", "remove"])
    def test_one_symbol_changes_only_its_shard(self, change: str) -> None:
        """Adding or removing one symbol changes no shard but its own."""
        base = [f"S{i}" for i in range(1000)]
        other = [*base, "NEW"] if change == "add" else base[:500] + base[501:]
        moved = "NEW" if change == "add" else base[500]
        a, b = build_shards(base, 32), build_shards(other, 32)
        changed = [i for i in range(32) if a[i] != b[i]]
        assert changed == [shard_of(moved, 32)]

    def test_balance_on_repository_universe(self) -> None:
        """The 5,000 symbols spread over 64 shards within 30% of the mean."""
        shards = build_shards(load_symbols(SYMBOLS_JSON), 64)
        sizes = [len(s.symbols) for s in shards]
        mean = 5000 / 64
        assert min(sizes) > 0.7 * mean and max(sizes) < 1.3 * mean

    def test_rejects_duplicates_and_bad_count(self) -> None:
        """Duplicated symbols or a shard count below one are ValueErrors."""
        with pytest.raises(ValueError, match="duplicates"):
            build_shards(["AAPL", "AAPL"], 4)
        with pytest.raises(ValueError, match="n_shards"):
            build_shards(["AAPL"], 0)


class TestAssignShards:
    @pytest.mark.parametrize(("n_shards", "n_workers"), [(64, 1), (64, 2), (64, 6), (7, 3), (5, 5)])
    def test_every_shard_once_and_balanced(self, n_shards: int, n_workers: int) -> None:
        """Each shard has exactly one owner; worker loads differ by at most one shard."""
        owned = assign_shards(n_shards, n_workers)
        assert len(owned) == n_workers
        assert sorted(i for w in owned for i in w) == list(range(n_shards))
        counts = [len(w) for w in owned]
        assert max(counts) - min(counts) <= 1

    def test_round_robin(self) -> None:
        """Worker w owns shards w, w+n_workers, ..."""
        assert assign_shards(7, 3) == ((0, 3, 6), (1, 4), (2, 5))

    def test_more_workers_than_shards(self) -> None:
        """Surplus workers own no shard."""
        assert assign_shards(2, 4) == ((0,), (1,), (), ())

    @pytest.mark.parametrize(("n_shards", "n_workers"), [(0, 1), (1, 0), (-1, 2)])
    def test_invalid_counts(self, n_shards: int, n_workers: int) -> None:
        """Counts below one are ValueErrors."""
        with pytest.raises(ValueError):
            assign_shards(n_shards, n_workers)
