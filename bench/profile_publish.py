"""Publish micro-bench: the CPU of JetStream publishing per quote, nats-py's path vs a lean one.

The steady-state and 100k profiles (bench/profile_cycle.py) put most of the publisher's CPU in
nats-py's per-message JetStream machinery: ``JetStreamContext.publish_async`` (a future per
message), its reply handler (stdlib ``json.loads`` of every ack, then ``PubAck`` built through
``dataclasses.fields``). This bench publishes the same messages (quote-sized JSON, a
``Nats-Msg-Id`` header each) to a throw-away stream on the shared NATS both ways and reports the
CPU seconds of this process (``time.process_time``) and the wall time, per variant:

* ``js.publish_async`` - what the engine did before issue 15: ``publish_async`` for every
  message of a chunk, then ``asyncio.wait`` for all the futures, each ack checked.
* ``core+inbox``       - ``nc.publish(subject, payload, reply=<inbox>.<i>, headers=...)`` with one
  wildcard subscription on the inbox whose callback decodes each ack with the engine's own
  ``read_answer`` (a msgspec Struct)
  (``{"stream","seq","duplicate"}`` or ``{"error": {...}}``) into a per-message outcome array and
  sets one event when the chunk is complete. Same wire protocol, same acks, no future per
  message - and an error ack is seen (nats-py's publish_async never resolves those). What
  engine/sinks/jetstream.py does since issue 15.

Variants alternate (ABAB...) so load drift on the shared machine hits both; medians reported.

    .venv/bin/python bench/profile_publish.py --messages 5000 --reps 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import nats
import orjson

from engine.sinks.jetstream import read_answer

NATS_URL = os.environ.get("INGEST_NATS__URL", "nats://127.0.0.1:4222")


def messages(n: int, run: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        sym = f"S{i:06d}"
        doc = {
            "schema_version": 1, "symbol": sym, "price": 123.45 + i / 100, "volume": 1000 + i,
            "change_percent": 0.53, "timestamp": "2026-11-27T00:00:00Z",
            "market_time": 1795737600 + i, "currency": "USD", "exchange": "NMS",
            "market_state": "REGULAR", "source": "yahoo_v7",
            "ingest_time": "2026-11-27T00:00:00.123456Z",
            "correlation_id": str(uuid.uuid4()), "cycle": 1, "stale": False,
        }  # fmt: skip
        out.append((f"{sym}:{run}:{i}", orjson.dumps(doc)))
    return out


async def via_publish_async(nc: nats.NATS, subject: str, msgs: list[tuple[str, bytes]]) -> int:
    js = nc.jetstream(publish_async_max_pending=4000)
    futs = [
        await js.publish_async(subject, payload, headers={"Nats-Msg-Id": mid})
        for mid, payload in msgs
    ]
    await asyncio.wait(futs, timeout=30)
    return sum(1 for f in futs if f.done() and not f.exception() and not f.result().duplicate)


async def via_core_inbox(nc: nats.NATS, subject: str, msgs: list[tuple[str, bytes]]) -> int:
    prefix = nc.new_inbox()
    cut = len(prefix) + 1
    outcome = bytearray(len(msgs))  # 0 pending, 1 stored, 2 duplicate, 3 refused
    left = len(msgs)
    done = asyncio.Event()

    async def on_ack(m: nats.aio.msg.Msg) -> None:
        nonlocal left
        i = int(m.subject[cut:])
        if outcome[i]:
            return
        ack = read_answer(m)  # the engine's own ack decoding
        outcome[i] = 3 if isinstance(ack, BaseException) else 2 if ack.duplicate else 1
        left -= 1
        if not left:
            done.set()

    sub = await nc.subscribe(f"{prefix}.*", cb=on_ack, pending_msgs_limit=len(msgs) + 1)
    try:
        for i, (mid, payload) in enumerate(msgs):
            await nc.publish(subject, payload, reply=f"{prefix}.{i}", headers={"Nats-Msg-Id": mid})
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        await sub.unsubscribe()
    return outcome.count(1)


Variant = Callable[[nats.NATS, str, list[tuple[str, bytes]]], Awaitable[int]]


async def main_async(n: int, reps: int) -> None:
    stream = f"PB{uuid.uuid4().hex[:8]}"
    subject = f"bench.{stream}.quote"
    nc = await nats.connect(NATS_URL)
    variants: dict[str, Variant] = {
        "js.publish_async": via_publish_async,
        "core+inbox": via_core_inbox,
    }
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[subject], duplicate_window=120.0)
        for rep in range(reps + 1):  # the first round warms up and is not counted
            for name, fn in variants.items():
                msgs = messages(n, f"{name}-{rep}")
                c0, t0 = time.process_time(), time.perf_counter()
                stored = await fn(nc, subject, msgs)
                c1, t1 = time.process_time(), time.perf_counter()
                if stored != n:
                    raise SystemExit(f"{name}: {stored} of {n} stored (expected all)")
                if rep:
                    cpu[name].append(c1 - c0)
                    wall[name].append(t1 - t0)
    finally:
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()
    print(f"{n} messages x {reps} rounds (median; CPU of this process)")
    print(f"{'variant':<18} {'CPU s':>7} {'wall s':>7} {'us CPU/msg':>10}")
    for name in variants:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"{name:<18} {c:7.3f} {w:7.3f} {1e6 * c / n:10.1f}")
    a, b = (statistics.median(cpu[k]) for k in variants)
    print(f"core+inbox / js.publish_async CPU: {b / a:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    import uvloop

    uvloop.run(main_async(a.messages, a.reps))


if __name__ == "__main__":
    main()
