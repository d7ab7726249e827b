"""deps.nats.close never raises: NATS down or reconnecting at shutdown is not a crash."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import pytest

from engine.deps.nats import close


class Reconnecting:
    """A client in the middle of a reconnect: drain refuses, close fails on the dead transport
    (what nats-py does over uvloop once the server is gone)."""

    def __init__(self, close_error: BaseException | None) -> None:
        self.is_closed = False
        self.close_error = close_error
        self.closed = 0

    async def drain(self) -> None:
        raise nats.errors.ConnectionReconnectingError

    async def close(self) -> None:
        self.closed += 1
        if self.close_error is not None:
            raise self.close_error
        self.is_closed = True


async def test_close_while_reconnecting_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    nc = Reconnecting(RuntimeError("unable to perform operation on <TCPTransport closed=True>"))
    closing = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        await close(nc, closing)
    assert closing.is_set() and nc.closed == 1
    assert [r.getMessage() for r in caplog.records] == ["nats_close_failed"]
    assert caplog.records[0].error_kind == "RuntimeError"  # type: ignore[attr-defined]


async def test_a_refused_drain_falls_back_to_close() -> None:
    nc = Reconnecting(None)
    await close(nc)
    await close(nc)  # idempotent
    assert nc.is_closed and nc.closed == 1


async def test_a_hanging_close_is_bounded() -> None:
    class Hanging(Reconnecting):
        async def close(self) -> None:
            await asyncio.sleep(3600)

    await asyncio.wait_for(close(Hanging(None), timeout_s=0.05), timeout=2)


async def test_cancellation_still_propagates() -> None:
    class Slow(Reconnecting):
        async def drain(self) -> None:
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(close(Slow(None)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
