"""Simulated market: the New York session clock and one price walk per instrument.

Clock
    :func:`clock_state` maps an epoch time to ``marketState`` from America/New_York wall time:
    PRE 04:00-09:30, REGULAR 09:30-16:00, POST 16:00-20:00, otherwise CLOSED; weekends CLOSED.
    Exchange holidays are not modelled. ``EmulatorConfig.market_state`` overrides the clock and
    ``time_offset_s`` shifts it (the emulator's ``now`` is ``clock() + time_offset_s``).

Walk
    Every instrument (a listed symbol, or a ``{BASE}.X{n}`` replica) carries its state in
    numpy columns: regular price/time, previous close, day open/high/low/volume and an
    extended-hours price/time. :meth:`Market.sync` advances *all* instruments lazily: when a
    request arrives it takes one vectorised step covering the ticks since the last request
    (``tick_s``, default 1 s). In a step an instrument trades with a Poisson probability from
    its traded volume (floored by ``min_trade_prob``), its price moves by a log-normal step of
    its daily volatility scaled to the elapsed time, rounded to the cent (1/100 cent below $1),
    and its volume grows by the expected shares. ``regularMarketTime`` is the time of the last
    trade, as on Yahoo: it moves with every trade, also one at an unchanged (rounded) price, and
    only then - an instrument that did not trade keeps its quote and its market time (the engine
    deduplicates on symbol + market time), and a quiet one is not reported stale while it trades.
    Draws are hashes of (seed, tick, instrument) (:mod:`.rng`), so a
    run is reproducible for a given ``--seed`` and request schedule.

    ``full_change`` makes every instrument trade every tick and moves its price by at least one
    tick (the worst case of the engine's cost: every quote is new). Only REGULAR moves the
    regular price; PRE and POST move the extended-hours price (reported
    as ``preMarket*``/``postMarket*``). Outside REGULAR ``regularMarketTime`` is the last close
    (16:00 of the last weekday). Entering REGULAR starts a new session: previous close := last
    price, day open/high/low reset, volume 0. ``freeze`` stops all of this.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from yahoo_emulator import rng
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.universe import TRADING_SECONDS, Universe

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

NY: Final = ZoneInfo("America/New_York")
PRE_OPEN: Final = dt.time(4, 0)
REG_OPEN: Final = dt.time(9, 30)
REG_CLOSE: Final = dt.time(16, 0)
POST_CLOSE: Final = dt.time(20, 0)
REPLICA_RE: Final = re.compile(r"^(?P<base>.+)\.X(?P<n>[1-9][0-9]{0,2})$")
_INIT_STREAM: Final = 7


# --------------------------------------------------------------------------------------------
# clock (pure functions of an epoch time)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One New York trading date's session boundaries, epoch seconds."""

    day: dt.date
    pre_start: int
    open: int
    close: int
    post_end: int


def _at(day: dt.date, t: dt.time) -> int:
    return int(dt.datetime.combine(day, t, tzinfo=NY).timestamp())


@functools.lru_cache(maxsize=65_536)
def session_for(day: dt.date) -> Session:
    return Session(
        day, _at(day, PRE_OPEN), _at(day, REG_OPEN), _at(day, REG_CLOSE), _at(day, POST_CLOSE)
    )


def ny_datetime(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, NY)


def ny_date(ts: float) -> dt.date:
    return ny_datetime(ts).date()


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5


def previous_trading_day(day: dt.date) -> dt.date:
    day -= dt.timedelta(days=1)
    while not is_trading_day(day):
        day -= dt.timedelta(days=1)
    return day


def clock_state(ts: float) -> str:
    """``marketState`` for an epoch time from New York wall time (no holidays)."""
    local = ny_datetime(ts)
    if local.weekday() >= 5:
        return "CLOSED"
    t = local.time()
    if PRE_OPEN <= t < REG_OPEN:
        return "PRE"
    if REG_OPEN <= t < REG_CLOSE:
        return "REGULAR"
    if REG_CLOSE <= t < POST_CLOSE:
        return "POST"
    return "CLOSED"


def last_close(ts: float) -> int:
    """Epoch of the most recent regular-session close (16:00 New York) at or before ``ts``."""
    day = ny_date(ts)
    if is_trading_day(day) and ts >= session_for(day).close:
        return session_for(day).close
    return session_for(previous_trading_day(day)).close


def tz_info(ts: float) -> tuple[str, int]:
    """(``EST``/``EDT``, UTC offset in seconds) in New York at ``ts``."""
    local = ny_datetime(ts)
    off = local.utcoffset()
    return local.tzname() or "EST", int(off.total_seconds()) if off is not None else -18000


# --------------------------------------------------------------------------------------------
# the walk
# --------------------------------------------------------------------------------------------


