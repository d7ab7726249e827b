"""Pure resilience policies: AIMD rate limit and circuit breaker (clock injected)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import random
from pathlib import Path

import pytest

from engine.errors import CircuitOpenError
from engine.source import breaker as brk
from engine.source import ratelimit as rl
from engine.source.guard import YahooGuard

P = rl.RatePolicy(initial_rps=10, min_rps=0.5, max_rps=40, burst=5, increase_rps=1.0,
                  window_throttles=1)  # every 429 counts as congestion  # fmt: skip
B = brk.BreakerPolicy(consecutive_failures=3, failure_rate=0.5, min_calls=10, window_s=60,
                      cooldown_s=5, max_cooldown_s=40)  # fmt: skip


def _acquire(s: rl.RateState, policy: rl.RatePolicy, now: float) -> tuple[rl.RateState, float]:
    """Wait (on the simulated clock) until the limiter gives a token: the state and the time."""
    while True:
        s, wait = rl.try_acquire(s, policy, now)
        if wait <= 0:
            return s, now
        now += wait + 1e-9


def _mean_rate_under_random_429s(
    policy: rl.RatePolicy, p429: float, rng: random.Random, calls: int = 20_000
) -> float:
    """``calls`` calls of 10 ms through the limiter, each answered 429 with probability
    ``p429``: the mean rate over the second half (after it settled)."""
    s, now, rates = rl.RateState.initial(policy, 0.0), 0.0, []
    for _ in range(calls):
        s, now = _acquire(s, policy, now)
        if rng.random() < p429:
            s = rl.on_throttle(s, policy, now + 0.01, sent_at=now)
        else:
            s = rl.on_success(s, policy, 0.01, now + 0.01)
        rates.append(s.rate)
    tail = rates[calls // 2 :]
    return sum(tail) / len(tail)


class TestRateLimit:
    def test_burst_then_paced(self) -> None:
        """A full bucket allows a burst; then calls are paced at the rate."""
        s = rl.RateState.initial(P, 0.0)
        for _ in range(5):
            s, wait = rl.try_acquire(s, P, 0.0)
            assert wait == 0
        s, wait = rl.try_acquire(s, P, 0.0)
        assert wait == pytest.approx(0.1)
        s, wait = rl.try_acquire(s, P, 0.1)
        assert wait == 0

    def test_multiplicative_decrease_on_429(self) -> None:
        """A 429 halves the rate, empties the bucket and pauses one token's time."""
        s = rl.on_throttle(rl.RateState.initial(P, 0.0), P, 1.0)
        assert s.rate == 5 and s.tokens == 0 and s.throttles == 1
        assert rl.try_acquire(s, P, 1.0)[1] > 0

    def test_retry_after_blocks(self) -> None:
        """Retry-After blocks every call until it has passed."""
        s = rl.on_throttle(rl.RateState.initial(P, 0.0), P, 0.0, retry_after_s=30)
        assert rl.try_acquire(s, P, 10.0)[1] == pytest.approx(20.0)
        assert rl.try_acquire(s, P, 31.0)[1] == 0

    def test_additive_increase_and_bounds(self) -> None:
        """Successes raise the rate by about increase_rps per second of traffic, up to max."""
        s = rl.RateState(rate=4.0, tokens=0, updated_at=0)
        for i in range(4):  # one second at 4 req/s
            s = rl.on_success(s, P, 0.05, i * 0.25)
        assert 4.9 < s.rate < 5.1
        for i in range(10_000):
            s = rl.on_success(s, P, 0.05, 1 + i * 0.01)
        assert s.rate == P.max_rps
        for _ in range(50):
            s = rl.on_throttle(s, P, 200.0)
        assert s.rate == P.min_rps

    def test_slow_responses_slow_down(self) -> None:
        """An average latency above the threshold lowers the rate."""
        s = rl.RateState(rate=10.0, tokens=0, updated_at=0)
        for i in range(10):
            s = rl.on_success(s, P, 10.0, i)
        assert s.rate < 10.0

    def test_429s_of_requests_in_flight_together_cut_once(self) -> None:
        """Four requests sent before the cut, answered 429 together, halve the rate once; a
        request sent after the cut that is throttled again cuts again."""
        s = rl.RateState(rate=16.0, tokens=0, updated_at=0)
        s = rl.on_throttle(s, P, 10.0, sent_at=9.5)
        assert s.rate == 8.0
        for _ in range(3):
            s = rl.on_throttle(s, P, 10.1, sent_at=9.6)
        assert s.rate == 8.0 and s.throttles == 4
        s = rl.on_throttle(s, P, 12.0, sent_at=11.0)
        assert s.rate == 4.0

    def test_bucket_capped_at_one_second_once_throttled(self) -> None:
        """Before any 429 the bucket refills to the burst; after one, to a second's worth of the
        learned rate, so the pause between cycles does not end in a burst."""
        s = rl.RateState(rate=2.0, tokens=0, updated_at=0)
        assert rl.burst_cap(s, P) == P.burst
        s, _ = rl.try_acquire(s, P, 100.0)
        assert s.tokens == P.burst - 1
        t = rl.on_throttle(rl.RateState(rate=4.0, tokens=0, updated_at=0), P, 1.0)
        assert t.rate == 2.0 and rl.burst_cap(t, P) == 2.0
        t, _ = rl.try_acquire(t, P, 500.0)
        assert t.tokens <= 2.0

    def test_isolated_429s_do_not_cut_a_run_of_them_does(self) -> None:
        """With the shipped congestion test (5 of the last 20 answers), a 429 among successes
        pauses and empties the bucket but keeps the rate; the fifth 429 within 20 answers cuts."""
        d = rl.RatePolicy()
        assert (d.window, d.window_throttles) == (20, 5)
        s = rl.RateState(rate=20.0, tokens=3, updated_at=0)
        for i in range(4):  # four 429s, each after 3 successes
            for j in range(3):
                s = rl.on_success(s, d, 0.01, i + j * 0.1)
            s = rl.on_throttle(s, d, i + 0.5, sent_at=i + 0.4)
            assert s.rate >= 20.0 and s.tokens == 0 and s.decreased_at == -1.0
        assert s.throttles == 4 and s.recent.bit_count() == 4
        s = rl.on_throttle(s, d, 5.0, sent_at=4.9)
        assert s.rate == pytest.approx(10.0, rel=0.05) and s.decreased_at == 5.0
        assert rl.burst_cap(s, d) == pytest.approx(s.rate)

    def test_old_429s_leave_the_window(self) -> None:
        """Only the last ``window`` answers count: four 429s, then 20 other answers, then one
        more 429 is isolated again."""
        d = rl.RatePolicy()
        s = rl.RateState(rate=20.0, tokens=0, updated_at=0)
        for _ in range(4):
            s = rl.on_throttle(s, d, 0.0)
        for i in range(20):
            s = rl.on_answer(s, d) if i % 2 else rl.on_success(s, d, 0.01, 1.0)
        assert s.recent == 0
        s = rl.on_throttle(s, d, 2.0)
        assert s.decreased_at == -1.0

    @pytest.mark.parametrize(("p429", "floor_rps"), [(0.05, 20.0), (0.02, 30.0)])
    def test_random_429s_do_not_collapse_the_rate(self, p429: float, floor_rps: float) -> None:
        """A server answering a few per cent of requests 429 at random, whatever the rate (the
        emulator's default fault mix), leaves the rate well above the 10 req/s a 5,000-symbol
        cycle needs; cutting on every 429 would settle near 4.5 req/s."""
        rng = random.Random(7)
        assert _mean_rate_under_random_429s(rl.RatePolicy(), p429, rng) > floor_rps
        every = rl.RatePolicy(window_throttles=1)  # the old rule, for contrast
        assert _mean_rate_under_random_429s(every, p429, rng) < floor_rps / 2

    def test_a_hard_limit_is_found(self) -> None:
        """A server that answers 429 to everything above 8 req/s (a token bucket of its own)
        drives the rate down to about its limit, and keeps it there."""
        d = rl.RatePolicy(initial_rps=30, burst=30)
        s, now = rl.RateState.initial(d, 0.0), 0.0
        server_tokens, server_at, limit = 8.0, 0.0, 8.0
        throttled = answered = 0
        for _ in range(20_000):
            s, now = _acquire(s, d, now)
            server_tokens = min(8.0, server_tokens + (now - server_at) * limit)
            server_at = now
            answered += 1
            if server_tokens >= 1:
                server_tokens -= 1
                s = rl.on_success(s, d, 0.01, now + 0.01)
            else:
                throttled += 1
                s = rl.on_throttle(s, d, now + 0.01, sent_at=now)
            now += 0.01
        assert s.rate < 3 * limit
        assert throttled / answered < 0.25

    def test_budget(self) -> None:
        """The cycle budget is what the bucket holds plus one interval of refill."""
        s = rl.RateState(rate=5.0, tokens=2.0, updated_at=0)
        assert rl.cycle_budget(s, P, 10) == 52
        assert rl.cycles_to_cover(100, 52) == 2
        assert rl.headroom(52, 13) == 0.75
        assert rl.headroom(52, 100) == 0.0
        assert rl.headroom(0, 1) == 0.0


