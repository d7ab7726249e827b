"""Retry-After is honoured within ``yahoo.retry_after_max_s`` on every path that honours it."""

from __future__ import annotations

import math

import msgspec
import pytest

from engine.config import YahooSettings
from engine.retry import RETRY_AFTER_CAP_S, RetryPolicy
from engine.source import ratelimit as rl
from engine.source.guard import policies_from

P = rl.RatePolicy(initial_rps=10, min_rps=0.5, max_rps=40, burst=5)


@pytest.mark.parametrize("asked", [1e9, math.inf])
def test_the_limiter_pause_is_capped(asked: float) -> None:
    """A huge (or infinite) Retry-After used to block every call of every worker for ever."""
    s = rl.on_throttle(rl.RateState.initial(P, 0.0), P, 0.0, retry_after_s=asked)
    assert s.blocked_until == pytest.approx(RETRY_AFTER_CAP_S)
    assert rl.try_acquire(s, P, RETRY_AFTER_CAP_S + 1)[1] == 0


def test_a_nan_or_negative_retry_after_does_not_block() -> None:
    for asked in (math.nan, -5.0):
        s = rl.on_throttle(rl.RateState.initial(P, 0.0), P, 0.0, retry_after_s=asked)
        assert 0.0 <= s.blocked_until <= 1.0


def test_the_cap_is_the_setting() -> None:
    rate, _ = policies_from(YahooSettings(retry_after_max_s=7.0))
    assert rate.retry_after_max_s == 7.0
    s = rl.on_throttle(rl.RateState.initial(rate, 0.0), rate, 0.0, retry_after_s=3600)
    assert s.blocked_until == pytest.approx(7.0)
    assert msgspec.convert({"retry_after_max_s": 1}, YahooSettings).retry_after_max_s == 1.0


def test_a_retry_wait_is_capped_too() -> None:
    """The session's retry loop (engine.retry) caps Retry-After at the same default."""
    policy = RetryPolicy(attempts=3, base_s=0.25, cap_s=8.0)
    assert policy.delay_s(0, lambda: 1.0, retry_after_s=1e9) == RETRY_AFTER_CAP_S
    assert YahooSettings().retry_after_max_s == RETRY_AFTER_CAP_S
