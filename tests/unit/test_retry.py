"""engine.retry: the one backoff formula and the one retry loop (sleep and randomness injected)."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import PublishError, RateLimitedError, StoreConfigError, StoreError
from engine.retry import RetryPolicy, backoff_s, full_jitter, is_retryable, retry


class TestFullJitter:
    def test_bounds_grow_exponentially_and_cap(self) -> None:
        """The ceiling doubles per attempt up to the cap."""
        one = lambda: 1.0  # noqa: E731
        assert [full_jitter(a, base_s=0.5, cap_s=3.0, rand=one) for a in range(5)] == [
            0.5, 1.0, 2.0, 3.0, 3.0,
        ]  # fmt: skip

    def test_jitter_uses_random_fraction(self) -> None:
        """The delay is the random fraction of the ceiling (full jitter)."""
        assert full_jitter(2, base_s=1.0, cap_s=100, rand=lambda: 0.25) == 1.0

    def test_retry_after_is_a_floor(self) -> None:
        """A server's Retry-After is honoured even above the cap."""
        assert full_jitter(0, base_s=1, cap_s=2, rand=lambda: 0.0, retry_after_s=30) == 30

    def test_negative_attempt(self) -> None:
        """Attempts count from zero."""
        with pytest.raises(ValueError):
            full_jitter(-1, base_s=1, cap_s=1, rand=lambda: 0.5)


class TestBackoff:
    def test_no_jitter_is_the_exponential_ceiling(self) -> None:
        """jitter=0 gives the predictable schedule, whatever the random source says."""
        assert [backoff_s(a, base_s=1, cap_s=5, jitter=0, rand=lambda: 0.3) for a in range(4)] == [
            1, 2, 4, 5,
        ]  # fmt: skip

    def test_partial_jitter_keeps_a_floor(self) -> None:
        """jitter=0.5 waits between half the ceiling and the ceiling."""
        assert backoff_s(1, base_s=1, cap_s=10, jitter=0.5, rand=lambda: 0.0) == 1.0
        assert backoff_s(1, base_s=1, cap_s=10, jitter=0.5, rand=lambda: 1.0) == 2.0

    def test_retry_after_is_capped(self) -> None:
        """A server asking for an hour is waited on for the cap, not an hour."""
        assert backoff_s(0, base_s=1, cap_s=2, rand=lambda: 0, retry_after_s=3600) == 300.0
        assert backoff_s(0, base_s=1, cap_s=2, rand=lambda: 0, retry_after_s=3600,
                         retry_after_cap_s=60) == 60.0  # fmt: skip

    def test_bad_jitter(self) -> None:
        """Jitter is a fraction."""
        with pytest.raises(ValueError):
            backoff_s(0, base_s=1, cap_s=1, jitter=1.5)


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class TestRetry:
    @staticmethod
    def sleeps() -> tuple[list[float], object]:
        waited: list[float] = []

        async def sleep(s: float) -> None:
            waited.append(s)

        return waited, sleep

    async def test_retries_retryable_errors_until_success(self) -> None:
        """Two retryable failures, then success: three calls, two waits on the schedule."""
        waited, sleep = self.sleeps()
        op = Flaky(StoreError("down"), PublishError("no ack"))
        policy = RetryPolicy(attempts=5, base_s=0.1, cap_s=1, jitter=0)
        assert await retry(op, policy, sleep=sleep) == "ok"  # type: ignore[arg-type]
        assert op.calls == 3
        assert waited == [0.1, 0.2]

    async def test_not_retryable_by_class_raises_at_once(self) -> None:
        """A class that declares itself not retryable is raised on the first failure."""
        op = Flaky(StoreConfigError("bad password"))
        with pytest.raises(StoreConfigError):
            await retry(op, RetryPolicy(attempts=5))
        assert op.calls == 1

    async def test_foreign_errors_are_not_retried(self) -> None:
        """Only the engine's own retryable errors are retried: a bug surfaces at once."""
        op = Flaky(KeyError("bug"))
        with pytest.raises(KeyError):
            await retry(op, RetryPolicy(attempts=5))
        assert op.calls == 1

    async def test_gives_up_after_the_attempts(self) -> None:
        """The last error is re-raised after ``attempts`` calls; on_retry saw every wait."""
        waited, sleep = self.sleeps()
        seen: list[int] = []
        op = Flaky(*(StoreError(str(i)) for i in range(5)))
        with pytest.raises(StoreError, match="2"):
            await retry(op, RetryPolicy(attempts=3, jitter=0), sleep=sleep,  # type: ignore[arg-type]
                        on_retry=lambda n, e, d: seen.append(n))  # fmt: skip
        assert op.calls == 3 and seen == [1, 2] and len(waited) == 2

    async def test_retry_after_is_honoured(self) -> None:
        """A 429 with Retry-After waits at least that long."""
        waited, sleep = self.sleeps()
        op = Flaky(RateLimitedError(retry_after_s=7.0))
        policy = RetryPolicy(attempts=2, base_s=0.1, cap_s=1)
        await retry(op, policy, sleep=sleep, rand=lambda: 0.5)  # type: ignore[arg-type]
        assert waited == [7.0]

    async def test_stop_event_ends_the_wait(self) -> None:
        """A stop set while waiting raises the last error at once instead of waiting on."""
        stop = asyncio.Event()
        op = Flaky(StoreError("down"), StoreError("still down"))
        task = asyncio.create_task(
            retry(op, RetryPolicy(attempts=None, base_s=30, jitter=0), stop=stop)
        )
        await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(StoreError, match="down"):
            await asyncio.wait_for(task, 2)
        assert op.calls == 1

    def test_is_retryable(self) -> None:
        """Retryability comes from the class."""
        assert is_retryable(StoreError("x")) and not is_retryable(StoreConfigError("x"))
        assert not is_retryable(ValueError("x"))
