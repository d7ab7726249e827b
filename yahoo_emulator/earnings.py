"""The emulator's earnings schedule: who reports when, with which EPS (pure, seeded).

Every listed stock except a few without coverage reports once per 91-day "quarter". Its
reporting day is ``phase (mod 91)`` days since the epoch, ``phase`` drawn from a hash of
``(seed, symbol)``; a day that falls on a weekend moves to the Friday before (Saturday) or the
Monday after (Sunday). NYSE holidays are not modelled (the emulator's market clock has none
either). Because the draw is a hash, the schedule of any date range is known without replaying
anything: :func:`earnings_schedule` is what the emulator serves *and* what tests compare
against.

Per event (all hashes of ``(seed, symbol, base day)``):

* timing: ``BMO`` 45 % (07:00-08:30 New York), ``AMC`` 45 % (16:05-17:00), ``TMC`` 10 % (time
  not confirmed: 00:00 New York as a placeholder). The New York date of the start time is also
  its UTC date, so "the event's date" is unambiguous.
* EPS estimate: for stocks with a known market cap of at least $300M, 90 % of them; around a
  quarter of the forward EPS. Never exactly 0 (a 0 would be ambiguous).
* reported EPS: the estimate (or a quarter of the trailing EPS) times a surprise factor; it
  becomes visible :data:`REPORT_DELAY_S` after the start time (``TMC``: at 16:30 New York) and is
  ``null`` before. Never exactly 0. Surprise % = (actual - estimate) / |estimate| * 100, 2 dp.
* event name: ``Q{n} {year} Earnings Release`` for the calendar quarter before the event.

Rescheduling (knobs ``earnings_reschedule`` = fraction of events, ``earnings_reschedule_days``):
a deterministic subset of events moves by that many days (weekends skipped in the direction of
the move). The subset depends on the seed and the event, so turning the knob on between two
syncs makes those events "move" - exactly what the engine's reschedule handling must notice.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from yahoo_emulator import rng
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.universe import Universe, load_universe

NY: Final = ZoneInfo("America/New_York")
CYCLE_DAYS: Final = 91
REPORT_DELAY_S: Final = 15 * 60
COVERAGE_MIN_CAP: Final = 300_000_000
_EPOCH: Final = dt.date(1970, 1, 1)
# rng streams (distinct from the market's and the universe's)
_PHASE: Final = 200
_PARTICIPATE: Final = 201
_EVENT: Final = 202  # per-event draws: stream + k
_RESCHED: Final = 220

Timing = str  # "BMO" | "AMC" | "TMC"


@dataclass(frozen=True, slots=True)
class EarningsEvent:
    """One scheduled report; ``eps_actual_value`` is what will be reported (:meth:`eps_actual`)."""

    symbol: str
    index: int  # row in the universe
    company: str
    market_cap: int  # USD; 0 = unknown (null in the calendar)
    day: dt.date  # New York date (== UTC date of ``start``)
    start: int  # epoch seconds
    timing: Timing
    event_name: str
    eps_estimate: float | None
    eps_actual_value: float
    report_at: int  # epoch seconds from which the actual EPS is visible
    original_day: dt.date | None = None  # set when rescheduled

    def reported(self, now: float) -> bool:
        return now >= self.report_at

    def eps_actual(self, now: float) -> float | None:
        return self.eps_actual_value if self.reported(now) else None

    def surprise_pct(self, now: float) -> float | None:
        if not self.reported(now) or self.eps_estimate is None:
            return None
        return round((self.eps_actual_value - self.eps_estimate) / abs(self.eps_estimate) * 100, 2)

    @property
    def start_iso(self) -> str:
        """``2026-11-26T21:05:00.000Z`` (the calendar's date format)."""
        return dt.datetime.fromtimestamp(self.start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _from_number(n: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=n)


def _weekday_adjust(day: dt.date) -> dt.date:
    """Saturday -> Friday before, Sunday -> Monday after."""
    wd = day.weekday()
    if wd == 5:
        return day - dt.timedelta(days=1)
    if wd == 6:
        return day + dt.timedelta(days=1)
    return day


def _shift(day: dt.date, days: int) -> dt.date:
    out = day + dt.timedelta(days=days)
    step = dt.timedelta(days=1 if days >= 0 else -1)
    while out.weekday() >= 5:
        out += step
    return out


def _u(seed: int, stream: int, step: int, key: int) -> float:
    ids = np.array([key], dtype=np.uint64)
    return float(rng.uniforms(ids, seed, stream, step)[0])


@dataclass(frozen=True, eq=False)
class _Phases:
    """Per-symbol phase (0..90) and participation for one (seed, universe)."""

    by_phase: tuple[tuple[int, ...], ...]  # phase -> universe rows reporting on it
    phase: npt.NDArray[np.int64]
    active: npt.NDArray[np.bool_]


@functools.lru_cache(maxsize=16)
def _phases(seed: int, universe: Universe) -> _Phases:
    key = universe.key
    phase = np.floor(rng.uniforms(key, seed, _PHASE, 0) * CYCLE_DAYS).astype(np.int64)
    phase = np.minimum(phase, CYCLE_DAYS - 1)
    active = rng.uniforms(key, seed, _PARTICIPATE, 0) < 0.92
    groups: list[list[int]] = [[] for _ in range(CYCLE_DAYS)]
    for i in np.flatnonzero(active).tolist():
        groups[int(phase[i])].append(i)
    return _Phases(tuple(tuple(g) for g in groups), phase, active)


def _quarter_label(day: dt.date) -> str:
    q = (day.month - 1) // 3  # calendar quarter before the event: 0 -> Q4 of last year
    if q == 0:
        return f"Q4 {day.year - 1} Earnings Release"
    return f"Q{q} {day.year} Earnings Release"


def _nonzero(x: float) -> float:
    v = round(x, 2)
    if v == 0.0:
        return 0.01 if x >= 0 else -0.01
    return v


def _start_and_report(day: dt.date, timing: Timing, u: float) -> tuple[int, int]:
    slot = min(int(u * 4), 3)
    if timing == "BMO":
        local = dt.datetime.combine(day, dt.time(7, 0), NY) + dt.timedelta(minutes=30 * slot)
        start = int(local.timestamp())
        return start, start + REPORT_DELAY_S
    if timing == "AMC":
        minutes = (5, 15, 30, 60)[slot]
        local = dt.datetime.combine(day, dt.time(16, 0), NY) + dt.timedelta(minutes=minutes)
        start = int(local.timestamp())
        return start, start + REPORT_DELAY_S
    start = int(dt.datetime.combine(day, dt.time(0, 0), NY).timestamp())
    return start, int(dt.datetime.combine(day, dt.time(16, 30), NY).timestamp())


def _build_event(
    seed: int, u: Universe, i: int, base_day: dt.date, reschedule: float, reschedule_days: int
) -> EarningsEvent:
    key = int(u.key[i])
    step = _day_number(base_day)

    def draw(k: int) -> float:
        return _u(seed, _EVENT + k, step, key)

    day = _weekday_adjust(base_day)
    original: dt.date | None = None
    if reschedule > 0 and reschedule_days and _u(seed, _RESCHED, step, key) < reschedule:
        original, day = day, _shift(day, reschedule_days)
    t = draw(0)
    timing: Timing = "BMO" if t < 0.45 else ("AMC" if t < 0.9 else "TMC")
    start, report_at = _start_and_report(day, timing, draw(1))
    cap = int(u.market_cap[i])
    covered = cap >= COVERAGE_MIN_CAP and draw(2) < 0.9
    estimate = _nonzero(float(u.eps_fwd[i]) / 4 * (0.9 + 0.2 * draw(3))) if covered else None
    basis = estimate if estimate is not None else float(u.eps_ttm[i]) / 4
    actual = _nonzero(basis * (1 + 0.25 * (draw(4) - 0.4)))
    return EarningsEvent(
        symbol=u.symbols[i],
        index=i,
        company=u.short_name[i],
        market_cap=cap,
        day=day,
        start=start,
        timing=timing,
        event_name=_quarter_label(day),
        eps_estimate=estimate,
        eps_actual_value=actual,
        report_at=report_at,
        original_day=original,
    )


def earnings_schedule(
    seed: int,
    start: dt.date,
    end: dt.date,
    *,
    universe: Universe | None = None,
    reschedule: float = 0.0,
    reschedule_days: int = 1,
    exclude: Iterable[str] = (),
) -> list[EarningsEvent]:
    """Every event whose (possibly rescheduled) New York date lies in ``[start, end]``.

    Sorted by (day, symbol). ``exclude`` drops symbols (the emulator passes its ``delisted``).
    """
    u = universe if universe is not None else load_universe()
    ph = _phases(seed, u)
    skipped = {s.upper() for s in exclude}
    margin = abs(reschedule_days) + 3 if reschedule > 0 else 3
    out: list[EarningsEvent] = []
    first, last = _day_number(start) - margin, _day_number(end) + margin
    for n in range(first, last + 1):
        for i in ph.by_phase[n % CYCLE_DAYS]:
            ev = _build_event(seed, u, i, _from_number(n), reschedule, reschedule_days)
            if start <= ev.day <= end and ev.symbol not in skipped:
                out.append(ev)
    out.sort(key=lambda e: (e.day, e.symbol))
    return out


def symbol_events(
    seed: int,
    index: int,
    start: dt.date,
    end: dt.date,
    *,
    universe: Universe | None = None,
    reschedule: float = 0.0,
    reschedule_days: int = 1,
) -> list[EarningsEvent]:
    """The events of one symbol (universe row ``index``) in ``[start, end]``, by date."""
    u = universe if universe is not None else load_universe()
    ph = _phases(seed, u)
    if not ph.active[index]:
        return []
    phase = int(ph.phase[index])
    margin = abs(reschedule_days) + 3 if reschedule > 0 else 3
    first = _day_number(start) - margin
    n = first + (phase - first) % CYCLE_DAYS
    out: list[EarningsEvent] = []
    while n <= _day_number(end) + margin:
        ev = _build_event(seed, u, index, _from_number(n), reschedule, reschedule_days)
        if start <= ev.day <= end:
            out.append(ev)
        n += CYCLE_DAYS
    return out


@functools.lru_cache(maxsize=64)
def _cached_schedule(
    seed: int,
    start: dt.date,
    end: dt.date,
    universe: Universe,
    reschedule: float,
    reschedule_days: int,
    exclude: tuple[str, ...],
) -> tuple[EarningsEvent, ...]:
    return tuple(
        earnings_schedule(
            seed,
            start,
            end,
            universe=universe,
            reschedule=reschedule,
            reschedule_days=reschedule_days,
            exclude=exclude,
        )
    )


def schedule_for(
    cfg: EmulatorConfig, start: dt.date, end: dt.date, *, universe: Universe | None = None
) -> tuple[EarningsEvent, ...]:
    """:func:`earnings_schedule` with the knobs of an emulator configuration (cached)."""
    return _cached_schedule(
        cfg.seed,
        start,
        end,
        universe if universe is not None else load_universe(),
        cfg.earnings_reschedule,
        cfg.earnings_reschedule_days,
        tuple(cfg.delisted),
    )


def events_for_config(
    cfg: EmulatorConfig, universe: Universe, index: int, start: dt.date, end: dt.date
) -> list[EarningsEvent]:
    return symbol_events(
        cfg.seed,
        index,
        start,
        end,
        universe=universe,
        reschedule=cfg.earnings_reschedule,
        reschedule_days=cfg.earnings_reschedule_days,
    )
