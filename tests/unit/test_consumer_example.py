"""docs/examples/consumer.py without a server: how it ends when nothing more arrives.

(tests/integration/test_messages_consumer.py runs it against a real engine's streams.)
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import nats.errors
import pytest

from testkit import load_script

CONSUMER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "consumer.py"


def load_consumer() -> ModuleType:
    return load_script(CONSUMER, "docs_example_consumer")


class Msg:
    def __init__(self, seq: int) -> None:
        self.data = json.dumps({"schema_version": 1, "symbol": "AAPL"}).encode()
        self.headers = {"Nats-Msg-Id": f"AAPL:{seq}:1"}
        self.metadata = SimpleNamespace(sequence=SimpleNamespace(stream=seq))
        self.acked = False

    async def ack_sync(self) -> None:
        self.acked = True


class Sub:
    """One batch of two messages, then ``idle`` raised by every fetch."""

    def __init__(self, idle: BaseException) -> None:
        self.batches = [[Msg(1), Msg(2)]]
        self.idle = idle

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:  # noqa: ASYNC109 (nats-py's)
        if self.batches:
            return self.batches.pop(0)
        raise self.idle


class Conn:
    def __init__(self, sub: Sub) -> None:
        self.sub = sub
        self.closed = False

    def jetstream(self) -> Any:
        async def pull_subscribe(*args: Any, **kwargs: Any) -> Sub:
            return self.sub

        return SimpleNamespace(pull_subscribe=pull_subscribe)

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "idle",
    # nats-py raises its own TimeoutError, or asyncio's bare one (the builtin since Python
    # 3.11) when the deadline runs out between the requests of one fetch (on a loaded machine)
    [nats.errors.TimeoutError(), TimeoutError()],
    ids=["nats", "asyncio"],
)
def test_idle_fetch_ends_the_run_with_exit_0(
    idle: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    consumer = load_consumer()
    conn = Conn(Sub(idle))

    async def connect(*args: Any, **kwargs: Any) -> Conn:
        return conn

    monkeypatch.setattr(consumer.nats, "connect", connect)
    argv = ["consumer.py", "--stream", "S", "--subject", "s.q", "--count", "10", "--idle", "0.1"]
    monkeypatch.setattr("sys.argv", argv)
    assert consumer.main() == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2]
    assert "consumed 2 message(s) from S" in err
    assert conn.closed
