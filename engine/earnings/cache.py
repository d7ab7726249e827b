"""Redis side of the earnings sync: flags and the fundamentals hashes.

``earnings_flag:{SYMBOL}`` (prefix ``earnings.flag_key_prefix``) - a JSON string, TTL
``earnings.flag_ttl_s`` (24 h), one per symbol reporting between today and today + 7 days
(the earliest event if it has several)::

    {"schema_version": 1, "symbol": "AAPL", "event_date": "2026-12-01",
     "event_time": "2026-12-01T21:30:00Z", "timing": "AMC", "eps_estimate": 1.52,
     "company_name": "Apple Inc.", "source": "yahoo_calendar"}

The value holds nothing time-of-sync dependent, so a repeated sync writes the same bytes (and
renews the TTL). After a *complete* calendar fetch, flags of symbols no longer in the window
(rescheduled away) are deleted (``SCAN MATCH prefix*``; the prefix is restricted to
``[A-Za-z0-9_:-]`` so it holds no glob characters).

``earnings_analysis:{SYMBOL}`` - a hash of the basic fundamentals (strings; absent fields are
left out rather than written empty), replaced as a whole in one ``MULTI``: ``DEL``, ``HSET``,
``EXPIRE`` (``earnings.analysis_ttl_s``; 0 = none). Fields: ``symbol``, ``fetched_at`` (ISO-8601
UTC), ``fetched_at_epoch``, ``source``, ``available`` (``0`` when Yahoo has no fundamentals for
the symbol), ``eps_trailing``, ``eps_forward``, ``revenue``, ``gross_margin``,
``operating_margin``, ``profit_margin`` (fractions), ``currency``, ``latest_quarter``,
``latest_quarter_eps_estimate``, ``latest_quarter_eps_actual``, ``schema_version``.

Symbols in key names are escaped like the quote cache's (:func:`engine.sinks.cache.cache_key`).
The client is :func:`engine.deps.redis.client`'s; every Redis failure is raised as
:class:`~engine.errors.CacheError` through :func:`engine.deps.redis.translate` (the sync is
retried).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager, suppress
from typing import Any, Final

import msgspec

from engine.config import EarningsSettings, RedisSettings
from engine.deps import redis as redis_dep
from engine.earnings.models import EarningsEvent, Fundamentals, project
from engine.errors import ConfigError
from engine.sinks.cache import cache_key

SCHEMA_VERSION: Final = 1
_PREFIX_RE: Final = re.compile(r"^[A-Za-z0-9_:\-]{1,64}$")
_SCAN_COUNT: Final = 1000


class FlagValue(msgspec.Struct, frozen=True):
    schema_version: int
    symbol: str
    event_date: dt.date
    event_time: dt.datetime
    timing: str
    eps_estimate: float | None
    company_name: str | None
    source: str


def flag_value(e: EarningsEvent) -> FlagValue:
    return project(e, FlagValue, schema_version=SCHEMA_VERSION)


def flags_for(events: Iterable[EarningsEvent]) -> dict[str, FlagValue]:
    """One flag per symbol: its earliest event."""
    first: dict[str, EarningsEvent] = {}
    for e in events:
        cur = first.get(e.symbol)
        if cur is None or e.event_date < cur.event_date:
            first[e.symbol] = e
    return {s: flag_value(e) for s, e in sorted(first.items())}


def _fmt(v: float | None) -> str | None:
    return None if v is None else repr(float(v))


def analysis_fields(f: Fundamentals) -> dict[str, str]:
    """The hash of one symbol's fundamentals (absent values left out)."""
    fetched = f.fetched_at.astimezone(dt.UTC)
    values: dict[str, str | None] = {
        "schema_version": str(SCHEMA_VERSION),
        "symbol": f.symbol,
        "fetched_at": fetched.isoformat().replace("+00:00", "Z"),
        "fetched_at_epoch": f"{fetched.timestamp():.3f}",
        "source": f.source,
        "available": "1" if f.available else "0",
        "eps_trailing": _fmt(f.eps_trailing),
        "eps_forward": _fmt(f.eps_forward),
        "revenue": _fmt(f.revenue),
        "gross_margin": _fmt(f.gross_margin),
        "operating_margin": _fmt(f.operating_margin),
        "profit_margin": _fmt(f.profit_margin),
        "currency": f.currency,
        "latest_quarter": f.latest_quarter,
        "latest_quarter_eps_estimate": _fmt(f.latest_quarter_eps_estimate),
        "latest_quarter_eps_actual": _fmt(f.latest_quarter_eps_actual),
    }
    return {k: v for k, v in values.items() if v is not None}


