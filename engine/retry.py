"""Retry timing and the one retry loop (pure timing; randomness, sleep and clock injected).

:func:`backoff_s` is the engine's one backoff formula: ``ceiling = min(cap, base * 2**attempt)``
for attempt = 0, 1, 2, ..., then ``delay = ceiling * (1 - jitter + jitter * rand())``. With
``jitter = 1`` (the default) that is AWS "full jitter", ``uniform(0, ceiling)``: it spreads the
retries of many clients so a recovering server is not hit in lock-step. ``jitter = 0`` gives the
plain exponential ceiling, for schedules a test or an operator must be able to predict. A
server-provided Retry-After is a floor, itself capped at ``retry_after_cap_s``.

:func:`retry` runs an awaitable operation until it succeeds, the error is not retryable (decided
by the error's class, :attr:`engine.errors.IngestionError.retryable`), the attempts run out, or a
stop event is set.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from engine.errors import IngestionError, RateLimitedError

T = TypeVar("T")

RETRY_AFTER_CAP_S: Final = 300.0
"""Longest Retry-After honoured: a server asking for more is waited on for this long."""


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    jitter: float = 1.0,
    rand: Callable[[], float] = random.random,
    retry_after_s: float | None = None,
    retry_after_cap_s: float = RETRY_AFTER_CAP_S,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be in [0, 1]")
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt, 62)))
    delay = ceiling * (1.0 - jitter + jitter * rand())
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, max(cap_s, retry_after_cap_s))
    return delay


def full_jitter(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    rand: Callable[[], float],
    retry_after_s: float | None = None,
) -> float:
    """:func:`backoff_s` with full jitter (kept for the callers that name it so)."""
    return backoff_s(attempt, base_s=base_s, cap_s=cap_s, rand=rand, retry_after_s=retry_after_s)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How :func:`retry` waits: ``attempts`` in all (None: until it succeeds or is stopped)."""

    attempts: int | None = 3
    base_s: float = 0.25
    cap_s: float = 5.0
    jitter: float = 1.0

    def delay_s(
        self, attempt: int, rand: Callable[[], float], retry_after_s: float | None = None
    ) -> float:
        return backoff_s(
            attempt,
            base_s=self.base_s,
            cap_s=self.cap_s,
            jitter=self.jitter,
            rand=rand,
            retry_after_s=retry_after_s,
        )


def is_retryable(exc: BaseException) -> bool:
    """Whether waiting and trying again can help: declared by the error's class."""
    return isinstance(exc, IngestionError) and exc.retryable


async def retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    stop: asyncio.Event | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """``await operation()`` until it succeeds; re-raise the last error when giving up.

    ``on_retry(attempt, error, delay_s)`` is called before each wait (attempt counts from 1), so
    the caller logs and counts in its own words. With ``stop`` set during a wait, the last error
    is raised at once. Only ``Exception``s are retried; cancellation always propagates.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            if not retryable(exc) or (policy.attempts is not None and attempt >= policy.attempts):
                raise
            if stop is not None and stop.is_set():
                raise
            after = exc.retry_after_s if isinstance(exc, RateLimitedError) else None
            delay = policy.delay_s(attempt - 1, rand, after)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if stop is None:
                await sleep(delay)
            elif await _stopped_during(stop, delay, sleep):
                raise


async def _stopped_during(
    stop: asyncio.Event, delay_s: float, sleep: Callable[[float], Awaitable[None]]
) -> bool:
    """Wait ``delay_s`` or until ``stop`` is set; True if it was set."""
    if sleep is not asyncio.sleep:  # an injected clock: no real waiting on the event
        await sleep(delay_s)
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
    except TimeoutError:
        return False
    return True
