"""The Yahoo guard: one rate limiter and one circuit breaker shared by every process.

State lives in a small shared-memory segment owned by the supervisor; each read-modify-write
runs under ``flock`` on a lock file. ``flock`` rather than a semaphore because the kernel releases
it when its holder dies: a worker SIGKILLed inside the (microsecond) critical section cannot wedge
the others. Each process opens the lock file itself (a descriptor inherited through fork would be
shared, and flock locks belong to open file descriptions).

Every Yahoo call - quotes, cookie, crumb, earnings, fundamentals - goes through :meth:`acquire`
(waits for a token; raises :class:`~engine.errors.CircuitOpenError` while the breaker is open)
and reports its outcome with :meth:`record`. The decisions are the pure functions of
:mod:`engine.source.ratelimit` and :mod:`engine.source.breaker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from typing import Final, Protocol, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from engine.config import YahooSettings
from engine.errors import CircuitOpenError
from engine.observe import metrics
from engine.source import breaker as brk
from engine.source import ratelimit as rl

log = logging.getLogger(__name__)


class CallOutcome(enum.StrEnum):
    """How a Yahoo call went, for the limiter and the breaker."""

    OK = "ok"
    THROTTLED = "throttled"  # 429 / Too Many Requests: the rate limiter slows down
    FAILED = "failed"  # server-side trouble: counts against the breaker
    NEUTRAL = "neutral"  # our own fault (4xx other than 429, 401): neither


_RATE_FIELDS: Final = tuple(rl.RateState.__struct_fields__)
_BRK_FIELDS: Final = tuple(brk.Breaker.__struct_fields__)
_INT_FIELDS: Final = frozenset({"throttles", "consecutive", "window_calls", "window_failures",
                                "transitions", "recent"})  # fmt: skip
_SLOTS: Final = len(_RATE_FIELDS) + len(_BRK_FIELDS)


def _typed(name: str, value: float) -> float | int:
    return int(value) if name in _INT_FIELDS or name == "state" else value


class Guard(Protocol):
    async def acquire(self) -> None: ...

    def record(
        self, outcome: CallOutcome, latency_s: float, retry_after_s: float | None = None
    ) -> None: ...


class NullGuard:
    """No limits (unit tests, one-off tools)."""

    async def acquire(self) -> None:
        return None

    def record(
        self, outcome: CallOutcome, latency_s: float, retry_after_s: float | None = None
    ) -> None:
        return None


class YahooGuard:
    def __init__(
        self,
        shm: shared_memory.SharedMemory,
        lock_path: str,
        rate_policy: rl.RatePolicy,
        breaker_policy: brk.BreakerPolicy,
        *,
        owner: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shm = shm
        buf = shm.buf
        assert buf is not None
        self._slots: npt.NDArray[np.float64] = np.ndarray((_SLOTS,), dtype="<f8", buffer=buf)
        self.lock_path = lock_path
        self.rate_policy = rate_policy
        self.breaker_policy = breaker_policy
        self._owner = owner
        self._clock = clock
        self._fd: int | None = None
        self._fd_pid = 0
        self._closed = False

    @classmethod
    def create(
        cls,
        lock_dir: str,
        rate_policy: rl.RatePolicy,
        breaker_policy: brk.BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> YahooGuard:
        shm = shared_memory.SharedMemory(create=True, size=8 * _SLOTS)
        lock_path = os.path.join(lock_dir, f"yahoo-guard-{shm.name.strip('/')}.lock")
        with open(lock_path, "a"):
            pass
        g = cls(shm, lock_path, rate_policy, breaker_policy, owner=True, clock=clock)
        g._slots[:] = 0
        g._store(rl.RateState.initial(rate_policy, clock()), brk.Breaker(window_start=clock()))
        return g

    # -- shared state -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _load(self) -> tuple[rl.RateState, brk.Breaker]:
        v = self._slots.tolist()
        n = len(_RATE_FIELDS)
        rate = msgspec.convert(
            {f: _typed(f, x) for f, x in zip(_RATE_FIELDS, v[:n], strict=True)}, rl.RateState
        )
        breaker = msgspec.convert(
            {f: _typed(f, x) for f, x in zip(_BRK_FIELDS, v[n:], strict=True)}, brk.Breaker
        )
        return rate, breaker

    def _store(self, rate: rl.RateState, breaker: brk.Breaker) -> None:
        n = len(_RATE_FIELDS)
        self._slots[:n] = [float(getattr(rate, f)) for f in _RATE_FIELDS]
        self._slots[n:] = [float(getattr(breaker, f)) for f in _BRK_FIELDS]

    def snapshot(self) -> tuple[rl.RateState, brk.Breaker]:
        with self._locked():
            return self._load()

    # -- the guard ----------------------------------------------------------------------------

    async def acquire(self) -> None:
        waited = 0.0
        while True:
            now = self._clock()
            with self._locked():
                rate, b = self._load()
                b2, allowed = brk.before_call(b, self.breaker_policy, now)
                if not allowed:
                    self._store(rate, b2)
                    raise CircuitOpenError(
                        "Yahoo circuit breaker is open: calls paused after repeated failures"
                    )
                rate2, wait = rl.try_acquire(rate, self.rate_policy, now)
                self._store(rate2, b2)
            if b2.state != b.state:
                log_transition(logging.WARNING, b2.state, {"cooldown_s": b2.cooldown_s})
            if wait <= 0:
                metrics.record_rate_limit_wait(waited)
                return
            step = min(wait, 1.0)
            waited += step
            await asyncio.sleep(step)

    def record(
        self, outcome: CallOutcome, latency_s: float, retry_after_s: float | None = None
    ) -> None:
        now = self._clock()
        with self._locked():
            rate, b = self._load()
            new_rate, new_b = rate, b
            if outcome == CallOutcome.OK:
                new_rate = rl.on_success(rate, self.rate_policy, latency_s, now)
                new_b = brk.on_result(b, self.breaker_policy, True, now)
            elif outcome == CallOutcome.THROTTLED:
                new_rate = rl.on_throttle(
                    rate, self.rate_policy, now, retry_after_s, sent_at=now - latency_s
                )
            else:  # an answer, but neither a success nor a 429
                new_rate = rl.on_answer(rate, self.rate_policy)
                if outcome == CallOutcome.FAILED:
                    new_b = brk.on_result(b, self.breaker_policy, False, now)
            self._store(new_rate, new_b)
        if outcome == CallOutcome.THROTTLED:
            metrics.record_throttle()
            cut = new_rate.decreased_at != rate.decreased_at
            log.log(  # an isolated 429 is retried, not obeyed: no warning for it
                logging.WARNING if cut else logging.INFO,
                "rate_limited",
                extra={
                    "rate_cut": cut,
                    "rate_rps": round(new_rate.rate, 3),
                    "previous_rps": round(rate.rate, 3),
                    "retry_after_s": retry_after_s,
                    "throttles": new_rate.throttles,
                },
            )
        if new_b.state != b.state:
            level = logging.INFO if new_b.state == brk.BreakerState.CLOSED else logging.ERROR
            log_transition(
                level, new_b.state, {"cooldown_s": new_b.cooldown_s, "from": b.state.name}
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        del self._slots
        self._shm.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)


P = TypeVar("P", rl.RatePolicy, brk.BreakerPolicy)


def log_transition(level: int, state: brk.BreakerState, context: dict[str, object]) -> None:
    """Log the breaker's transition into ``state`` under that state's event name."""
    if state is brk.BreakerState.OPEN:
        log.log(level, "breaker_opened", extra=context)
    elif state is brk.BreakerState.HALF_OPEN:
        log.log(level, "breaker_half_open", extra=context)
    else:
        log.log(level, "breaker_closed", extra=context)


def _policy(tp: type[P], settings: YahooSettings, prefix: str) -> P:
    """The policy's fields from the settings named ``prefix + field`` (the others default)."""
    names = [f for f in tp.__struct_fields__ if hasattr(settings, prefix + f)]
    return tp(**{f: getattr(settings, prefix + f) for f in names})


def policies_from(settings: YahooSettings) -> tuple[rl.RatePolicy, brk.BreakerPolicy]:
    """``yahoo.rate_*`` and ``yahoo.breaker_*`` as the limiter's and the breaker's policies."""
    rate = msgspec.structs.replace(
        _policy(rl.RatePolicy, settings, "rate_"), retry_after_max_s=settings.retry_after_max_s
    )
    return rate, _policy(brk.BreakerPolicy, settings, "breaker_")
