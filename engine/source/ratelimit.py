"""Adaptive rate limit for every Yahoo call (pure maths; the clock is an argument).

A token bucket whose refill rate adapts AIMD-style, like TCP congestion control:

* every successful call adds ``increase_rps / rate`` to the rate - about ``+increase_rps`` per
  second of successful traffic, whatever the current rate (additive increase);
* a 429 that is part of congestion - at least ``window_throttles`` of the last ``window``
  answers were 429s - multiplies the rate by ``decrease_factor`` (multiplicative decrease). A
  429 among successes is noise (an edge node, a blip) and costs no rate: cutting on every
  isolated 429 would collapse the rate under a few per cent of random 429s (at 5 %, AIMD settles
  near 4.5 req/s, too slow for 100 requests every 10 s), whereas a real limit answers a run of
  them. Any 429 empties the bucket (no burst straight after it) and pauses one token's time or,
  when Yahoo sends Retry-After, blocks every call until then (capped at ``retry_after_max_s``);
* a response slower than ``slow_latency_s`` (an exponentially-weighted average) multiplies the rate
  by ``slow_factor``: a server that is struggling is asked less.

The state lives in shared memory (:mod:`engine.source.guard`) so all worker processes draw from one
budget; these functions only compute the next state.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

from engine.config import YahooSettings

EWMA_ALPHA: Final = 0.2  # weight of the newest latency sample


_SETTINGS: Final = YahooSettings()  # the defaults of the ``yahoo.rate_*`` settings


class RatePolicy(msgspec.Struct, frozen=True):
    initial_rps: float = _SETTINGS.rate_initial_rps
    min_rps: float = _SETTINGS.rate_min_rps
    max_rps: float = _SETTINGS.rate_max_rps
    burst: float = _SETTINGS.rate_burst  # tokens the bucket holds: one cycle's requests at once
    increase_rps: float = _SETTINGS.rate_increase_rps
    decrease_factor: float = _SETTINGS.rate_decrease_factor
    slow_latency_s: float = _SETTINGS.rate_slow_latency_s
    slow_factor: float = 0.9  # a slow answer cuts the rate by this factor (not a setting)
    retry_after_max_s: float = _SETTINGS.retry_after_max_s  # longest Retry-After pause honoured
    window: int = _SETTINGS.rate_window  # answers remembered for the congestion test (<= 52)
    window_throttles: int = _SETTINGS.rate_window_throttles  # 429s among them that mean congestion


class RateState(msgspec.Struct, frozen=True):
    rate: float
    tokens: float
    updated_at: float
    blocked_until: float = 0.0
    ewma_latency_s: float = 0.0
    throttles: int = 0
    decreased_at: float = -1.0  # when the rate was last cut (-1: never)
    recent: int = 0  # the last ``policy.window`` answers, newest in bit 0: 1 = a 429

    @classmethod
    def initial(cls, policy: RatePolicy, now: float) -> RateState:
        return cls(rate=policy.initial_rps, tokens=policy.burst, updated_at=now)


def burst_cap(s: RateState, policy: RatePolicy) -> float:
    """Tokens the bucket may hold: ``policy.burst`` until Yahoo first throttles us; after that
    one second's worth at the learned rate, so a pause between cycles does not end in a burst
    the upstream's own bucket cannot take (every cycle would open with 429s)."""
    if s.decreased_at < 0:
        return policy.burst
    return min(policy.burst, max(1.0, s.rate))


def _refill(s: RateState, policy: RatePolicy, now: float) -> RateState:
    dt = max(0.0, now - s.updated_at)
    tokens = min(burst_cap(s, policy), s.tokens + dt * s.rate)
    return msgspec.structs.replace(s, tokens=tokens, updated_at=now)


