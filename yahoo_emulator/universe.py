"""The symbol universe: ``data/stocks.csv`` plus the static figures derived from it.

``stocks.csv`` (built by ``tools/make_emulator_data.py`` from the Nasdaq screener dump) holds, per
listed stock, its Yahoo symbol, names, Yahoo exchange code, last sale, percent change, volume,
market cap, country, sector and industry. Everything a quote needs beyond that (first trade
date, 52-week range, moving averages, average volumes, EPS, analyst rating, ...) is derived here
from a stable hash of the symbol, so it is the same in every run and independent of ``--seed``
(the seed drives prices, not reference data). Later endpoints (quoteSummary, the earnings
calendar) derive their fundamentals here too.

A :class:`Universe` is immutable and shared: :func:`load_universe` caches it per path.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from yahoo_emulator import rng

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

TRADING_SECONDS: Final = 23_400  # 09:30-16:00
_RATINGS: Final = ("Strong Buy", "Buy", "Hold", "Underperform", "Sell")


@dataclass(frozen=True, eq=False)
class Universe:
    """Column-oriented reference data; row ``i`` is one listed symbol (source order)."""

    symbols: tuple[str, ...]
    index: dict[str, int]
    name: tuple[str, ...]
    short_name: tuple[str, ...]
    exchange: tuple[str, ...]
    full_exchange_name: tuple[str, ...]
    country: tuple[str, ...]
    sector: tuple[str, ...]
    industry: tuple[str, ...]
    last_sale: F64
    pct_change: F64  # percent, last session
    volume: I64  # shares, last session
    market_cap: I64  # USD, 0 = unknown
    # derived -----------------------------------------------------------------------------
    key: U64  # stable 64-bit hash of the symbol
    price_hint: I64  # 2, or 4 below $1
    shares_out: I64  # 0 when the market cap is unknown
    first_trade_s: I64  # epoch seconds (09:30 New York of the listing day)
    daily_vol: F64  # daily volatility (fraction)
    low_52w: F64
    high_52w: F64
    price_1y_ago: F64
    avg_50d: F64
    avg_200d: F64
    avg_vol_3m: I64
    avg_vol_10d: I64
    eps_ttm: F64  # may be negative
    eps_fwd: F64
    book_value: F64
    analyst_rating: tuple[str, ...]  # "" = none
    message_board_id: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.symbols)


def default_data_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "stocks.csv"


@functools.lru_cache(maxsize=4)
def load_universe(path: str | Path | None = None) -> Universe:
    """Read ``stocks.csv`` (default: the packaged copy) and derive the static columns."""
    p = Path(path) if path is not None else default_data_path()
    with p.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{p}: no rows")

    def col(name: str) -> tuple[str, ...]:
        return tuple(r[name] for r in rows)

    symbols = col("symbol")
    last = np.array([float(r["last_sale"]) for r in rows])
    pct = np.array([float(r["pct_change"] or 0.0) for r in rows])
    vol = np.array([int(r["volume"] or 0) for r in rows], dtype=np.int64)
    cap = np.array([int(r["market_cap"] or 0) for r in rows], dtype=np.int64)
    key = np.array([rng.stable_hash(s) for s in symbols], dtype=np.uint64)
    derived = _derive(key, last, pct, vol, cap)
    return Universe(
        symbols=symbols,
        index={s: i for i, s in enumerate(symbols)},
        name=col("name"),
        short_name=col("short_name"),
        exchange=col("exchange"),
        full_exchange_name=col("full_exchange_name"),
        country=col("country"),
        sector=col("sector"),
        industry=col("industry"),
        last_sale=last,
        pct_change=pct,
        volume=vol,
        market_cap=cap,
        key=key,
        **derived,  # type: ignore[arg-type]
    )


def _u(key: U64, n: int) -> F64:
    return rng.uniforms(key, 0, rng.STATIC, n)


def _derive(key: U64, last: F64, pct: F64, vol: I64, cap: I64) -> dict[str, object]:
    """Static per-symbol figures, from the symbol hash only (reproducible, seed-independent)."""
    price_hint = np.where(last < 1.0, 4, 2).astype(np.int64)
    shares = np.where(cap > 0, np.rint(cap / np.maximum(last, 1e-9)), 0).astype(np.int64)
    # listing day: 1980..2024, moved to 09:30 New York (14:30 UTC, close enough for EST)
    day0 = 3652  # 1980-01-01 in days since epoch
    days = day0 + np.floor(_u(key, 1) * (365.25 * 45)).astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    days -= np.where(weekday >= 5, weekday - 4, 0)  # Sat/Sun -> Fri
    first_trade = days * 86_400 + 14 * 3600 + 1800
    daily_vol = np.clip(np.abs(pct) / 100.0 * 0.8 + 0.008, 0.008, 0.06)
    annual = daily_vol * np.sqrt(252.0)
    low = last * np.exp(-annual * (0.25 + 0.6 * _u(key, 2)))
    high = last * np.exp(annual * (0.05 + 0.5 * _u(key, 3)))
    low = np.minimum(low, last * 0.97)
    high = np.maximum(high, last * 1.03)
    ago = np.clip(last * np.exp(annual * (_u(key, 4) * 1.6 - 0.9)), low, high)
    avg50 = np.clip(last * np.exp(daily_vol * 5.0 * (_u(key, 5) - 0.5)), low, high)
    avg200 = np.clip(last * np.exp(daily_vol * 12.0 * (_u(key, 6) - 0.55)), low, high)
    vol3m = np.rint(vol * np.exp(0.4 * (_u(key, 7) - 0.5))).astype(np.int64)
    vol10d = np.rint(vol * np.exp(0.5 * (_u(key, 8) - 0.5))).astype(np.int64)
    pe = 8.0 + 40.0 * _u(key, 9)
    profitable = _u(key, 10) < 0.78
    eps = np.where(profitable, last / pe, -last * (0.02 + 0.2 * _u(key, 11)))
    eps_fwd = eps * (0.9 + 0.35 * _u(key, 12))
    book = last / (0.8 + 9.0 * _u(key, 13))
    rating_score = 1.0 + 3.2 * _u(key, 14)
    rated = cap >= 2_000_000_000
    ratings = tuple(
        f"{s:.1f} - {_RATINGS[min(int(s + 0.5) - 1, 4)]}" if r else ""
        for s, r in zip(rating_score.tolist(), rated.tolist(), strict=True)
    )
    boards = tuple(f"finmb_{int(k) % 900_000_000 + 10_000}" for k in key.tolist())
    r2 = np.round
    return {
        "price_hint": price_hint,
        "shares_out": shares,
        "first_trade_s": first_trade.astype(np.int64),
        "daily_vol": daily_vol,
        "low_52w": r2(low, 4),
        "high_52w": r2(high, 4),
        "price_1y_ago": r2(ago, 4),
        "avg_50d": r2(avg50, 4),
        "avg_200d": r2(avg200, 4),
        "avg_vol_3m": vol3m,
        "avg_vol_10d": vol10d,
        "eps_ttm": r2(eps, 2),
        "eps_fwd": r2(eps_fwd, 2),
        "book_value": np.maximum(r2(book, 4), 1e-4),
        "analyst_rating": ratings,
        "message_board_id": boards,
    }
