"""Rate limiting and fault injection: every decision is a draw from a seeded RNG.

* :class:`RateLimiter` - a token bucket per client key (the peer IP): ``rate_limit_rps`` refill,
  ``rate_limit_burst`` capacity; an empty bucket means a plain-text 429. Pure: the caller passes
  the (monotonic) time.
* :class:`Faults` - per request, in this order: ``fault_429`` (any Yahoo endpoint: the "429
  storm" Yahoo answers non-browser clients with), then for the endpoints in ``fault_endpoints``
  ``fault_reset`` (abort the transport, no answer), ``fault_5xx`` (500/502/503/504) and
  ``fault_html`` (the "Will be right back" page), and ``fault_stall`` holds an otherwise normal
  request for ``stall_s`` seconds (the hung upstream a client must time out on); after the
  handler ``fault_truncate`` cuts a JSON body. Per v7 response ``fault_invalid_quote`` and
  ``fault_stale_quote`` damage one quote of the batch; per quote ``fault_poison_quote`` (and
  always for ``poison_symbols``) gives it an extreme value (:mod:`yahoo_emulator.poison`).
  ``fault_crumb_text`` makes getcrumb answer ``Too Many Requests`` as the crumb.

Draws are only taken for knobs that are non-zero, from ``random.Random`` seeded with ``seed``,
so a client that sends requests one at a time sees the same faults in the same places on every
run with the same configuration.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Final

from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.poison import poisoned_symbols

_STATUSES_5XX: Final = (500, 502, 503, 504)


class TokenBucket:
    """Classic token bucket; ``take`` refills for the elapsed time then spends one token."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.stamp = now

    def take(self, rate: float, burst: float, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(burst, self.tokens + elapsed * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Token buckets per client key, least recently used evicted beyond ``max_clients``."""

    def __init__(self, max_clients: int = 65_536) -> None:
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max = max_clients

    def allow(self, key: str, rate: float, burst: float, now: float) -> bool:
        if rate <= 0.0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(rate, burst, now)

    def reset(self) -> None:
        self._buckets.clear()


class Faults:
    """Seeded fault decisions. Not thread-safe: used from the emulator's event loop."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random()
        self._latency = random.Random()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self._rng.seed(seed * 1_000_003 + 11)
        self._latency.seed(seed * 7_919 + 5)

    def _hit(self, p: float) -> bool:
        return p > 0.0 and (p >= 1.0 or self._rng.random() < p)

    def latency_ms(self, cfg: EmulatorConfig) -> float:
        jitter = cfg.latency_jitter_ms
        return cfg.latency_ms + (self._latency.uniform(0.0, jitter) if jitter > 0 else 0.0)

    def outage(self, cfg: EmulatorConfig, endpoint: str) -> str | None:
        """Which whole-request fault hits this request: ``429``/``reset``/``5xx``/``html``."""
        if self._hit(cfg.fault_429):
            return "429"
        if endpoint not in cfg.fault_endpoints:
            return None
        if self._hit(cfg.fault_reset):
            return "reset"
        if self._hit(cfg.fault_5xx):
            return "5xx"
        if self._hit(cfg.fault_html):
            return "html"
        return None

    def stall_s(self, cfg: EmulatorConfig, endpoint: str) -> float:
        """How long this request hangs before it is answered (0: it does not)."""
        if endpoint not in cfg.fault_endpoints or not self._hit(cfg.fault_stall):
            return 0.0
        return cfg.stall_s

    def status_5xx(self) -> int:
        return self._rng.choice(_STATUSES_5XX)

    def truncate_at(self, cfg: EmulatorConfig, endpoint: str, length: int) -> int | None:
        """Where to cut a JSON body of ``length`` bytes, or None to leave it whole."""
        if length < 2 or endpoint not in cfg.fault_endpoints or not self._hit(cfg.fault_truncate):
            return None
        return max(1, min(length - 1, int(length * self._rng.uniform(0.1, 0.9))))

    def quote_damage(self, cfg: EmulatorConfig, n: int, *, regular: bool) -> list[tuple[int, str]]:
        """(row index, kind) pairs to spoil in a v7 batch of ``n`` quotes."""
        out: list[tuple[int, str]] = []
        if n <= 0:
            return out
        if self._hit(cfg.fault_invalid_quote):
            out.append((self._rng.randrange(n), self._rng.choice(cfg.invalid_kinds)))
        if regular and self._hit(cfg.fault_stale_quote):
            out.append((self._rng.randrange(n), f"stale:{cfg.stale_age_s}"))
        return out

    def poison_rows(self, cfg: EmulatorConfig, symbols: list[str]) -> list[tuple[int, str]]:
        """(row index, poison kind) for the quotes of ``symbols`` (one per row) to poison:
        every ``poison_symbols`` entry, then a ``fault_poison_quote`` share of the others."""
        fixed = poisoned_symbols(cfg) if cfg.poison_symbols else {}
        p = cfg.fault_poison_quote
        if not fixed and p <= 0.0:
            return []
        out: list[tuple[int, str]] = []
        for i, sym in enumerate(symbols):
            kind = fixed.get(sym)
            if kind is None and self._hit(p):
                kind = self._rng.choice(cfg.poison_kinds)
            if kind is not None:
                out.append((i, kind))
        return out

    def crumb_text(self, cfg: EmulatorConfig) -> bool:
        return self._hit(cfg.fault_crumb_text)