def try_acquire(s: RateState, policy: RatePolicy, now: float) -> tuple[RateState, float]:
    """Take one token. Returns the new state and 0.0, or the unchanged-but-refilled state and
    the seconds to wait before trying again."""
    s = _refill(s, policy, now)
    if now < s.blocked_until:
        return s, s.blocked_until - now
    if s.tokens >= 1.0:
        return msgspec.structs.replace(s, tokens=s.tokens - 1.0), 0.0
    return s, (1.0 - s.tokens) / s.rate


def _remember(recent: int, throttled: bool, policy: RatePolicy) -> int:
    return ((recent << 1) | int(throttled)) & ((1 << policy.window) - 1)


def congested(s: RateState, policy: RatePolicy) -> bool:
    """Whether the remembered answers hold enough 429s to mean congestion."""
    return s.recent.bit_count() >= policy.window_throttles


def on_answer(s: RateState, policy: RatePolicy) -> RateState:
    """An answer that is neither a success nor a 429 (a 5xx, a 4xx): remembered as not
    throttled, nothing else changes."""
    return msgspec.structs.replace(s, recent=_remember(s.recent, False, policy))


def on_success(s: RateState, policy: RatePolicy, latency_s: float, now: float) -> RateState:
    ewma = latency_s if s.ewma_latency_s == 0 else (
        EWMA_ALPHA * latency_s + (1 - EWMA_ALPHA) * s.ewma_latency_s
    )  # fmt: skip
    rate = s.rate + policy.increase_rps / max(s.rate, policy.min_rps)
    if ewma > policy.slow_latency_s:
        rate = s.rate * policy.slow_factor
    rate = min(policy.max_rps, max(policy.min_rps, rate))
    return msgspec.structs.replace(
        _refill(s, policy, now),
        rate=rate,
        ewma_latency_s=ewma,
        recent=_remember(s.recent, False, policy),
    )


def on_throttle(
    s: RateState,
    policy: RatePolicy,
    now: float,
    retry_after_s: float | None = None,
    sent_at: float | None = None,
) -> RateState:
    """A 429 (or ``Too Many Requests`` crumb): pause, and cut the rate if it is congestion.

    Congestion (:func:`congested`): at least ``window_throttles`` of the last ``window``
    answers, this one included, were 429s. One cut per congestion event: a 429 for a request
    sent before the last cut (``sent_at``) was already in flight when we slowed down, so it does
    not cut the rate again - requests in flight answered 429 together halve the rate once.
    """
    s = msgspec.structs.replace(s, recent=_remember(s.recent, True, policy))
    same_event = sent_at is not None and sent_at < s.decreased_at
    cut = congested(s, policy) and not same_event
    rate = max(policy.min_rps, s.rate * policy.decrease_factor) if cut else s.rate
    pause = 1.0 / rate
    if retry_after_s is not None:  # a server's wish, within reason (max() first: NaN -> 0)
        pause = min(max(0.0, retry_after_s), policy.retry_after_max_s)
    return msgspec.structs.replace(
        s,
        rate=rate,
        tokens=0.0,
        updated_at=now,
        blocked_until=max(s.blocked_until, now + pause),
        throttles=s.throttles + 1,
        decreased_at=now if cut else s.decreased_at,
    )


def headroom(budget: float, need: int) -> float:
    """Share of the per-cycle request budget (:func:`cycle_budget`) left after one full cycle of
    ``need`` requests, in [0, 1]: ``1 - need / budget``; 0 when the budget cannot cover a cycle
    (the engine then says so and refreshes the universe over :func:`cycles_to_cover` cycles)."""
    if budget <= 0:
        return 0.0
    return max(0.0, min(1.0, 1.0 - need / budget))


def cycle_budget(s: RateState, policy: RatePolicy, interval_s: float) -> float:
    """Requests the limiter allows in one interval: what the bucket holds plus its refill."""
    return min(policy.burst, s.tokens) + s.rate * interval_s


def cycles_to_cover(need: int, budget: float) -> int:
    """Intervals one full pass over the universe takes at this budget (>= 1)."""
    if budget <= 0:
        return 1 << 30
    return max(1, math.ceil(need / budget))
