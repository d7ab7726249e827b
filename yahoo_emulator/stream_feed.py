"""The streamer's feed: which subscribed symbols get a frame when, and what each frame says.

The feed keeps one entry per instrument that at least one connection subscribes to (reference
counted), with what was last sent for it: the frame's time, day volume, day high and low, and
the earliest (emulated) time of its next frame. Frames are built from the same market walk the
v7 endpoint reads (:mod:`.market`), so a frame and a v7 quote of the same symbol at the same
second carry the same price (within float32, which is all the stream carries) and the same
market time: ``time`` is the walk's last trade time, as v7's ``regularMarketTime`` /
``preMarketTime`` / ``postMarketTime``.

Cadence (:meth:`StreamFeed.updates`, one call per pump pass): a symbol gets a frame when it
traded since its last frame (its market time or, in REGULAR, its volume moved) *and* its gap has
passed: ``stream_min_gap_s``..``stream_max_gap_s`` (uniform) for a liquid symbol (daily volume
>= ``stream_liquid_volume``), ``stream_illiquid_gap_s`` x 0.5..1.5 for the others. Only PRE,
REGULAR and POST produce frames: nothing while the market is closed (a ``freeze``-d walk does
not trade either). A frame carries what Yahoo's carry for a US equity:

* REGULAR: id, price, time (ms), exchange, quote_type 8, market_hours 1, change, change_percent,
  day_volume, price_hint, and day_high/day_low **only when they changed** since the symbol's
  last frame; with ``stream_same_time`` an update comes as two frames with the same time, the
  first with a lower day_volume (Yahoo does that);
* PRE/POST (only once the symbol traded in that session): the extended-hours price and time,
  change from the regular close, no day_volume, and no market_hours for PRE (the proto3 default);
* never currency, open price or previous close.

A snapshot (:meth:`StreamFeed.snapshot`, sent on subscribe) is the symbol's current state: its
extended-hours frame when it traded in the PRE/POST session under way, else a REGULAR frame with
day high and low, whose time is the last close outside REGULAR (hours or days old). A *stale*
snapshot (fault) is ``stale_age_s`` older still and carries the previous close as its price.
"""

from __future__ import annotations

import random
from typing import Final

import numpy as np
import numpy.typing as npt
from msgspec.structs import replace

from engine.source.stream.frames import encode_frame
from engine.source.stream.pricing import MarketHours, Pricing, QuoteType
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.market import Market

OPEN_STATES: Final = frozenset({"PRE", "REGULAR", "POST"})
_HOURS: Final = {"PRE": MarketHours.PRE, "POST": MarketHours.POST}


