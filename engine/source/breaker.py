"""Circuit breaker for the Yahoo API (pure state transitions; the clock is an argument).

States: CLOSED (calls flow) -> OPEN (calls refused with CircuitOpenError) after
``consecutive_failures`` failures in a row, or a failure rate of at least ``failure_rate`` over a
window of ``window_s`` seconds with at least ``min_calls`` calls; after ``cooldown_s`` one probe
call is let through (HALF_OPEN); its success closes the breaker, its failure reopens it with the
cool-down doubled (up to ``max_cooldown_s``).

Failures are server-side trouble: 5xx, network errors, malformed bodies. 429s are the rate
limiter's business and 4xx other than 429 are ours, so neither trips the breaker.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from engine.config import YahooSettings


class BreakerState(enum.IntEnum):
    """The breaker's state; the value is what the shared-memory slot and the
    ``ingestion_breaker_state`` gauge hold; a transition into a state is logged as
    ``breaker_closed`` / ``breaker_half_open`` / ``breaker_opened``."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


_SETTINGS: Final = YahooSettings()  # the defaults of the ``yahoo.breaker_*`` settings


class BreakerPolicy(msgspec.Struct, frozen=True):
    consecutive_failures: int = _SETTINGS.breaker_consecutive_failures
    failure_rate: float = _SETTINGS.breaker_failure_rate
    min_calls: int = _SETTINGS.breaker_min_calls
    window_s: float = _SETTINGS.breaker_window_s
    cooldown_s: float = _SETTINGS.breaker_cooldown_s
    max_cooldown_s: float = 120.0  # the doubled cool-down stops here (not a setting)


class Breaker(msgspec.Struct, frozen=True):
    state: BreakerState = BreakerState.CLOSED
    consecutive: int = 0
    window_start: float = 0.0
    window_calls: int = 0
    window_failures: int = 0
    opened_at: float = 0.0
    cooldown_s: float = 0.0
    probe_started: float = 0.0  # HALF_OPEN: when the probe went out (0 = none yet)
    transitions: int = 0


def before_call(b: Breaker, p: BreakerPolicy, now: float) -> tuple[Breaker, bool]:
    """May a call go out now? After the cool-down OPEN turns HALF_OPEN and lets one probe out."""
    if b.state == BreakerState.CLOSED:
        return b, True
    if b.state == BreakerState.OPEN:
        if now - b.opened_at < b.cooldown_s:
            return b, False
        return msgspec.structs.replace(
            b, state=BreakerState.HALF_OPEN, probe_started=now, transitions=b.transitions + 1
        ), True
    # HALF_OPEN: one probe at a time; a probe that never reported back is replaced after a while
    if b.probe_started and now - b.probe_started < max(b.cooldown_s, 1.0):
        return b, False
    return msgspec.structs.replace(b, probe_started=now), True


def _window(b: Breaker, p: BreakerPolicy, now: float) -> Breaker:
    if now - b.window_start >= p.window_s:
        return msgspec.structs.replace(b, window_start=now, window_calls=0, window_failures=0)
    return b


def on_result(b: Breaker, p: BreakerPolicy, ok: bool, now: float) -> Breaker:
    b = _window(b, p, now)
    calls, fails = b.window_calls + 1, b.window_failures + (0 if ok else 1)
    if ok:
        if b.state != BreakerState.CLOSED:
            return Breaker(window_start=now, transitions=b.transitions + 1)
        return msgspec.structs.replace(b, consecutive=0, window_calls=calls, window_failures=fails)
    consecutive = b.consecutive + 1
    if b.state == BreakerState.HALF_OPEN:
        return _open(b, p, now, min(p.max_cooldown_s, max(p.cooldown_s, b.cooldown_s * 2)))
    if b.state == BreakerState.OPEN:
        return b
    tripped = consecutive >= p.consecutive_failures or (
        calls >= p.min_calls and fails / calls >= p.failure_rate
    )
    if tripped:
        return _open(b, p, now, p.cooldown_s)
    return msgspec.structs.replace(
        b, consecutive=consecutive, window_calls=calls, window_failures=fails
    )


def _open(b: Breaker, p: BreakerPolicy, now: float, cooldown: float) -> Breaker:
    return Breaker(
        state=BreakerState.OPEN,
        opened_at=now,
        cooldown_s=cooldown,
        window_start=now,
        transitions=b.transitions + 1,
    )
