"""JetStream inspection for tests and benches: read every stored message, delete streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import nats
import nats.js.errors
import orjson


async def _stream_messages(url: str, stream: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return []
        out = []
        first, last = info.state.first_seq, info.state.last_seq
        if info.state.messages == 0:
            return []
        for seq in range(first, last + 1):
            try:
                m = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            out.append((orjson.loads(m.data or b"{}"), dict(m.headers or {})))
        return out
    finally:
        await nc.close()


def stream_messages(url: str, stream: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Every message stored in ``stream``: (decoded JSON payload, headers)."""
    return asyncio.run(_stream_messages(url, stream))


async def _delete(url: str, streams: Sequence[str]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for s in streams:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(s)
    finally:
        await nc.close()


def delete_streams(url: str, streams: Sequence[str]) -> None:
    """Delete each of ``streams`` that exists."""
    asyncio.run(_delete(url, streams))


def create_refusing_stream(url: str, stream: str, subject: str) -> None:
    """Create ``stream`` on ``subject`` with a 64-byte message limit, before the engine does: it
    refuses every quote message (the engine dead-letters them as unpublishable)."""
    from nats.js.api import StorageType, StreamConfig

    async def create() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_stream(
                StreamConfig(
                    name=stream,
                    subjects=[subject],
                    storage=StorageType.FILE,
                    duplicate_window=120,
                    max_msg_size=64,
                )
            )
        finally:
            await nc.close()

    asyncio.run(create())
