"""QuoteCache against real Redis: encoding, TTL, ordering, key safety, outages.

Shared server 127.0.0.1:6379 (override with TEST_REDIS_URL) with a unique key prefix per test,
whose keys are deleted afterwards; the outage test starts its own ``redis-server`` on a spare
port and kills it. The pure helpers (key encoding, newest-per-symbol) are tested without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import redis.asyncio as aioredis

from engine.config import RedisSettings, Secret
from engine.errors import CacheError, ConfigError
from engine.quote import Quote, QuoteMessage
from engine.sinks.cache import QuoteCache, cache_key, newest_per_symbol
from testkit import OwnRedis, free_port

URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = int(time.time())


def make_quote(symbol: str, t: int = NOW, price: float = 100.0) -> Quote:
    return Quote(
        symbol=symbol,
        price=price,
        volume=1000,
        change_percent=-1.25,
        market_time=t,
        market_state="REGULAR",
        currency="USD",
        exchange="NMS",
        source="yahoo",
        ingest_time_ns=1_795_000_000_123_456_789,
        correlation_id="6f1c7e8e-5c9a-4d0e-9d1e-1f2a3b4c5d6e",
        cycle=7,
    )


def settings(prefix: str, url: str = URL, **kw: object) -> RedisSettings:
    return RedisSettings(url=Secret(url), key_prefix=prefix, timeout_s=0.5, **kw)  # type: ignore[arg-type]


async def keys_of(client: aioredis.Redis, prefix: str) -> list[bytes]:
    return sorted([k async for k in client.scan_iter(match=prefix.replace("*", "\\*") + "*")])


async def read_doc(client: aioredis.Redis, key: str) -> QuoteMessage:
    raw = await client.get(key)
    assert isinstance(raw, bytes), f"{key} missing"
    return msgspec.json.decode(raw, type=QuoteMessage)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    p = f"test:{uuid.uuid4().hex[:10]}:market:"
    yield p
    client = aioredis.Redis.from_url(URL)
    try:
        keys = await keys_of(client, p)
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(URL)
    yield c
    await c.aclose()


# -- pure helpers -----------------------------------------------------------------------------


class TestKeys:
    @pytest.mark.parametrize(
        ("symbol", "key"),
        [
            ("AAPL", "market:AAPL"),
            ("BRK-B", "market:BRK-B"),
            ("^GSPC", "market:^GSPC"),
            ("EURUSD=X", "market:EURUSD=X"),
            ("BF.B", "market:BF.B"),
            ("A:B", "market:A%3AB"),
            ("A*", "market:A%2A"),
            ("x'; DEL *", "market:x%27%3B%20DEL%20%2A"),
            ('a"b\r\nSET x 1', "market:a%22b%0D%0ASET%20x%201"),
            ("ÄPPL", "market:%C3%84PPL"),
            ("😀", "market:%F0%9F%98%80"),
        ],
    )
    def test_cache_key(self, symbol: str, key: str) -> None:
        """Yahoo's symbol characters stay readable; everything else is %-encoded."""
        assert cache_key("market:", symbol) == key

    def test_newest_per_symbol(self) -> None:
        """The greatest market time wins; on a tie the later quote wins."""
        a1, a2, a3 = make_quote("A", 10, 1.0), make_quote("A", 30, 2.0), make_quote("A", 20, 3.0)
        b1, b2 = make_quote("B", 5, 1.0), make_quote("B", 5, 9.0)
        out = newest_per_symbol([a1, a2, a3, b1, b2])
        assert out == {"A": a2, "B": b2}

    def test_message_matches_the_nats_document(self) -> None:
        """The cached JSON is a QuoteMessage with ISO-8601 UTC times."""
        msg = make_quote("AAPL", 1_795_000_000).to_message()
        assert msg.timestamp == "2026-11-18T11:06:40Z"
        assert msg.ingest_time == "2026-11-18T11:06:40.123456Z"
        assert msg.schema_version >= 1 and msg.cycle == 7

    def test_bad_prefix_is_refused(self) -> None:
        """A key prefix that bypassed config validation is refused."""
        with pytest.raises(ConfigError):
            QuoteCache(RedisSettings(key_prefix="market:*{x}"))