class Market:
    """Prices of all instruments. Single-threaded: used from the emulator's event loop only."""

    _FLOAT_COLS: Final = (
        "reg_px", "prev_close", "day_open", "day_high", "day_low", "ext_px",
        "rate", "vps", "daily_vol", "scale",
    )  # fmt: skip
    _INT_COLS: Final = ("reg_t", "day_vol", "ext_t", "base")

    def __init__(self, universe: Universe, cfg: EmulatorConfig, now: float) -> None:
        self.u = universe
        self._cfg = cfg
        n = len(universe)
        self._cap = 0
        self.n = 0
        self.ids: U64 = np.zeros(0, dtype=np.uint64)
        self.reg_px: F64 = np.zeros(0)
        self.prev_close: F64 = np.zeros(0)
        self.day_open: F64 = np.zeros(0)
        self.day_high: F64 = np.zeros(0)
        self.day_low: F64 = np.zeros(0)
        self.ext_px: F64 = np.zeros(0)
        self.rate: F64 = np.zeros(0)  # trades per second
        self.vps: F64 = np.zeros(0)  # shares per second in REGULAR
        self.daily_vol: F64 = np.zeros(0)
        self.scale: F64 = np.zeros(0)  # 100 (cents) or 10000 below $1
        self.reg_t: I64 = np.zeros(0, dtype=np.int64)
        self.day_vol: I64 = np.zeros(0, dtype=np.int64)
        self.ext_t: I64 = np.zeros(0, dtype=np.int64)
        self.base: I64 = np.zeros(0, dtype=np.int64)
        self._grow(n + 1024)
        self.symbols: list[str] = list(universe.symbols)
        self._pos: dict[str, int] = dict(universe.index)
        self._state = self.state_at(now)
        self._tick_s = cfg.tick_s
        self._tick = math.floor(now / cfg.tick_s)
        self._init_base_rows(now)

    # -- configuration ---------------------------------------------------------------------

    @property
    def cfg(self) -> EmulatorConfig:
        return self._cfg

    def configure(self, cfg: EmulatorConfig) -> None:
        self._cfg = cfg

    def state_at(self, now: float) -> str:
        return self._cfg.market_state or clock_state(now)

    @property
    def state(self) -> str:
        """The state of the last :meth:`sync`."""
        return self._state

    def market_time(self, now: float) -> int | None:
        """``regularMarketTime`` shared by all instruments outside REGULAR, else None."""
        return None if self._state == "REGULAR" else last_close(now)

    def session_day(self, now: float) -> dt.date:
        """New York date of the current (REGULAR) or last regular session."""
        if self._state == "REGULAR":
            return ny_date(now)
        return ny_date(last_close(now))

    # -- storage -----------------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, self._cap * 2)
        for name in ("ids", *self._FLOAT_COLS, *self._INT_COLS):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self._cap = cap

    def _init_base_rows(self, now: float) -> None:
        u = self.u
        n = len(u)
        sl = slice(0, n)
        self.n = n
        self.ids[sl] = u.key
        self.base[sl] = np.arange(n)
        self.scale[sl] = np.where(u.price_hint == 4, 10_000.0, 100.0)
        self.daily_vol[sl] = u.daily_vol
        self.vps[sl] = u.volume / TRADING_SECONDS
        self.rate[sl] = self.vps[sl] / 100.0  # ~100-share trades
        scale = self.scale[sl]
        last = np.round(u.last_sale * scale) / scale
        pct = np.maximum(u.pct_change, -99.0)
        prev = np.maximum(np.round(last / (1.0 + pct / 100.0) * scale) / scale, 1.0 / scale)
        z1, z2 = rng.normals(u.key, self._cfg.seed, _INIT_STREAM, 0)
        dv = u.daily_vol
        opn = np.maximum(np.round(prev * np.exp(0.3 * dv * z1) * scale) / scale, 1.0 / scale)
        hi = np.round(np.maximum(opn, last) * np.exp(0.3 * dv * np.abs(z2)) * scale) / scale
        lo = np.round(np.minimum(opn, last) * np.exp(-0.3 * dv * np.abs(z1)) * scale) / scale
        self.reg_px[sl] = last
        self.prev_close[sl] = prev
        self.day_open[sl] = opn
        self.day_high[sl] = hi
        self.day_low[sl] = np.maximum(lo, 1.0 / scale)
        self.ext_px[sl] = last
        self.ext_t[sl] = 0
        if self._state == "REGULAR":
            frac = self._session_fraction(now)
            self.day_vol[sl] = np.rint(u.volume * frac).astype(np.int64)
            ago = (u.key % np.uint64(20)).astype(np.int64)
            self.reg_t[sl] = int(now) - ago
        else:
            self.day_vol[sl] = u.volume
            self.reg_t[sl] = last_close(now)

    @staticmethod
    def _session_fraction(now: float) -> float:
        day = ny_date(now)
        s = session_for(day)
        if not is_trading_day(day) or not s.open <= now < s.close:
            return 0.5
        return min(max((now - s.open) / TRADING_SECONDS, 0.02), 1.0)

    # -- symbols -----------------------------------------------------------------------------

    def position(self, symbol: str) -> int:
        """Position of a known (or already registered) instrument, -1 if none."""
        return self._pos.get(symbol, -1)

    def resolve(self, symbols: Sequence[str]) -> list[int]:
        """Positions for upper-case ``symbols`` (-1 = unknown); registers new replicas."""
        pos = self._pos
        out = [pos.get(s, -1) for s in symbols]
        if not self._cfg.replicas:
            listed = len(self.u)
            return [p if p < listed else -1 for p in out]
        new: dict[str, tuple[int, int]] = {}
        for s, p in zip(symbols, out, strict=True):
            if p < 0 and s not in new:
                m = REPLICA_RE.match(s)
                if m is not None:
                    b = self.u.index.get(m.group("base"), -1)
                    if b >= 0:
                        new[s] = (b, int(m.group("n")))
        if new:
            self._register(new)
            out = [pos.get(s, -1) for s in symbols]
        return out

    def _register(self, new: dict[str, tuple[int, int]]) -> None:
        m = len(new)
        start = self.n
        self._grow(start + m)
        sl = slice(start, start + m)
        bases = np.fromiter((b for b, _ in new.values()), dtype=np.int64, count=m)
        ns = np.fromiter((k for _, k in new.values()), dtype=np.uint64, count=m)
        for name in (*self._FLOAT_COLS, *self._INT_COLS):
            col = getattr(self, name)
            col[sl] = col[bases]
        self.base[sl] = bases
        self.ids[sl] = rng.mix64(self.u.key[bases] ^ rng.mix64(ns * np.uint64(0x9E3779B1)))
        for i, sym in enumerate(new):
            self._pos[sym] = start + i
            self.symbols.append(sym)
        self.n = start + m

    # -- time --------------------------------------------------------------------------------

    def sync(self, now: float) -> str:
        """Advance every instrument to ``now``; returns the market state."""
        cfg = self._cfg
        state = self.state_at(now)
        if cfg.tick_s != self._tick_s:
            self._tick_s = cfg.tick_s
            self._tick = math.floor(now / cfg.tick_s)
        tick = math.floor(now / cfg.tick_s)
        if cfg.freeze:
            self._state = state
            self._tick = tick
            return state
        if state != self._state:
            self._transition(self._state, state, now)
            self._state = state
        k = tick - self._tick
        if k > 0 and state in ("PRE", "REGULAR", "POST"):
            self._step(k, tick, regular=state == "REGULAR", t=int(now))
        self._tick = max(tick, self._tick)
        return state

    def _transition(self, old: str, new: str, now: float) -> None:
        n = self.n
        if new == "REGULAR":
            opened = np.where(self.ext_t[:n] > 0, self.ext_px[:n], self.reg_px[:n])
            self.prev_close[:n] = self.reg_px[:n]
            self.day_open[:n] = opened
            self.day_high[:n] = opened
            self.day_low[:n] = opened
            self.reg_px[:n] = opened
            self.day_vol[:n] = 0
            self.reg_t[:n] = int(now)
            self.ext_t[:n] = 0
        elif old == "REGULAR" or new == "PRE":
            self.ext_px[:n] = self.reg_px[:n]
            self.ext_t[:n] = 0

    def _step(self, k: int, tick: int, *, regular: bool, t: int) -> None:
        n = self.n
        cfg = self._cfg
        ids = self.ids[:n]
        z, zv = rng.normals(ids, cfg.seed, rng.PRICE, tick)
        u = rng.uniforms(ids, cfg.seed, rng.TRADE, tick)
        span = cfg.tick_s * k
        rate = self.rate[:n] if regular else self.rate[:n] * 0.05
        floor_p = 1.0 - (1.0 - cfg.min_trade_prob) ** k
        p = np.maximum(-np.expm1(-rate * span), floor_p)
        traded = np.ones(n, dtype=bool) if cfg.full_change else u < p
        sig = self.daily_vol[:n] * math.sqrt(span / TRADING_SECONDS) * (1.0 if regular else 0.5)
        px = self.reg_px if regular else self.ext_px
        when = self.reg_t if regular else self.ext_t
        scale = self.scale[:n]
        cur = px[:n]
        new = np.round(cur * np.exp(sig * z - 0.5 * sig * sig) * scale) / scale
        np.maximum(new, 1.0 / scale, out=new)
        if cfg.full_change:  # a trade at the same rounded price still moves it one tick
            ticks = np.round(cur * scale)
            step = np.where((z >= 0) | (ticks <= 1.0), 1.0, -1.0)  # at the floor: up
            np.copyto(new, (ticks + step) / scale, where=new == cur)
        changed = traded & (new != cur)
        np.copyto(cur, new, where=changed)
        when[:n][traded] = t
        if regular:
            np.maximum(self.day_high[:n], cur, out=self.day_high[:n])
            np.minimum(self.day_low[:n], cur, out=self.day_low[:n])
            per_trade = span if cfg.full_change else span / p  # shares of a (certain) trade
            add = self.vps[:n] * per_trade * np.exp(0.5 * zv - 0.125)
            self.day_vol[:n] += np.where(traded, np.rint(add), 0.0).astype(np.int64)
