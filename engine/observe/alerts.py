"""The engine's own alerting hook: fetch failure rate over a sliding window (pure; clock passed in).

After every cycle the supervisor adds (symbols requested, symbols whose batch failed after all
retries); when the failure rate over the last ``window_s`` (5 min) exceeds ``threshold`` (5 %)
it logs one ``failure_rate_high`` error event and sets ``ingestion_failure_rate_alert`` to 1 for
the alert rules; one ``failure_rate_recovered`` event when it falls back.
"""

from __future__ import annotations

from collections import deque
from typing import Literal


class FailureRateWindow:
    def __init__(self, window_s: float = 300.0, threshold: float = 0.05) -> None:
        self.window_s = window_s
        self.threshold = threshold
        self._samples: deque[tuple[float, int, int]] = deque()
        self.alerting = False

    def add(self, now: float, requested: int, failed: int) -> None:
        self._samples.append((now, requested, failed))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        requested = sum(r for _, r, _ in self._samples)
        failed = sum(f for _, _, f in self._samples)
        return failed / requested if requested else 0.0

    def check(self, now: float) -> Literal["raised", "cleared"] | None:
        """The transition, if any, after the latest sample."""
        high = self.rate(now) > self.threshold
        if high and not self.alerting:
            self.alerting = True
            return "raised"
        if not high and self.alerting:
            self.alerting = False
            return "cleared"
        return None