# -- real Redis -------------------------------------------------------------------------------


@pytest.mark.integration
class TestCache:
    async def test_writes_json_with_ttl(self, prefix: str, client: aioredis.Redis) -> None:
        """Every symbol of a cycle becomes one key holding its QuoteMessage, TTL <= 60 s."""
        quotes = [make_quote(f"S{i:04d}") for i in range(600)]
        async with QuoteCache.connect(settings(prefix)) as cache:
            cache.submit(quotes)
            assert await cache.drain(5)
            stats = cache.stats
        keys = await keys_of(client, prefix)
        assert len(keys) == 600
        assert stats.keys_written == 600 and stats.pending_symbols == 0
        ttls = [await client.ttl(k) for k in keys]
        assert all(0 < t <= 60 for t in ttls)
        doc = await read_doc(client, prefix + "S0007")
        assert doc == quotes[7].to_message()

    async def test_older_never_overwrites_newer(self, prefix: str, client: aioredis.Redis) -> None:
        """A late, older quote is refused; the same market time refreshes the TTL only."""
        async with QuoteCache.connect(settings(prefix)) as cache:
            assert await cache.write_latest([make_quote("AAA", NOW, 2.0)]) == 1
            assert await cache.write_latest([make_quote("AAA", NOW - 30, 1.0)]) == 0
            doc = await read_doc(client, prefix + "AAA")
            assert doc.price == 2.0
            await client.expire(prefix + "AAA", 5)
            assert await cache.write_latest([make_quote("AAA", NOW, 3.0)]) == 1
            doc = await read_doc(client, prefix + "AAA")
            assert doc.price == 2.0 and await client.ttl(prefix + "AAA") > 5
            assert await cache.write_latest([make_quote("AAA", NOW + 1, 4.0)]) == 1
            assert (await read_doc(client, prefix + "AAA")).price == 4.0
            assert cache.stats.keys_skipped_older == 1

    async def test_a_higher_volume_at_the_same_time_replaces(
        self, prefix: str, client: aioredis.Redis
    ) -> None:
        """Same market time: a higher volume is a newer observation and replaces the document,
        a lower one is refused as older."""
        base = make_quote("AAA", NOW, 2.0)
        async with QuoteCache.connect(settings(prefix)) as cache:
            assert await cache.write_latest([base]) == 1
            more = msgspec.structs.replace(base, price=3.0, volume=base.volume + 500)
            assert await cache.write_latest([more]) == 1
            doc = await read_doc(client, prefix + "AAA")
            assert (doc.price, doc.volume) == (3.0, base.volume + 500)
            less = msgspec.structs.replace(base, price=4.0, volume=base.volume - 1)
            assert await cache.write_latest([less]) == 0
            assert (await read_doc(client, prefix + "AAA")).price == 3.0
        newest = newest_per_symbol([more, less])
        assert newest == {"AAA": more}

    async def test_foreign_values_are_replaced(self, prefix: str, client: aioredis.Redis) -> None:
        """A key holding something else (not JSON, a hash) is overwritten, not an error."""
        await client.set(prefix + "TXT", "not json")
        await client.hset(prefix + "HSH", "f", "v")
        async with QuoteCache.connect(settings(prefix)) as cache:
            assert await cache.write_latest([make_quote("TXT"), make_quote("HSH")]) == 2
        assert await client.type(prefix + "HSH") == b"string"

    async def test_malicious_symbols_stay_inside_their_key(
        self, prefix: str, client: aioredis.Redis
    ) -> None:
        """Hostile symbols make exactly one %-encoded key each and round-trip in the JSON."""
        evil = ["A*", "x'; FLUSHALL", "a\r\nSET pwned 1", "K:EY", "ΑΒΓ", "\u202eX", "{tag}"]
        async with QuoteCache.connect(settings(prefix)) as cache:
            assert await cache.write_latest([make_quote(s) for s in evil]) == len(evil)
        keys = await keys_of(client, prefix)
        assert keys == sorted(cache_key(prefix, s).encode() for s in evil)
        assert await client.exists("pwned") == 0
        for s in evil:
            raw = await client.get(cache_key(prefix, s))
            assert isinstance(raw, bytes)
            assert msgspec.json.decode(raw, type=QuoteMessage).symbol == s

    async def test_unencodable_symbol_is_skipped(self, prefix: str) -> None:
        """A symbol that is not valid UTF-8 (lone surrogate) is counted, the rest written."""
        async with QuoteCache.connect(settings(prefix)) as cache:
            assert await cache.write_latest([make_quote("\ud800X"), make_quote("OK")]) == 1
            assert cache.stats.keys_unencodable == 1

    async def test_one_cycle_is_one_pipeline(self, prefix: str) -> None:
        """5,000 symbols are written by one pipeline (20 script calls)."""
        async with QuoteCache.connect(settings(prefix)) as cache:
            n = await cache.write_latest([make_quote(f"S{i:05d}") for i in range(5000)])
            assert n == 5000 and cache.stats.last_batch_keys == 5000

    async def test_submit_after_close_is_an_error(self, prefix: str) -> None:
        """Use after aclose() fails loudly; aclose() is idempotent."""
        cache = QuoteCache.connect(settings(prefix))
        async with cache:
            pass
        await cache.aclose()
        with pytest.raises(CacheError):
            cache.submit([make_quote("A")])


