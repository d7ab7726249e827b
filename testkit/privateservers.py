"""Private NATS (JetStream), PostgreSQL and Redis servers that a bench or test can stop, restart
and wipe: each on a spare loopback port, with its data in a directory of its own.

* :class:`PrivateNats` - ``nats-server -js`` with its own store dir; ``restart(wipe=True)``
  brings it back with empty storage (streams gone);
* :class:`PrivatePostgres` - a cluster made by ``initdb`` (trust auth) and run by ``pg_ctl``;
  as root the cluster belongs to the ``postgres`` user (PostgreSQL refuses to run as root);
* :class:`PrivateRedis` - ``redis-server`` without persistence.

Each keeps its port across restarts, so a client's URL stays valid. They are context managers
(``with PrivateNats(tmp) as nats: ...`` starts it and stops it on exit); ``stop`` is
idempotent. ``down_windows`` records (start, end) epoch seconds of every stop, for a bench that
must leave out the time a dependency was down.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from testkit.net import free_port, wait_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
"""Where ``initdb`` and ``pg_ctl`` live (PostgreSQL 15 on Debian)."""


class _PrivateServer:
    """A server on :attr:`port` (kept across restarts) whose down times are recorded."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.down_windows: list[tuple[float, float | None]] = []

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _mark_down(self) -> None:
        self.down_windows.append((time.time(), None))

    def _mark_up(self) -> None:
        if self.down_windows and self.down_windows[-1][1] is None:
            self.down_windows[-1] = (self.down_windows[-1][0], time.time())

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _ProcessServer(_PrivateServer):
    """A server that runs in the foreground as our child process."""

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.port, timeout=15)
        except TimeoutError as exc:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
            raise RuntimeError(f"{self.name} did not start on port {self.port}") from exc
        self._mark_up()

    def stop(self) -> None:
        """SIGTERM (the server flushes what it acknowledged), SIGKILL after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._mark_down()


class PrivateNats(_ProcessServer):
    """``nats-server -js`` on a spare port, storing under ``store_dir``."""

    name = "nats-server"

    def __init__(self, store_dir: Path) -> None:
        super().__init__()
        self.store_dir = Path(store_dir)
        self.url = f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            *("nats-server", "-a", "127.0.0.1", "-p", str(self.port)),
            *("-js", "-sd", str(self.store_dir)),
        ]

    def wipe(self) -> None:
        """Delete the JetStream store (the server must be stopped)."""
        if self.running:
            raise RuntimeError("stop nats-server before wiping its store")
        shutil.rmtree(self.store_dir, ignore_errors=True)

    def restart(self, down_s: float = 0.0, *, wipe: bool = False) -> None:
        """Stop, optionally wipe the store (every stream is gone), start on the same port."""
        self.stop()
        if wipe:
            self.wipe()
        if down_s > 0:
            time.sleep(down_s)
        self.start()


class PrivateRedis(_ProcessServer):
    """``redis-server`` on a spare port, no persistence."""

    name = "redis-server"

    def __init__(self, work_dir: Path) -> None:
        super().__init__()
        self.work_dir = Path(work_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.work_dir)),
        ]


class PrivatePostgres(_PrivateServer):
    """A PostgreSQL cluster in ``base_dir`` (``initdb`` on first start), run by ``pg_ctl``.

    ``dsn`` points at the ``postgres`` database as the ``postgres`` superuser (trust auth).
    Without ``base_dir`` the cluster lives in a fresh directory under the system temp dir
    (reachable by the ``postgres`` user, unlike a root-only pytest tmp_path), removed on exit.
    """

    name = "postgres"

    def __init__(self, base_dir: Path | None = None) -> None:
        super().__init__()
        self._owns_dir = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="private-pg-")) if base_dir is None else Path(base_dir)
        )
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *argv: str, timeout: float = 60) -> None:
        cmd = list(argv)
        if self._user is not None:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr or res.stdout}")

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def initdb(self) -> None:
        """Create the cluster (once)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._own(self.base_dir)
        self._own(self.data_dir)
        self._own(self.socket_dir)
        self._run(
            str(PG_BIN / "initdb"),
            *("-D", str(self.data_dir), "-U", "postgres", "-A", "trust"),
            *("-E", "UTF8", "--no-sync"),
        )

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def start(self) -> None:
        self.initdb()
        if self.running:
            return
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data_dir), "-o", opts, "-w", "-t", "60"),
            *("-l", str(self.base_dir / "postgres.log"), "start"),
        )
        wait_port(self.port, timeout=15)
        self._mark_up()

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (open connections are closed); a no-op when stopped."""
        if not self.running:
            return
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        self._mark_down()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
