"""Private servers on spare loopback ports that a test can kill and start again."""

from __future__ import annotations

import subprocess
from pathlib import Path

from testkit.net import free_port, wait_port


class _OwnServer:
    """A server process on :attr:`port`, started by :meth:`start` and ready once it listens."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.port, timeout=10)
        except TimeoutError as exc:
            raise RuntimeError(f"{self.name} did not start") from exc


class OwnRedis(_OwnServer):
    """A private redis-server on a spare port that a test can kill and start again."""

    name = "redis-server"

    def __init__(self) -> None:
        super().__init__()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", "/tmp"),
        ]

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class OwnNats(_OwnServer):
    """A private ``nats-server -js`` on a spare port with its own store; kill and start again.
    ``jetstream=False``: a plain NATS server, as a misconfigured deployment would run it."""

    name = "nats-server"

    def __init__(self, store_dir: Path, *, jetstream: bool = True) -> None:
        super().__init__()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store_dir = store_dir
        self.jetstream = jetstream

    def argv(self) -> list[str]:
        js = ("-js", "-sd", str(self.store_dir)) if self.jetstream else ()
        return [*("nats-server", "-a", "127.0.0.1", "-p", str(self.port)), *js]

    def kill(self) -> None:
        """Stop the server (SIGTERM: JetStream flushes what it acknowledged; a SIGKILL can lose
        acknowledged writes still in nats-server's buffers, which no client can prevent)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