class StreamFeed:
    """Emission state of the subscribed instruments. Event-loop thread only."""

    def __init__(self, market: Market, seed: int) -> None:
        self.m = market
        self._rng = random.Random(seed)
        self._np = np.random.default_rng(seed)
        self._slot: dict[str, int] = {}
        self._symbols: list[str] = []
        self._refs: list[int] = []
        self._pos: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self._sent_t: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # epoch s
        self._sent_vol: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._sent_hi: npt.NDArray[np.float64] = np.zeros(0)
        self._sent_lo: npt.NDArray[np.float64] = np.zeros(0)
        self._next_t: npt.NDArray[np.float64] = np.zeros(0)  # emulated epoch s

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._slot

    # -- membership ---------------------------------------------------------------------------

    def add(self, symbol: str, pos: int, now: float, cfg: EmulatorConfig) -> None:
        """One more subscriber of ``symbol`` (instrument ``pos``; the market synced to now)."""
        slot = self._slot.get(symbol)
        if slot is not None:
            self._refs[slot] += 1
            return
        slot = len(self._symbols)
        if slot >= len(self._pos):
            self._grow(max(64, 2 * slot))
        self._slot[symbol] = slot
        self._symbols.append(symbol)
        self._refs.append(1)
        m = self.m
        self._pos[slot] = pos
        ext = int(m.ext_t[pos]) if m.state in _HOURS else 0
        self._sent_t[slot] = max(self._last_time(pos, now), ext)
        self._sent_vol[slot] = m.day_vol[pos]
        self._sent_hi[slot] = m.day_high[pos]
        self._sent_lo[slot] = m.day_low[pos]
        self._next_t[slot] = now + self._gap(pos, cfg)

    def remove(self, symbol: str) -> None:
        """One subscriber fewer; the last one out drops the entry (swap with the last slot)."""
        slot = self._slot[symbol]
        self._refs[slot] -= 1
        if self._refs[slot] > 0:
            return
        last = len(self._symbols) - 1
        if slot != last:
            moved = self._symbols[last]
            self._symbols[slot] = moved
            self._refs[slot] = self._refs[last]
            self._slot[moved] = slot
            for col in self._columns():
                col[slot] = col[last]
        del self._slot[symbol]
        self._symbols.pop()
        self._refs.pop()

    def _columns(self) -> tuple[npt.NDArray[np.generic], ...]:
        return (
            self._pos, self._sent_t, self._sent_vol, self._sent_hi, self._sent_lo, self._next_t
        )  # fmt: skip

    def _grow(self, size: int) -> None:
        for name in ("_pos", "_sent_t", "_sent_vol", "_sent_hi", "_sent_lo", "_next_t"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    # -- frames ---------------------------------------------------------------------------------

    def snapshot(self, symbol: str, now: float, cfg: EmulatorConfig, *, stale: bool) -> str:
        """The frame sent to a new subscriber of ``symbol`` (already added)."""
        m = self.m
        pos = int(self._pos[self._slot[symbol]])
        state = m.state
        if state in _HOURS and m.ext_t[pos] > 0:
            pricing = self._extended(symbol, pos, _HOURS[state])
        else:
            hi, lo = float(m.day_high[pos]), float(m.day_low[pos])
            pricing = self._regular(symbol, pos, self._last_time(pos, now), hi, lo)
        if stale:
            prev = float(m.prev_close[pos])
            old = (pricing.time_ms or 0) - int(cfg.stale_age_s * 1000)
            pricing = Pricing(
                symbol=symbol, time_ms=old, price=prev, market_hours=MarketHours.REGULAR,
                exchange=pricing.exchange, quote_type=pricing.quote_type,
                price_hint=pricing.price_hint,
            )  # fmt: skip
        return self._encode(pricing, cfg)

    def updates(self, now: float, cfg: EmulatorConfig) -> list[tuple[str, list[str]]]:
        """(symbol, frames) of every subscribed symbol due at ``now`` (market synced)."""
        k = len(self._symbols)
        state = self.m.state
        if k == 0 or state not in OPEN_STATES:
            return []
        m = self.m
        p = self._pos[:k]
        regular = state == "REGULAR"
        if regular:
            fresh = (m.reg_t[p] > self._sent_t[:k]) | (m.day_vol[p] != self._sent_vol[:k])
        else:
            fresh = m.ext_t[p] > self._sent_t[:k]
        due = np.flatnonzero(fresh & (self._next_t[:k] <= now)).tolist()
        out: list[tuple[str, list[str]]] = []
        for slot in due:
            pos = int(self._pos[slot])
            symbol = self._symbols[slot]
            if regular:
                frames = self._regular_update(slot, symbol, pos, cfg)
            else:
                frames = [self._encode(self._extended(symbol, pos, _HOURS[state]), cfg)]
                self._sent_t[slot] = m.ext_t[pos]
            self._next_t[slot] = now + self._gap(pos, cfg)
            out.append((symbol, frames))
        return out

    def _regular_update(self, slot: int, symbol: str, pos: int, cfg: EmulatorConfig) -> list[str]:
        m = self.m
        hi, lo = float(m.day_high[pos]), float(m.day_low[pos])
        new_hi = hi if hi != self._sent_hi[slot] else None
        new_lo = lo if lo != self._sent_lo[slot] else None
        pricing = self._regular(symbol, pos, int(m.reg_t[pos]), new_hi, new_lo)
        frames: list[str] = []
        vol, sent_vol = int(m.day_vol[pos]), int(self._sent_vol[slot])
        split = vol - sent_vol >= 2 and cfg.stream_same_time > 0.0
        if split and self._rng.random() < cfg.stream_same_time:  # same time, less volume first
            part = replace(pricing, day_volume=sent_vol + (vol - sent_vol) // 2)
            frames.append(self._encode(part, cfg))
            pricing = replace(pricing, day_high=None, day_low=None)
        frames.append(self._encode(pricing, cfg))
        self._sent_t[slot] = m.reg_t[pos]
        self._sent_vol[slot] = vol
        self._sent_hi[slot] = hi
        self._sent_lo[slot] = lo
        return frames

    def _regular(
        self, symbol: str, pos: int, time_s: int, hi: float | None, lo: float | None
    ) -> Pricing:
        m = self.m
        b = int(m.base[pos])
        px, prev = float(m.reg_px[pos]), float(m.prev_close[pos])
        return Pricing(
            symbol=symbol, time_ms=time_s * 1000, price=px, market_hours=MarketHours.REGULAR,
            change=px - prev, change_percent=(px - prev) / prev * 100.0,
            day_volume=int(m.day_vol[pos]), day_high=hi, day_low=lo, exchange=m.u.exchange[b],
            quote_type=QuoteType.EQUITY, price_hint=int(m.u.price_hint[b]),
        )  # fmt: skip

    def _extended(self, symbol: str, pos: int, hours: MarketHours) -> Pricing:
        m = self.m
        b = int(m.base[pos])
        ep, close = float(m.ext_px[pos]), float(m.reg_px[pos])
        return Pricing(
            symbol=symbol, time_ms=int(m.ext_t[pos]) * 1000, price=ep, market_hours=hours,
            change=ep - close, change_percent=(ep - close) / close * 100.0,
            exchange=m.u.exchange[b], quote_type=QuoteType.EQUITY,
            price_hint=int(m.u.price_hint[b]),
        )  # fmt: skip

    def _last_time(self, pos: int, now: float) -> int:
        """The regular market time v7 reports now: the last trade in REGULAR, else the close."""
        mt = self.m.market_time(now)
        return int(self.m.reg_t[pos]) if mt is None else mt

    def _encode(self, pricing: Pricing, cfg: EmulatorConfig) -> str:
        extra = cfg.stream_components > 0.0 and self._rng.random() < cfg.stream_components
        return encode_frame(pricing, components=pricing.symbol if extra else None)

    def _gap(self, pos: int, cfg: EmulatorConfig) -> float:
        liquid = self.m.u.volume[int(self.m.base[pos])] >= cfg.stream_liquid_volume
        if liquid:
            return float(self._np.uniform(cfg.stream_min_gap_s, cfg.stream_max_gap_s))
        return float(cfg.stream_illiquid_gap_s * self._np.uniform(0.5, 1.5))
