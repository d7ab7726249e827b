"""Benchmark of the storage tier: PostgreSQL COPY path and the Redis cache (not run in CI).

    .venv/bin/python bench/store_bench.py [--dsn DSN] [--redis-url URL] [--rows N]

Prints one table:

* ``store: bulk``      - rows/s through ``QuoteStore`` into the daily-partitioned table, batches
                         of 10,000 new rows (no duplicates: the writer's plain-COPY path).
* ``store: replay``    - the same rows again from a fresh store (every row a duplicate: the
                         COPY to staging -> INSERT ... ON CONFLICT DO NOTHING path).
* ``store: cycle``     - one 5,000-quote cycle: time in ``submit()`` (the caller's cost), the
                         rows -> tuples conversion (event-loop CPU), and the writer's whole batch.
* ``store: repeat``    - the same cycle again (after-hours repeats: skipped in memory).
* ``raw: ...``         - the insert strategies compared with plain asyncpg, 5,000-row batches:
                         plain COPY (no de-duplication: fails on a repeat), COPY into a temporary
                         staging table + INSERT ... ON CONFLICT DO NOTHING (the one used), and
                         INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING.
* ``redis: cycle``     - ``QuoteCache.write_latest`` of 5,000 symbols (one pipeline, 250 keys per
                         script call), median of 10; and the same with one script call per key.

Tables and keys are unique to the run and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from engine.config import PostgresSettings, RedisSettings, Secret
from engine.quote import Quote
from engine.sinks import cache as cache_mod
from engine.sinks.cache import QuoteCache
from engine.sinks.store import COLUMNS, QuoteStore, RowEncoder, quote_row

CYCLE = 5000


def make_cycle(n: int, base: int, symbols: int = CYCLE) -> list[Quote]:
    ns = time.time_ns()
    return [
        Quote(
            symbol=f"S{i:05d}",
            price=100.0 + i / 100,
            volume=1000 + i,
            change_percent=0.5,
            market_time=base + n,
            market_state="REGULAR",
            currency="USD",
            exchange="NMS",
            source="bench",
            ingest_time_ns=ns,
            correlation_id=str(uuid.uuid4()),
        )
        for i in range(symbols)
    ]


async def bench_store(dsn: str, rows: int) -> list[tuple[str, str]]:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    out: list[tuple[str, str]] = []
    base = int(time.time()) - 3600
    with tempfile.TemporaryDirectory() as spill:
        settings = PostgresSettings(
            dsn=Secret(dsn), table=table, spill_dir=spill, max_buffered_rows=rows * 2
        )
        try:
            async with QuoteStore.connect(settings, batch_rows=10_000) as store:
                cycles = [make_cycle(n, base) for n in range(rows // CYCLE)]
                t0 = time.perf_counter()
                for c in cycles:
                    store.submit(c)
                assert await store.flush(300)
                el = time.perf_counter() - t0
                out.append(("store: bulk", f"{rows / el:,.0f} rows/s ({rows:,} rows, {el:.2f} s)"))

                cyc = make_cycle(10_000, base)
                t0 = time.perf_counter()
                store.submit(cyc)
                submit_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                encode = RowEncoder().row  # what the writer does per batch
                converted = [encode(q) for q in cyc]
                conv_s = time.perf_counter() - t0
                assert all(converted)
                assert await store.flush(30)
                batch_s = store.stats.last_batch_s or 0.0
                out.append(
                    (
                        "store: cycle 5,000",
                        f"submit {submit_s * 1e3:.2f} ms; convert {conv_s * 1e3:.1f} ms; "
                        f"batch written in {batch_s * 1e3:.1f} ms",
                    )
                )
                store.submit(cyc)
                assert await store.flush(30)
                out.append(
                    (
                        "store: repeat cycle",
                        f"batch {(store.stats.last_batch_s or 0) * 1e3:.1f} ms "
                        "(all skipped as already stored)",
                    )
                )
            # a restarted engine replaying rows already stored: conflicts -> staging path
            async with QuoteStore.connect(settings, batch_rows=10_000) as store:
                t0 = time.perf_counter()
                for c in cycles:
                    store.submit(c)
                assert await store.flush(300)
                el = time.perf_counter() - t0
                assert store.stats.rows_written == 0
                out.append(("store: replay (all dup)", f"{rows / el:,.0f} rows/s, staged"))
        finally:
            conn = await asyncpg.connect(dsn)
            await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
            await conn.execute("DELETE FROM ingestion_schema_migrations WHERE table_name=$1", table)
            await conn.close()
    out += await bench_raw(dsn, rows, base)
    return out


async def bench_raw(dsn: str, rows: int, base: int) -> list[tuple[str, str]]:
    """The three insert strategies, same partitioned table shape, 5,000-row batches."""
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    settings = PostgresSettings(dsn=Secret(dsn), table=table)
    out: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as spill:
        settings = PostgresSettings(dsn=Secret(dsn), table=table, spill_dir=spill)
        async with QuoteStore.connect(settings):
            pass  # migrate + partitions
    conn = await asyncpg.connect(dsn)
    cols = ", ".join(COLUMNS)
    try:
        await conn.execute(
            f'CREATE TEMP TABLE stage (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )

        async def plain(batch: list[Any]) -> None:
            await conn.copy_records_to_table(table, records=batch, columns=COLUMNS)

        async def staged(batch: list[Any]) -> None:
            async with conn.transaction():
                await conn.copy_records_to_table("stage", records=batch, columns=COLUMNS)
                await conn.execute(
                    f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM stage '
                    "ON CONFLICT (symbol, market_time) DO NOTHING"
                )

        async def unnest(batch: list[Any]) -> None:
            await conn.execute(
                f'INSERT INTO "{table}" ({cols}) SELECT * FROM unnest($1::timestamptz[], '
                "$2::text[], $3::float8[], $4::int8[], $5::float8[], $6::text[], $7::text[], "
                "$8::text[], $9::timestamptz[], $10::uuid[]) "
                "ON CONFLICT (symbol, market_time) DO NOTHING",
                *zip(*batch, strict=True),
            )

        strategies: list[tuple[str, Callable[[list[Any]], Awaitable[None]]]] = [
            ("raw: plain COPY (no dedup)", plain),
            ("raw: COPY stage + INSERT ON CONFLICT", staged),
            ("raw: INSERT unnest ON CONFLICT", unnest),
        ]
        for k, (name, fn) in enumerate(strategies):
            await conn.execute(f'TRUNCATE "{table}"')
            batches = [
                [quote_row(q) for q in make_cycle(k * 10_000 + n, base)]
                for n in range(rows // CYCLE)
            ]
            t0 = time.perf_counter()
            for b in batches:
                await fn(b)
            el = time.perf_counter() - t0
            out.append((name, f"{rows / el:,.0f} rows/s ({el / len(batches) * 1e3:.1f} ms/5,000)"))
    finally:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        await conn.execute("DELETE FROM ingestion_schema_migrations WHERE table_name=$1", table)
        await conn.close()
    return out


async def bench_redis(url: str) -> list[tuple[str, str]]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:market:"
    out: list[tuple[str, str]] = []
    base = int(time.time())
    async with QuoteCache.connect(RedisSettings(url=Secret(url), key_prefix=prefix)) as cache:
        times = []
        for n in range(10):
            cyc = make_cycle(n, base)
            t0 = time.perf_counter()
            await cache.write_latest(cyc)
            times.append(time.perf_counter() - t0)
        out.append(
            (
                "redis: cycle 5,000 keys",
                f"median {statistics.median(times) * 1e3:.1f} ms, "
                f"max {max(times) * 1e3:.1f} ms (one pipeline)",
            )
        )
        saved = cache_mod.CHUNK
        cache_mod.CHUNK = 1  # type: ignore[misc]
        try:
            times = []
            for n in range(3):
                cyc = make_cycle(100 + n, base)
                t0 = time.perf_counter()
                await cache.write_latest(cyc)
                times.append(time.perf_counter() - t0)
        finally:
            cache_mod.CHUNK = saved  # type: ignore[misc]
        out.append(
            ("redis: same, 1 key per call", f"median {statistics.median(times) * 1e3:.1f} ms")
        )
    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i : i + 1000])
    await client.aclose()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    results = await bench_store(args.dsn, args.rows)
    results += await bench_redis(args.redis_url)
    width = max(len(k) for k, _ in results)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 60}")
    for k, v in results:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