_encoder: Final = msgspec.json.Encoder()


class EarningsCache:
    """Owner of a Redis client; ``async with EarningsCache.connect(redis, earnings) as c``."""

    def __init__(self, client: Any, settings: EarningsSettings) -> None:
        for name in ("flag_key_prefix", "analysis_key_prefix"):
            if not _PREFIX_RE.match(getattr(settings, name)):
                raise ConfigError(
                    f"earnings.{name} must match {_PREFIX_RE.pattern}", key=f"earnings.{name}"
                )
        self._r = client
        self.settings = settings
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, redis: RedisSettings, settings: EarningsSettings
    ) -> AsyncIterator[EarningsCache]:
        async with aclosing(cls(redis_dep.client(redis), settings)) as cache:
            yield cache

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with suppress(*redis_dep.ERRORS):
                await self._r.aclose()

    def flag_key(self, symbol: str) -> str:
        return cache_key(self.settings.flag_key_prefix, symbol)

    def analysis_key(self, symbol: str) -> str:
        return cache_key(self.settings.analysis_key_prefix, symbol)

    async def set_flags(self, flags: Mapping[str, FlagValue]) -> int:
        if not flags:
            return 0
        ttl = self.settings.flag_ttl_s
        with redis_dep.translate("writing earnings flags failed"):
            async with self._r.pipeline(transaction=False) as pipe:
                for symbol, value in flags.items():
                    pipe.set(self.flag_key(symbol), _encoder.encode(value), ex=ttl)
                await pipe.execute()
        return len(flags)

    async def clear_stale_flags(self, keep: Iterable[str]) -> int:
        """Delete the flags of symbols not in ``keep``; returns how many."""
        wanted = {self.flag_key(s).encode() for s in keep}
        stale: list[bytes] = []
        with redis_dep.translate("clearing earnings flags failed"):
            async for key in self._r.scan_iter(
                match=self.settings.flag_key_prefix + "*", count=_SCAN_COUNT
            ):
                if key not in wanted:
                    stale.append(key)
            if stale:
                await self._r.delete(*stale)
        return len(stale)

    async def fresh_analyses(self, symbols: Sequence[str], since: dt.datetime) -> set[str]:
        """The ``symbols`` whose fundamentals hash was written at or after ``since``."""
        if not symbols:
            return set()
        with redis_dep.translate("reading earnings analyses failed"):
            async with self._r.pipeline(transaction=False) as pipe:
                for s in symbols:
                    pipe.hget(self.analysis_key(s), "fetched_at_epoch")
                stamps = await pipe.execute()
        cutoff = since.timestamp()
        out: set[str] = set()
        for s, raw in zip(symbols, stamps, strict=True):
            try:
                if raw is not None and float(raw) >= cutoff:
                    out.add(s)
            except ValueError:
                continue
        return out

    async def write_analyses(self, items: Sequence[Fundamentals]) -> int:
        if not items:
            return 0
        ttl = self.settings.analysis_ttl_s
        with redis_dep.translate("writing earnings analyses failed"):
            async with self._r.pipeline(transaction=True) as pipe:
                for f in items:
                    key = self.analysis_key(f.symbol)
                    pipe.delete(key)
                    pipe.hset(key, mapping=analysis_fields(f))
                    if ttl:
                        pipe.expire(key, ttl)
                await pipe.execute()
        return len(items)
