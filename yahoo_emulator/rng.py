"""Counter-based randomness: the draw for (instrument, stream, step) is a pure hash.

A walk step for instrument *i* at tick *t* uses ``hash(seed, stream, t, id_i)`` instead of a
sequential generator, so an instrument's path does not depend on which other instruments exist
or the order replicas were first requested in, and history bars can be regenerated for any day
without replaying the ones before it. The hash is the splitmix64 finaliser, vectorised on
``uint64`` arrays (numpy wraps on overflow, which is what we want).
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

_MASK: Final = (1 << 64) - 1
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_S11: Final = np.uint64(11)
_TWO53: Final = float(2**-53)

# streams (distinct salts per kind of draw)
TRADE: Final = 1
PRICE: Final = 2
ANGLE: Final = 3
DAILY: Final = 16
INTRADAY: Final = 32
STATIC: Final = 64


def _mix_int(x: int) -> int:
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    return x


def salt(seed: int, stream: int, step: int) -> int:
    """One 64-bit salt for (seed, stream, step); combine with ids in :func:`hash_ids`."""
    return _mix_int(_mix_int(_mix_int(seed) ^ (stream * 0x632BE59BD9B4E019)) ^ (step & _MASK))


def mix64(x: U64) -> U64:
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def hash_ids(ids: U64, salt_value: int) -> U64:
    with np.errstate(over="ignore"):
        return mix64(ids * _GOLDEN + np.uint64(salt_value))


def uniform(h: U64) -> F64:
    """Hashes -> floats in the open interval (0, 1)."""
    out: F64 = ((h >> _S11).astype(np.float64) + 0.5) * _TWO53
    return out


def normals(ids: U64, seed: int, stream: int, step: int) -> tuple[F64, F64]:
    """Two independent N(0,1) arrays for ``ids`` (Box-Muller on two hashed uniforms)."""
    u1 = uniform(hash_ids(ids, salt(seed, stream, step)))
    u2 = uniform(hash_ids(ids, salt(seed, stream + 1000, step)))
    r = np.sqrt(-2.0 * np.log(u1))
    a = 2.0 * np.pi * u2
    return r * np.cos(a), r * np.sin(a)


def uniforms(ids: U64, seed: int, stream: int, step: int) -> F64:
    return uniform(hash_ids(ids, salt(seed, stream, step)))


def stable_hash(text: str) -> int:
    """64-bit hash of a string, stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
