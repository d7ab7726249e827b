"""Per-stage profile of the hot path: microseconds of CPU per quote in each stage.

Runs the engine's own functions, stage after stage, in one process over one universe fetched
from the emulator (``--symbols``, 5,000), and measures each stage with ``time.process_time``
(this process's CPU; the emulator, NATS, PostgreSQL and Redis run elsewhere), the median of
``--rounds`` rounds (each round's quotes get a new market time, so nothing is skipped as a
repeat):

=================  ===============================================================================
HTTP read          the Yahoo transport (curl_cffi by default) fetching every v7 batch, body read
JSON decode        :func:`engine.source.decode.decode_quotes` of each body
validation         :func:`engine.quote.validate` of each decoded quote
ring write         :func:`engine.records.to_records` (the ring rows) and ``Ring.write``
ring read          ``Ring.read`` of the rows back, in the publisher's chunks
message build      :func:`engine.records.to_messages` (payloads, ``Nats-Msg-Id``, the quotes)
JetStream publish  :meth:`JetStreamPublisher.publish` of the messages, every ack awaited
COPY               :class:`~engine.sinks.store.QuoteStore` ``submit`` + ``make_durable`` (own table)
Redis              :meth:`QuoteCache.write_latest` (own key prefix)
=================  ===============================================================================

The sum is the engine's CPU per quote on its hot path, without the event loop's and the
control plane's share (bench/cycle.py's steady state has everything).

    .venv/bin/python bench/stages.py --url http://127.0.0.1:8765 --symbols 5000
    .venv/bin/python bench/stages.py --symbols 5000          # starts its own emulator
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson
import uvloop

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.config import (  # noqa: E402
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    Secret,
    ValidationSettings,
    YahooSettings,
)
from engine.quote import Quote, Rejection, YahooQuote, validate  # noqa: E402
from engine.records import to_messages, to_records  # noqa: E402
from engine.ringbuf import Ring  # noqa: E402
from engine.sinks.cache import QuoteCache  # noqa: E402
from engine.sinks.jetstream import JetStreamPublisher  # noqa: E402
from engine.sinks.publisher import CHUNK  # noqa: E402
from engine.sinks.store import QuoteStore  # noqa: E402
from engine.source.client import QUOTE_PATH, quote_params  # noqa: E402
from engine.source.decode import decode_quotes  # noqa: E402
from engine.source.transport import make_transport  # noqa: E402

NATS_URL = os.environ.get("INGEST_NATS__URL", "nats://127.0.0.1:4222")
PG_DSN = os.environ.get("INGEST_POSTGRES__DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("INGEST_REDIS__URL", "redis://127.0.0.1:6379/0")
STAGES = (
    "HTTP read",
    "JSON decode",
    "validation",
    "ring write",
    "ring read",
    "message build",
    "JetStream publish+ack",
    "COPY",
    "Redis",
)


class Timer:
    """CPU seconds per stage, one list entry per round."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {s: [] for s in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        self.cpu[stage].append(seconds)

    async def time(self, stage: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        c0 = time.process_time()
        out = await fn()
        self.add(stage, time.process_time() - c0)
        return out


async def fetch_bodies(
    url: str, symbols: list[str], in_flight: int = 4
) -> tuple[list[tuple[list[str], bytes]], float]:
    """Every v7 batch of ``symbols`` through the engine's transport: (batch, body), CPU s."""
    y = YahooSettings()
    transport = make_transport(y.transport, impersonate=y.impersonate, max_clients=in_flight)
    try:
        await transport.request("GET", url + "/", None, 10.0)
        crumb = (await transport.request("GET", url + "/v1/test/getcrumb", None, 10.0)).body
        batches = [symbols[i : i + y.batch_size] for i in range(0, len(symbols), y.batch_size)]
        sem = asyncio.Semaphore(in_flight)

        async def one(b: list[str]) -> tuple[list[str], bytes]:
            params = {**quote_params(b), "crumb": crumb.decode()}
            async with sem:
                r = await transport.request("GET", url + QUOTE_PATH, params, 10.0)
            if r.status != 200:
                raise SystemExit(f"emulator answered {r.status}: {r.body[:200]!r}")
            return b, r.body

        c0 = time.process_time()
        out = await asyncio.gather(*(one(b) for b in batches))
        return list(out), time.process_time() - c0
    finally:
        await transport.aclose()


def _shifted(q: YahooQuote, k: int) -> YahooQuote:
    t = q.regular_market_time
    return msgspec.structs.replace(q, regular_market_time=None if t is None else t + k)


async def _round(
    k: int,
    url: str,
    symbols: list[str],
    timer: Timer,
    sinks: tuple[JetStreamPublisher, QuoteStore, QuoteCache],
) -> int:
    jsp, store, cache = sinks
    bodies, http_cpu = await fetch_bodies(url, symbols)
    timer.add("HTTP read", http_cpu)
    c0 = time.process_time()
    decoded = [decode_quotes(body, batch) for batch, body in bodies]
    timer.add("JSON decode", time.process_time() - c0)
    # this round's market times: a new second per round, so no stage skips a repeat
    raw = [[_shifted(q, k) for q in d.quotes] for d in decoded]
    rules = ValidationSettings()
    now = time.time() + k
    c0 = time.process_time()
    checked = [[validate(q, now_s=now, rules=rules) for q in batch] for batch in raw]
    timer.add("validation", time.process_time() - c0)
    ring = Ring.create(1 << 16)
    try:
        c0 = time.process_time()
        for batch in checked:
            quotes = [q for q in batch if isinstance(q, Quote)]
            rejections = [q for q in batch if isinstance(q, Rejection)]
            recs = to_records(quotes, rejections, cycle=k, source=0, ingest_time_ns=time.time_ns())
            await ring.write(recs)
        timer.add("ring write", time.process_time() - c0)
        c0 = time.process_time()
        chunks = []
        pos = ring.tail
        while len(recs := ring.read(pos, CHUNK)):
            chunks.append(recs)
            pos += len(recs)
        timer.add("ring read", time.process_time() - c0)
    finally:
        ring.close()
    c0 = time.process_time()
    built = [to_messages(c) for c in chunks]
    timer.add("message build", time.process_time() - c0)
    msgs = [m for d in built for m in d.messages]
    quotes = [q for d in built for q in d.quotes]
    deadline = time.monotonic() + 30
    outcome = await timer.time(
        "JetStream publish+ack", lambda: jsp.publish(msgs, deadline=deadline)
    )
    if len(outcome) != len(msgs):
        raise SystemExit("JetStream did not answer every message")

    async def copy() -> None:
        store.submit(quotes)
        if not (await store.make_durable(30.0)).durable:
            raise SystemExit("PostgreSQL did not take the batch")

    await timer.time("COPY", copy)
    await timer.time("Redis", lambda: cache.write_latest(quotes))
    return sum(len(d.quotes) for d in decoded)


async def _measure(url: str, symbols: list[str], rounds: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    nats_s = msgspec.structs.replace(
        NatsSettings(),
        url=Secret(NATS_URL),
        stream=f"STG{run}_Q",
        subject=f"bench.stg{run}.q",
        dlq_stream=f"STG{run}_D",
        dlq_subject=f"bench.stg{run}.d",
    )
    pg_s = msgspec.structs.replace(PostgresSettings(), dsn=Secret(PG_DSN), table=f"stg_{run}")
    rd_s = msgspec.structs.replace(RedisSettings(), url=Secret(REDIS_URL), key_prefix=f"stg:{run}:")
    timer = Timer()
    n = 0
    async with (
        JetStreamPublisher.connect(nats_s) as jsp,
        QuoteStore.connect(pg_s) as store,
        QuoteCache.connect(rd_s) as cache,
    ):
        try:
            for k in range(rounds + 1):  # round 0 warms up (imports, partitions, script load)
                n = await _round(k, url, symbols, timer, (jsp, store, cache))
                if k == 0:
                    timer = Timer()
        finally:
            await jsp.js.delete_stream(nats_s.stream)
            await jsp.js.delete_stream(nats_s.dlq_stream)
            await _cleanup(store, cache, pg_s, rd_s)
    us = {s: round(1e6 * statistics.median(v) / n, 2) for s, v in timer.cpu.items() if v}
    return {
        "symbols": len(symbols),
        "quotes": n,
        "rounds": rounds,
        "us_cpu_per_quote": us,
        "total_us_per_quote": round(sum(us.values()), 1),
    }


async def _cleanup(
    store: QuoteStore, cache: QuoteCache, pg: PostgresSettings, rd: RedisSettings
) -> None:
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(pg.dsn.reveal())
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{pg.table}" CASCADE')
    finally:
        await conn.close()
    r = aioredis.Redis.from_url(rd.url.reveal())
    try:
        keys = [k async for k in r.scan_iter(match=rd.key_prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await r.delete(*keys[i : i + 1000])
    finally:
        await r.aclose()


def measure(url: str, n: int, *, rounds: int = 3) -> dict[str, Any]:
    """The profile measured in a fresh process (what bench/cycle.py calls)."""
    cmd = [sys.executable, __file__, "--url", url, "--symbols", str(n), "--rounds", str(rounds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode:
        raise SystemExit(f"bench/stages.py failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(r: dict[str, Any]) -> str:
    us = r["us_cpu_per_quote"]
    head = "| " + " | ".join(us) + " | total |"
    sep = "|" + "---|" * (len(us) + 1)
    vals = "| " + " | ".join(f"{v:.1f}" for v in us.values()) + f" | {r['total_us_per_quote']} |"
    return f"us of CPU per quote ({r['quotes']:,} quotes, median of {r['rounds']} rounds)\n" + (
        "\n".join((head, sep, vals))
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", default="", help="the emulator (default: start one, 50 ms latency)")
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--table", action="store_true", help="print the Markdown table too")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from cycle import emulator_args, universe

    symbols = universe(a.symbols)
    if a.url:
        r = uvloop.run(_measure(a.url.rstrip("/"), symbols, a.rounds))
    else:
        from testkit import EmulatorProcess

        with EmulatorProcess(emulator_args(50, full_change=True)) as emu:
            r = uvloop.run(_measure(emu.url, symbols, a.rounds))
    if a.table:
        print(table(r))
    print(orjson.dumps(r).decode(), flush=True)


if __name__ == "__main__":
    main()
