"""The bundled Yahoo emulator and the engine as subprocesses (context managers)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root directory (the subprocesses' working directory)."""


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
        with urllib.request.urlopen(self.url + "/_emulator/stats", timeout=5) as r:
            stats: dict[str, Any] = orjson.loads(r.read())
            return stats

    def configure(self, **patch: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + "/_emulator/config",
            data=orjson.dumps(patch),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            config: dict[str, Any] = orjson.loads(r.read())
            return config


class EngineProcess:
    """``ingestion-agent run`` as a subprocess whose JSON log events can be awaited."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], *, cwd: Path | None = None
    ) -> None:
        """``cwd``: the checkout whose ``engine`` package runs (default: this one)."""
        self.args = list(args)
        self.env = env
        self.cwd = cwd or ROOT
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self.stdout = ""
        self._cond = threading.Condition()

    def __enter__(self) -> EngineProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *self.args],
            cwd=self.cwd,
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
        try:
            for line in self.proc.stderr:
                try:
                    ev = orjson.loads(line)
                except orjson.JSONDecodeError:
                    ev = {"event": "_text", "text": line.rstrip()}
                with self._cond:
                    self.events.append(ev)
                    self._cond.notify_all()
        except ValueError:  # closed by __exit__ while a killed engine's child still held it
            return

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
