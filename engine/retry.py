"""Retry timing: exponential backoff with full jitter (pure; randomness injected).

``delay = uniform(0, min(cap, base * 2**attempt))`` for attempt = 0, 1, 2, ... (AWS "full
jitter"): spreads retries of many clients so a recovering Yahoo is not hit in lock-step.
A server-provided Retry-After, when present, is a floor.
"""

from __future__ import annotations

from collections.abc import Callable


def full_jitter(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    rand: Callable[[], float],
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt, 62)))
    delay = rand() * ceiling
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, max(cap_s, retry_after_s))
    return delay
