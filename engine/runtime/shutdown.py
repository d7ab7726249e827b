"""One shutdown deadline, shared by the workers' phase and then the publisher's.

``scheduler.shutdown_grace_s`` is the TOTAL time from SIGTERM to exit (it must stay below the
container's or the unit's stop timeout, which SIGKILLs what is left). The workers get at most
:data:`WORKER_SHARE` of it to finish the cycle in flight; the publisher gets whatever remains to
drain the rings; a slice at the end (:meth:`ShutdownBudget.reap_s`) is kept for killing and
reaping a child that overran. Each child is told a grace a little shorter than its phase
(:meth:`ShutdownBudget.grace_s`), so it can stop on its own before the supervisor kills it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

WORKER_SHARE: Final = 0.5
"""Share of the budget the workers may use to finish the cycle in flight."""
MARGIN_S: Final = 1.0
"""At most this much of a phase is kept between a child's own grace and its kill."""
REAP_SHARE: Final = 0.1
"""Share of the budget (at most :data:`MARGIN_S`) kept at the end to kill and reap."""


class ShutdownBudget:
    """The deadline of one shutdown, ``total_s`` from its creation."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.total_s = max(0.0, total_s)
        self._clock = clock
        self.deadline = clock() + self.total_s

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self._clock())

    def reap_s(self) -> float:
        """Kept at the end of each phase to kill and reap a child that overran."""
        return min(MARGIN_S, self.total_s * REAP_SHARE)

    def workers_phase_s(self) -> float:
        """How long the workers may take (their join timeout)."""
        return min(self.total_s * WORKER_SHARE, self.remaining_s()) - self.reap_s()

    def publisher_phase_s(self) -> float:
        """How long the publisher may take: what is left but the final reap."""
        return self.remaining_s() - self.reap_s()

    @staticmethod
    def grace_s(phase_s: float) -> float:
        """The grace told to a child whose phase lasts ``phase_s``."""
        phase_s = max(0.0, phase_s)
        return phase_s - min(MARGIN_S, phase_s / 4)
