"""An in-memory stand-in for nats-py's connection and JetStream context, for publisher tests.

It keeps what a real stream keeps for these tests: the messages in arrival order, deduplicated
by ``Nats-Msg-Id``. Faults are switched on per test: ``down`` (nothing is acknowledged, the
synchronous publish times out) and ``refuse`` (msg ids JetStream answers with an API error;
like nats-py, ``publish_async`` never resolves their futures).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors


@dataclass
class Ack:
    duplicate: bool = False


@dataclass
class FakeJetStream:
    stored: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    down: bool = False
    sends: int = 0
    dlq_depth: int = 0

    def _store(self, subject: str, payload: bytes, msg_id: str) -> Ack:
        if msg_id in self.stored:
            return Ack(duplicate=True)
        self.stored[msg_id] = (subject, payload)
        self.order.append(msg_id)
        return Ack()

    async def publish_async(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Ack]:
        self.sends += 1
        fut: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        msg_id = headers["Nats-Msg-Id"]
        if not self.down and msg_id not in self.refuse:
            fut.set_result(self._store(subject, payload, msg_id))
        return fut

    async def publish(  # same signature as nats-py's
        self,
        subject: str,
        payload: bytes,
        timeout: float,  # noqa: ASYNC109
        headers: dict[str, str],
    ) -> Ack:
        msg_id = headers["Nats-Msg-Id"]
        if self.down:
            raise nats.errors.TimeoutError
        if msg_id in self.refuse:
            raise nats.js.errors.BadRequestError(code=400, description="message size exceeds")
        return self._store(subject, payload, msg_id)

    async def stream_info(self, name: str) -> Any:
        if self.down:
            raise nats.errors.TimeoutError

        class State:
            messages = self.dlq_depth

        class Info:
            state = State

        return Info


@dataclass
class FakeNats:
    js: FakeJetStream = field(default_factory=FakeJetStream)
    is_closed: bool = False

    @property
    def is_connected(self) -> bool:
        return not self.js.down

    def jetstream(self, **kwargs: Any) -> FakeJetStream:
        return self.js

    async def drain(self) -> None:
        self.is_closed = True

    async def close(self) -> None:
        self.is_closed = True
