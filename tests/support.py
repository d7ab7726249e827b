"""Helpers for integration tests: emulator subprocess, JetStream inspection."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
import nats.js.errors
import orjson

ROOT = Path(__file__).resolve().parents[1]


class EmulatorProcess:
    """``yahoo-emulator --port 0 ...`` as a subprocess; ``url`` once it listens."""

    def __init__(self, args: Sequence[str] = (), *, access_log: Path | None = None) -> None:
        self.args = list(args)
        if access_log is not None:
            self.args += ["--access-log", str(access_log)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yahoo_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *self.args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError("emulator did not start:\n" + "".join(self.output))
        # keep draining its output so it never blocks on a full pipe
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self._drainer.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.url + "/_emulator/stats", timeout=5) as r:
            return orjson.loads(r.read())

    def configure(self, **patch: Any) -> dict[str, Any]:
        import urllib.request

        req = urllib.request.Request(
            self.url + "/_emulator/config",
            data=orjson.dumps(patch),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return orjson.loads(r.read())


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
    asyncio.run(_delete(url, streams))


class EngineProcess:
    """``ingestion-agent run`` as a subprocess whose JSON log events can be awaited."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.args = list(args)
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self.stdout = ""
        self._cond = threading.Condition()

    def __enter__(self) -> EngineProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                ev = {"event": "_text", "text": line.rstrip()}
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()

    def wait_event(
        self, name: str, timeout: float = 30, count: int = 1, **match: Any
    ) -> dict[str, Any]:
        """Block until the ``count``-th event called ``name`` (with matching fields) is logged."""

        def found() -> list[dict[str, Any]]:
            return [
                e
                for e in self.events
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items())
            ]

        with self._cond:
            ok = self._cond.wait_for(lambda: len(found()) >= count, timeout=timeout)
            if not ok:
                tail = "\n".join(str(e) for e in self.events[-30:])
                raise AssertionError(
                    f"event {name} x{count} not seen in {timeout}s; last events:\n{tail}"
                )
            return found()[count - 1]

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.wait(timeout)
        self.stdout = self.proc.stdout.read()
        self._reader.join(10)  # every log line is in self.events once this returns
        return self.proc.returncode

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def wait_for(cond: Callable[[], bool], timeout: float = 30, every: float = 0.02) -> None:
    """Poll ``cond`` (a state we cannot subscribe to, e.g. another process's counters)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A private redis-server on a spare port that a test can kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", "/tmp"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class OwnNats:
    """A private ``nats-server -js`` on a spare port with its own store; kill and start again."""

    def __init__(self, store_dir: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store_dir = store_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "nats-server",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start")
            time.sleep(0.02)

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