class TestBreaker:
    def test_opens_on_consecutive_failures_and_half_opens(self) -> None:
        """N failures in a row open it; after the cool-down one probe goes out; success closes."""
        b = brk.Breaker(window_start=0)
        for t in range(3):
            b = brk.on_result(b, B, False, float(t))
        assert b.state is brk.BreakerState.OPEN
        assert brk.before_call(b, B, 4.0)[1] is False
        b, ok = brk.before_call(b, B, 7.5)
        assert ok and b.state is brk.BreakerState.HALF_OPEN
        assert brk.before_call(b, B, 7.6)[1] is False  # one probe at a time
        b = brk.on_result(b, B, True, 8.0)
        assert b.state is brk.BreakerState.CLOSED and b.transitions == 3

    def test_failed_probe_reopens_with_longer_cooldown(self) -> None:
        """A failing probe reopens the breaker and doubles the cool-down (capped)."""
        b = brk.Breaker(state=brk.BreakerState.OPEN, opened_at=0, cooldown_s=5)
        b, _ = brk.before_call(b, B, 6)
        b = brk.on_result(b, B, False, 6.5)
        assert b.state is brk.BreakerState.OPEN and b.cooldown_s == 10
        b = brk.Breaker(state=brk.BreakerState.HALF_OPEN, cooldown_s=40, probe_started=1)
        assert brk.on_result(b, B, False, 2).cooldown_s == 40

    def test_opens_on_failure_rate(self) -> None:
        """Half the calls failing over the window (with enough calls) opens it."""
        b = brk.Breaker(window_start=0)
        for i in range(10):
            b = brk.on_result(b, B, i % 2 == 0, float(i))
        assert b.state is brk.BreakerState.OPEN

    def test_sparse_failures_stay_closed(self) -> None:
        """8% failures, never three in a row, keep it closed."""
        b = brk.Breaker(window_start=0)
        for i in range(500):
            b = brk.on_result(b, B, i % 12 != 0, i * 0.1)
        assert b.state is brk.BreakerState.CLOSED

    def test_window_resets(self) -> None:
        """Old failures age out with the window."""
        b = brk.Breaker(window_start=0)
        for i in range(4):
            b = brk.on_result(b, B, i % 2 == 0, float(i))
        b = brk.on_result(b, B, True, 100.0)
        assert b.window_calls == 1 and b.window_failures == 0


