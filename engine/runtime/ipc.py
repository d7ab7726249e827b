"""Control messages between the supervisor and its children (msgpack over pipes).

Data never travels here - quotes go through the shared-memory rings; these pipes only carry
commands and small per-cycle summaries::

    supervisor -> worker     Assign, StartCycle, Stop
    worker -> supervisor     WorkerReady, CycleFetched
    supervisor -> publisher  Seal, Stop
    publisher -> supervisor  PublisherReady, CyclePublished, Fatal
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Final

import msgspec

from engine.stats import FetchCounts, PublishCounts


class ShardAssignment(msgspec.Struct, frozen=True):
    shard: int
    symbols: list[str]
    indices: list[int]  # positions in the universe (rows of the last-seen table)


class Assign(msgspec.Struct, frozen=True, tag=True):
    generation: int
    state_name: str  # shared-memory segment of the last-seen table (engine.ringbuf)
    state_size: int  # symbols in that table (the universe)
    shards: list[ShardAssignment]


class StartCycle(msgspec.Struct, frozen=True, tag=True):
    """Fetch every symbol of your shards for ``cycle``."""

    cycle: int
    started_at: float  # epoch seconds (scheduler's clock)
    spread_s: float  # 0 = send every batch at once


class Stop(msgspec.Struct, frozen=True, tag=True):
    """Finish what is in flight (up to ``grace_s``) and exit."""

    grace_s: float


class WorkerReady(msgspec.Struct, frozen=True, tag=True):
    """The worker is connected and waits for ``StartCycle``."""

    worker: int
    pid: int
    crumb_s: float = 0.0  # its start-up: the Yahoo session and the cookie + crumb


class CycleFetched(msgspec.Struct, frozen=True, tag=True):
    """A worker's share of a cycle is fetched: every record of it sits before ``ring_head``."""

    worker: int
    cycle: int
    counts: FetchCounts
    ring_head: int
    seconds: float


class Seal(msgspec.Struct, frozen=True, tag=True):
    """Every record of ``cycle`` sits before ``positions[ring]`` in each ring."""

    cycle: int
    positions: dict[int, int]


class PublisherReady(msgspec.Struct, frozen=True, tag=True):
    """The publisher is connected and drains the rings (it takes ``Seal``s from now on)."""

    pid: int
    connect_s: float = 0.0  # its start-up: PostgreSQL and Redis connected (NATS connects after)


class CyclePublished(msgspec.Struct, frozen=True, tag=True):
    """Every message of a sealed cycle is acknowledged (or outboxed, or dead-lettered)."""

    cycle: int
    counts: PublishCounts


class Fatal(msgspec.Struct, frozen=True, tag=True):
    """A child cannot go on (a setting or a dependency is wrong): the engine stops."""

    message: str


Message = (
    Assign
    | StartCycle
    | Stop
    | WorkerReady
    | CycleFetched
    | Seal
    | PublisherReady
    | CyclePublished
    | Fatal
)

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final[msgspec.msgpack.Decoder[Message]] = msgspec.msgpack.Decoder(Message)


def send(conn: Connection, msg: Message) -> None:
    conn.send_bytes(_encoder.encode(msg))


def recv(conn: Connection) -> Message:
    return _decoder.decode(conn.recv_bytes())