# -- outage -------------------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    r = OwnRedis()
    r.start()
    try:
        yield r
    finally:
        r.kill()


@pytest.mark.integration
class TestOutage:
    async def test_redis_killed_then_back_refills_latest(
        self, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Submissions go on while Redis is down; on recovery the latest per symbol is written."""
        caplog.set_level(logging.INFO, logger="engine.sinks.cache")
        prefix = "market:"
        async with QuoteCache.connect(settings(prefix, own_redis.url)) as cache:
            cache.submit([make_quote(f"S{i}", NOW) for i in range(100)])
            assert await cache.drain(5)
            own_redis.kill()
            longest = 0.0
            for n in range(1, 6):
                t0 = time.perf_counter()
                cache.submit([make_quote(f"S{i}", NOW + n, price=n) for i in range(100)])
                longest = max(longest, time.perf_counter() - t0)
                await asyncio.sleep(0.02)
            assert not await cache.drain(0.3)
            assert not cache.stats.available and cache.stats.pending_symbols == 100
            own_redis.start()  # empty: no keys, no cached script
            assert await cache.drain(15)
            stats = cache.stats
        assert longest < 0.05
        assert stats.available and stats.outages == 1
        client = aioredis.Redis.from_url(own_redis.url)
        try:
            raw = await client.get("market:S42")
            ttl = await client.ttl("market:S42")
            n_keys = len(await keys_of(client, prefix))
        finally:
            await client.aclose()
        assert isinstance(raw, bytes)
        assert msgspec.json.decode(raw, type=QuoteMessage).price == 5.0
        assert 0 < ttl <= 60 and n_keys == 100
        events = [r.getMessage() for r in caplog.records]
        assert events.count("redis_unavailable") == 1
        assert events.count("redis_recovered") == 1

    async def test_start_with_redis_down(self) -> None:
        """Entering with Redis unreachable does not raise; the cache reports unavailable."""
        url = f"redis://127.0.0.1:{free_port()}/0"
        async with QuoteCache.connect(settings("market:", url)) as cache:
            assert not cache.stats.available
            cache.submit([make_quote("A")])
            assert not await cache.drain(0.1)