def _hammer(guard: YahooGuard, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await guard.acquire()
            guard.record("ok", 0.01)

    asyncio.run(go())
    os._exit(0)


class TestSharedGuard:
    def test_processes_share_one_budget(self, tmp_path: Path) -> None:
        """Two processes drawing tokens concurrently never exceed the bucket plus refill."""
        policy = rl.RatePolicy(initial_rps=20, min_rps=1, max_rps=20, burst=10, increase_rps=0.001)
        g = YahooGuard.create(str(tmp_path), policy, B)
        try:
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=_hammer, args=(g, 15)) for _ in range(2)]
            import time

            t0 = time.monotonic()
            for p in procs:
                p.start()
            for p in procs:
                p.join(20)
            elapsed = time.monotonic() - t0
            assert all(p.exitcode == 0 for p in procs)
            # 30 calls with a burst of 10 at 20/s need at least 1 s
            assert elapsed >= 0.9
        finally:
            g.close()

    async def test_open_breaker_refuses_everyone(self, tmp_path: Path) -> None:
        """Failures recorded anywhere open the breaker for every caller."""
        g = YahooGuard.create(str(tmp_path), P, B)
        try:
            for _ in range(3):
                await g.acquire()
                g.record("failed", 0.1)
            with pytest.raises(CircuitOpenError):
                await g.acquire()
            assert g.snapshot()[1].state is brk.BreakerState.OPEN
        finally:
            g.close()


class TestStatesAndPolicies:
    def test_breaker_state_is_the_gauge_value_and_names_its_event(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The enum is what the metrics gauge takes, and each state has its transition event."""
        from engine.observe import metrics
        from engine.source.guard import log_transition

        assert [metrics.breaker_value(s) for s in brk.BreakerState] == [0, 1, 2]
        caplog.set_level(logging.DEBUG, logger="engine.source.guard")
        for state in brk.BreakerState:
            log_transition(logging.WARNING, state, {"cooldown_s": 1.0})
        events = [r.getMessage() for r in caplog.records]
        assert events == ["breaker_closed", "breaker_half_open", "breaker_opened"]
        assert all(r.cooldown_s == 1.0 for r in caplog.records)

    def test_policies_follow_the_settings_and_their_defaults(self) -> None:
        """yahoo.rate_* / yahoo.breaker_* become the policies; defaults are the settings'."""
        from engine.config import YahooSettings
        from engine.source.guard import policies_from

        rate, breaker = policies_from(YahooSettings(rate_burst=7.0, breaker_min_calls=3))
        assert (rate.burst, breaker.min_calls) == (7.0, 3)
        assert policies_from(YahooSettings()) == (rl.RatePolicy(), brk.BreakerPolicy())

    def test_call_outcomes_compare_as_their_names(self) -> None:
        from engine.source.guard import CallOutcome

        assert [str(o) for o in CallOutcome] == ["ok", "throttled", "failed", "neutral"]
