"""Is a quote's price plausible? Judged against the quote's own reference, not literal bounds.

The seed judged every price against fixed bounds, ``0.01 < price < 100,000`` (USD). Real
listings among the 5,000 largest fall outside them both ways (BRK-A trades near $740,000, the
SVREW warrant near $0.0098), while a corrupted price *inside* them (300 for a $50 stock) passed.
So the rule is relative: a price is compared with a **reference the same quote carries**, the
first one known of

1. ``regularMarketPreviousClose`` (the band is ``[prev / max_move, prev * max_move]``),
2. the day range ``regularMarketDayLow``..``regularMarketDayHigh`` (``[low / m, high * m]``),
3. the 52-week range ``fiftyTwoWeekLow``..``fiftyTwoWeekHigh`` (likewise),

(a reference is used only if it is a finite number > 0, and a range only if low <= high).
Within the band the price is plausible. Outside it, the move is held as **unconfirmed** (dead
letter ``price_unconfirmed``) unless a **second read confirms it**: the previous read of the same
symbol, from an earlier cycle, was out of band too and within a factor :data:`CONFIRM_RATIO` of this
one (a real jump is still there 10 s later; a corrupted field rarely repeats). A confirmed move
has lost its reference, so it must also lie within the absolute bounds, as a price without any
reference must: ``min_price <= price <= max_price``, configurable and wide by default
(``0.0001``..``10,000,000``: sub-cent warrants and BRK-A fit; 1e9 or 1e308 do not). A price that
is not a finite number > 0 is never plausible.

Everything here is pure; the per-symbol memory of held moves is :class:`HeldMoves`, kept by each
worker for its own symbols (bounded).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from typing import Final, NamedTuple

CONFIRM_RATIO: Final = 1.25
"""A held out-of-band price is confirmed by a later read within ×/÷ this factor of it."""
CONFIRM_WITHIN_CYCLES: Final = 3
"""A held price confirms only a read of one of the next this many cycles (a symbol whose batch
failed once can still be confirmed; an old held price cannot confirm a new jump)."""
MAX_HELD: Final = 10_000
"""Held prices a worker remembers at most (the oldest is forgotten first): bounded memory even
when a whole universe jumps at once."""


class Reference(NamedTuple):
    """The range a price is compared with, and what it is (for the rejection detail)."""

    low: float
    high: float
    name: str


class Verdict(enum.Enum):
    PLAUSIBLE = "plausible"
    CONFIRMED = "confirmed"  # out of its band, confirmed by a second read
    OUT_OF_RANGE = "out_of_range"  # not a positive finite number, or outside the absolute bounds
    UNCONFIRMED = "unconfirmed"  # out of its band, held until a second read confirms it


class Judgement(NamedTuple):
    verdict: Verdict
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.PLAUSIBLE, Verdict.CONFIRMED)


def positive(value: object) -> float | None:
    """``value`` as a float if it is a finite number > 0 (Yahoo's JSON int or float), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and v > 0 else None


def reference(
    previous_close: object,
    day_low: object,
    day_high: object,
    year_low: object,
    year_high: object,
) -> Reference | None:
    """The first usable reference among the quote's own fields (module docstring), or None."""
    prev = positive(previous_close)
    if prev is not None:
        return Reference(prev, prev, "previous close")
    for lo_raw, hi_raw, name in (
        (day_low, day_high, "day range"),
        (year_low, year_high, "52-week range"),
    ):
        lo, hi = positive(lo_raw), positive(hi_raw)
        if lo is not None and hi is not None and lo <= hi:
            return Reference(lo, hi, name)
    return None


def judge_price(
    price: float,
    ref: Reference | None,
    *,
    min_price: float,
    max_price: float,
    max_move: float,
    held: float | None = None,
) -> Judgement:
    """Whether ``price`` is plausible (module docstring). ``held`` is the out-of-band price of
    this symbol's previous read, if the caller still holds one that may confirm this read."""
    if not (math.isfinite(price) and price > 0):
        return Judgement(
            Verdict.OUT_OF_RANGE, f"price={price:.10g} is not a positive finite number"
        )
    within_bounds = min_price <= price <= max_price
    if ref is None:
        if within_bounds:
            return Judgement(Verdict.PLAUSIBLE)
        return Judgement(
            Verdict.OUT_OF_RANGE,
            f"price={price:.10g} not in [{min_price:g}, {max_price:g}] (no reference in the quote)",
        )
    if ref.low / max_move <= price <= ref.high * max_move:
        return Judgement(Verdict.PLAUSIBLE)
    move = _describe_move(price, ref)
    if not within_bounds:
        return Judgement(Verdict.OUT_OF_RANGE, f"{move}, outside [{min_price:g}, {max_price:g}]")
    if held is not None and held / CONFIRM_RATIO <= price <= held * CONFIRM_RATIO:
        return Judgement(Verdict.CONFIRMED, f"{move}, confirmed by the previous read {held:g}")
    return Judgement(Verdict.UNCONFIRMED, f"{move}; published if the next read confirms it")


def _describe_move(price: float, ref: Reference) -> str:
    """``price=300 is 6x the previous close 50`` (or ``1/6 of``), for a rejection detail."""
    base = f"{ref.low:g}" if ref.low == ref.high else f"{ref.low:g}-{ref.high:g}"
    if price > ref.high:
        return f"price={price:.10g} is {price / ref.high:.3g}x the {ref.name} {base}"
    return f"price={price:.10g} is 1/{ref.low / price:.3g} of the {ref.name} {base}"


class HeldMoves:
    """Out-of-band prices awaiting their confirming read, per symbol (one worker's memory).

    At most ``limit`` symbols are remembered, the oldest forgotten first; a held price only
    confirms a read of one of the next :data:`CONFIRM_WITHIN_CYCLES` cycles.
    """

    def __init__(self, limit: int = MAX_HELD) -> None:
        self._held: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._held)

    def get(self, symbol: str, cycle: int) -> float | None:
        """The price held for ``symbol`` that may confirm its read in ``cycle``, else None."""
        entry = self._held.get(symbol)
        if entry is None:
            return None
        price, held_in = entry
        return price if 0 < cycle - held_in <= CONFIRM_WITHIN_CYCLES else None

    def hold(self, symbol: str, price: float, cycle: int) -> None:
        """Remember ``price`` (out of band, unconfirmed) as read for ``symbol`` in ``cycle``."""
        self._held[symbol] = (price, cycle)
        self._held.move_to_end(symbol)
        while len(self._held) > self._limit:
            self._held.popitem(last=False)

    def release(self, symbol: str) -> None:
        """Forget ``symbol``: its read was plausible, or confirmed."""
        self._held.pop(symbol, None)
