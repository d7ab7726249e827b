"""Shards: the unit of ownership of symbols, later leased across hosts.

The mapping must be identical in every process, host and Python run (never :func:`hash`, which is
salted per process): :func:`shard_of` is a jump consistent hash (Lamping & Veach, 2014, exact
integer arithmetic) of the first 8 bytes of BLAKE2b of the symbol. A symbol's shard depends on
nothing but the symbol and the shard count, so adding or removing one symbol changes only its own
shard; and growing the shard count from ``n`` to ``n+1`` moves only about ``1/(n+1)`` of the
symbols. :func:`assign_shards` deals shard ids round-robin to workers (counts differ by at most
one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

import msgspec

from engine.source.universe import Universe

_U64: Final = (1 << 64) - 1
_JUMP_MULT: Final = 2862933555777941757  # the LCG multiplier of the jump-hash paper


class Shard(msgspec.Struct, frozen=True):
    """One shard: its id and its symbols in sorted order."""

    id: int
    symbols: tuple[str, ...]


def _jump_hash(key: int, n_buckets: int) -> int:
    """Jump consistent hash, exact integer form: 64-bit key -> bucket in [0, n_buckets)."""
    b, j = -1, 0
    while j < n_buckets:
        b = j
        key = (key * _JUMP_MULT + 1) & _U64
        j = ((b + 1) << 31) // ((key >> 33) + 1)
    return b


def shard_of(symbol: str, n_shards: int) -> int:
    """The shard (0..n_shards-1) owning ``symbol``; identical on every host and Python run."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    digest = hashlib.blake2b(symbol.encode("utf-8"), digest_size=8).digest()
    return _jump_hash(int.from_bytes(digest, "big"), n_shards)


def build_shards(universe: Universe | Iterable[str], n_shards: int) -> tuple[Shard, ...]:
    """All ``n_shards`` shards (empty ones included), each with its symbols sorted."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    symbols = universe.symbols if isinstance(universe, Universe) else tuple(universe)
    if len(set(symbols)) != len(symbols):
        raise ValueError("build_shards: symbols contain duplicates")
    buckets: list[list[str]] = [[] for _ in range(n_shards)]
    for sym in symbols:
        buckets[shard_of(sym, n_shards)].append(sym)
    return tuple(Shard(i, tuple(sorted(b))) for i, b in enumerate(buckets))


def assign_shards(n_shards: int, n_workers: int) -> tuple[tuple[int, ...], ...]:
    """Shard ids per worker, round-robin: worker ``w`` owns ``w, w+n_workers, ...``.

    Counts differ by at most one; with more workers than shards the extra workers own none.
    """
    if n_shards < 1 or n_workers < 1:
        raise ValueError(f"need n_shards >= 1 and n_workers >= 1, got {n_shards}, {n_workers}")
    return tuple(tuple(range(w, n_shards, n_workers)) for w in range(n_workers))
