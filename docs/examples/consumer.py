#!/usr/bin/env python3
"""A minimal durable pull consumer of the engine's JetStream streams (nats-py).

    python docs/examples/consumer.py --server nats://127.0.0.1:4222 \
        --stream MARKET_QUOTES --subject data.market.quote --durable my-app --count 100

Prints one JSON line per message - ``{"seq": <stream sequence>, "msg_id": <Nats-Msg-Id>,
"message": <payload>}`` - acknowledges it, and stops after ``--count`` messages or when nothing
arrives for ``--idle`` seconds. The consumer is *durable*: run it again with the same
``--durable`` name and it continues after the last acknowledged message (a new name starts from
the beginning of the stream). Exit status: 0, or 3 when a message has a ``schema_version`` this
code does not know - it is left unacknowledged (JetStream redelivers it to a fixed consumer)
rather than misread.

Only ``nats-py`` is needed; nothing of the engine is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

SUPPORTED_VERSIONS = {1}  # schema_version values this consumer understands


async def consume(args: argparse.Namespace) -> int:
    nc = await nats.connect(args.server, connect_timeout=5)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            args.subject,
            durable=args.durable,
            stream=args.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_ack_pending=1000,
            ),
        )
        done = 0
        while done < args.count:
            try:
                batch = await sub.fetch(min(args.batch, args.count - done), timeout=args.idle)
            except TimeoutError:  # nothing new for --idle seconds
                # (nats-py raises nats.errors.TimeoutError, or asyncio's when the deadline runs
                # out between its requests: TimeoutError is the base of both)
                break
            for msg in batch:
                doc = json.loads(msg.data)
                # Ignore fields you do not know; refuse versions you do not know.
                if doc.get("schema_version") not in SUPPORTED_VERSIONS:
                    print(
                        f"unsupported schema_version {doc.get('schema_version')!r} at stream "
                        f"sequence {msg.metadata.sequence.stream}: upgrade this consumer",
                        file=sys.stderr,
                    )
                    return 3
                line = {
                    "seq": msg.metadata.sequence.stream,
                    "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
                    "message": doc,
                }
                print(json.dumps(line, separators=(",", ":")), flush=True)
                await msg.ack_sync()  # process first, then acknowledge: at-least-once
                done += 1
        print(f"consumed {done} message(s) from {args.stream}", file=sys.stderr)
        return 0
    finally:
        # every ack was confirmed (ack_sync): nothing to drain (and nats-py's drain, after a
        # fetch that timed out, waits out its whole drain timeout, 30 s, then fails)
        await nc.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--server", default="nats://127.0.0.1:4222")
    p.add_argument("--stream", default="MARKET_QUOTES", help="MARKET_QUOTES or MARKET_DLQ")
    p.add_argument("--subject", default="data.market.quote")
    p.add_argument("--durable", default="example-consumer", help="durable consumer name")
    p.add_argument("--count", type=int, default=10, help="stop after this many messages")
    p.add_argument("--batch", type=int, default=100, help="messages per fetch")
    p.add_argument("--idle", type=float, default=2.0, help="stop after this long without one")
    return asyncio.run(consume(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
