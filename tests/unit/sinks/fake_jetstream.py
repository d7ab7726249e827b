"""An in-memory stand-in for nats-py's connection and JetStream context, for publisher tests.

It keeps what a real stream keeps for these tests: the messages in arrival order, deduplicated
by ``Nats-Msg-Id``. A core publish with a reply subject is answered on it as JetStream answers:
an ack (``{"stream", "seq", "duplicate"}``), an error (``{"error": {...}}``) or, with no stream,
a ``Status: 503`` message without a body (no responders). Faults are switched on per test:
``down`` (nothing is answered, the synchronous publish times out), ``refuse`` (msg ids JetStream
answers with an API error) and ``no_stream`` (no stream listens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
import orjson


@dataclass
class Ack:
    duplicate: bool = False


@dataclass
class FakeJetStream:
    stored: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    down: bool = False
    no_stream: bool = False
    sends: int = 0
    dlq_depth: int = 0

    def _store(self, subject: str, payload: bytes, msg_id: str) -> Ack:
        if msg_id in self.stored:
            return Ack(duplicate=True)
        self.stored[msg_id] = (subject, payload)
        self.order.append(msg_id)
        return Ack()

    def answer(self, subject: str, payload: bytes, msg_id: str) -> FakeMsg | None:
        """What JetStream sends to the reply subject of a publish (None: nothing)."""
        self.sends += 1
        if self.down:
            return None
        if self.no_stream:
            return FakeMsg("", b"", {"Status": "503"})
        if msg_id in self.refuse:
            err = {"code": 400, "err_code": 10054, "description": "message size exceeds"}
            return FakeMsg("", orjson.dumps({"error": err}))
        ack = self._store(subject, payload, msg_id)
        return FakeMsg("", orjson.dumps({"stream": "S", "seq": len(self.order),
                                         "duplicate": ack.duplicate}))  # fmt: skip

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
        if self.no_stream:
            raise nats.js.errors.NoStreamResponseError
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
class FakeMsg:
    subject: str
    data: bytes
    headers: dict[str, str] | None = None


class FakeSub:
    def __init__(self, nc: FakeNats, prefix: str) -> None:
        self.nc, self.prefix = nc, prefix

    async def unsubscribe(self) -> None:
        self.nc.subs.pop(self.prefix, None)


@dataclass
class FakeNats:
    js: FakeJetStream = field(default_factory=FakeJetStream)
    is_closed: bool = False
    subs: dict[str, Callable[[Any], Awaitable[None]]] = field(default_factory=dict)
    inboxes: int = 0
    unanswered: int = 0  # published, answer not yet delivered
    most_unanswered: int = 0

    def new_inbox(self) -> str:
        self.inboxes += 1
        return f"_INBOX.fake{self.inboxes}"

    async def subscribe(self, subject: str, cb: Any = None, **limits: Any) -> FakeSub:
        assert subject.endswith(".>") and cb is not None
        self.subs[subject[:-1]] = cb
        return FakeSub(self, subject[:-1])

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        """A core publish: answered (later, on the event loop) on ``reply`` as JetStream does."""
        if self.is_closed:
            raise nats.errors.ConnectionClosedError
        ans = self.js.answer(subject, payload, (headers or {}).get("Nats-Msg-Id", ""))
        cb = next((cb for p, cb in self.subs.items() if reply.startswith(p)), None)
        if ans is not None and cb is not None:
            ans.subject = reply
            self.unanswered += 1
            self.most_unanswered = max(self.most_unanswered, self.unanswered)

            async def deliver() -> None:
                self.unanswered -= 1
                await cb(ans)

            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(deliver()))

    @property
    def is_connected(self) -> bool:
        return not self.js.down

    def jetstream(self, **kwargs: Any) -> FakeJetStream:
        return self.js

    async def drain(self) -> None:
        self.is_closed = True

    async def close(self) -> None:
        self.is_closed = True
