"""The last published identity per symbol, restored at start so a restart publishes nothing twice.

A quote's identity is (symbol, market time, volume); the workers skip a quote whose identity is
the last one written for its symbol (:class:`engine.ringbuf.LastSeenTable`). That table lives in
shared memory and starts empty with the engine, so without this a restarted engine would see
every symbol as changed and re-publish the same quotes - which JetStream no longer drops once its
duplicate window has passed.

Both PostgreSQL (the quote table) and Redis (``market:{SYMBOL}``) are written by the publisher
only after a batch was acknowledged by JetStream or kept in the outbox, so what they hold was
published (or will be, by the outbox replay). :func:`restore` reads whichever is enabled (both
at once), keeps the greater (market time, volume) per symbol, and the supervisor seeds the table
with it before the first cycle. It is bounded (:data:`RESTORE_BUDGET_S`) and never fails the
start: a source that is down or slow is logged (``identity_restore_failed``) and skipped - the
engine then merely re-publishes some unchanged quotes once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Final

import msgspec

from engine.config import Config, PostgresSettings, RedisSettings
from engine.deps import postgres as pg
from engine.deps import redis as rd
from engine.ringbuf import LastSeenTable
from engine.sinks.cache import cache_key
from engine.sinks.partitions import quote_ident

log = logging.getLogger(__name__)

Identity = tuple[int, int]
"""(market time in epoch seconds, volume) of the last quote published for a symbol."""

RESTORE_BUDGET_S: Final = 10.0
"""At most this long at start (per source, both run at once)."""
LOOKBACK_S: Final = 7 * 86_400
"""How far back the quote table is searched: covers weekends and holidays (a closed market
repeats its last quote), while each symbol stays one backward index probe."""
MGET_CHUNK: Final = 1_000


class _Cached(msgspec.Struct):
    market_time: int | None = None
    volume: int | None = None


_decoder: Final = msgspec.json.Decoder(_Cached)


async def from_postgres(
    settings: PostgresSettings, symbols: Sequence[str], *, now_s: float
) -> dict[str, Identity]:
    """The newest row per symbol of the quote table (within :data:`LOOKBACK_S`)."""
    tbl = quote_ident(settings.table)
    sql = (
        "SELECT s.symbol, extract(epoch FROM q.market_time)::bigint AS t, q.volume "  # noqa: S608
        "FROM unnest($1::text[]) AS s(symbol) CROSS JOIN LATERAL ("
        f"SELECT market_time, volume FROM {tbl} "  # the identifier is quoted
        "WHERE symbol = s.symbol AND market_time >= to_timestamp($2) "
        "ORDER BY market_time DESC LIMIT 1) AS q"
    )
    conn = await pg.connect(settings, purpose="identity")
    try:
        with pg.translate("cannot read the last stored quotes"):
            if await conn.fetchval("SELECT to_regclass($1)", tbl) is None:
                return {}  # first start: the table is created by the publisher's migration
            rows = await conn.fetch(sql, list(symbols), now_s - LOOKBACK_S)
    finally:
        await conn.close()
    return {r["symbol"]: (int(r["t"]), int(r["volume"] or 0)) for r in rows}


async def from_redis(settings: RedisSettings, symbols: Sequence[str]) -> dict[str, Identity]:
    """The cached quote per symbol (``{key_prefix}{SYMBOL}``, MGET in chunks)."""
    out: dict[str, Identity] = {}
    client = rd.client(settings)
    try:
        for i in range(0, len(symbols), MGET_CHUNK):
            chunk = symbols[i : i + MGET_CHUNK]
            keys = [cache_key(settings.key_prefix, s) for s in chunk]
            with rd.translate("cannot read the cached quotes"):
                values = await client.mget(keys)
            for sym, raw in zip(chunk, values, strict=True):
                ident = _identity(raw)
                if ident is not None:
                    out[sym] = ident
    finally:
        await client.aclose()
    return out


def _identity(raw: bytes | str | None) -> Identity | None:
    if raw is None:
        return None
    try:
        doc = _decoder.decode(raw)
    except msgspec.DecodeError:  # not our JSON: nothing known
        return None
    if doc.market_time is None:
        return None
    return doc.market_time, doc.volume or 0


async def _bounded(source: str, work: Awaitable[dict[str, Identity]]) -> dict[str, Identity]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(RESTORE_BUDGET_S):
            got = await work
    except Exception as exc:  # a start-up optimisation must never fail the start
        log.warning(
            "identity_restore_failed",
            extra={"source": source, "error_kind": type(exc).__name__, "error": str(exc)[:300]},
        )
        return {}
    log.info(
        "identity_restored",
        extra={"source": source, "symbols": len(got),
               "duration_s": round(time.monotonic() - started, 3)},
    )  # fmt: skip
    return got


async def restore(
    config: Config, symbols: Sequence[str], *, now_s: float | None = None
) -> dict[str, Identity]:
    """The last published identity per symbol, from every enabled source (the greater wins);
    empty when ``workers.skip_unchanged`` is off (nothing would use it)."""
    if not config.workers.skip_unchanged or not symbols:
        return {}
    now = time.time() if now_s is None else now_s
    work: list[Awaitable[dict[str, Identity]]] = []
    if config.postgres.enabled:
        work.append(_bounded("postgres", from_postgres(config.postgres, symbols, now_s=now)))
    if config.redis.enabled:
        work.append(_bounded("redis", from_redis(config.redis, symbols)))
    merged: dict[str, Identity] = {}
    for got in await asyncio.gather(*work):
        for sym, ident in got.items():
            if ident > merged.get(sym, (0, 0)):
                merged[sym] = ident
    return merged


def seed(table: LastSeenTable, index: dict[str, int], identities: dict[str, Identity]) -> int:
    """Write ``identities`` into the rows of ``table`` (``index``: symbol -> row); how many."""
    n = 0
    for sym, (t, v) in identities.items():
        i = index.get(sym)
        if i is not None:
            table.times[i] = t
            table.volumes[i] = v
            n += 1
    return n
