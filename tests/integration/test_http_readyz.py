"""/readyz against real NATS, PostgreSQL and Redis: private instances this test starts on spare
ports (never the shared ones), each stopped and started again."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.config import (
    Config,
    HttpSettings,
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    Secret,
)
from engine.deps import nats as nats_dep
from engine.deps import redis as redis_dep
from engine.observe import metrics
from engine.observe.http import HttpServer
from testkit import free_port, wait_port
from tests.integration.test_http_support import FakeSource

pytestmark = pytest.mark.integration


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return found[-1] if found else shutil.which("postgres")


class Server:
    """One server process on a fixed port; ``stop()`` and ``start()`` again at will."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        *,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        log: Path,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.stop_signal = stop_signal
        self.user = user
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        kw: dict[str, Any] = {"user": self.user} if self.user else {}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw
            )
        try:
            wait_port(self.port, 20)
        except TimeoutError:
            self.stop()
            tail = self.log.read_text()[-2000:]
            raise RuntimeError(f"{self.name} did not start:\n{tail}") from None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def services() -> Iterator[dict[str, Server]]:
    nats_bin, redis_bin, pg_bin = (
        shutil.which("nats-server"),
        shutil.which("redis-server"),
        (_postgres_bin()),
    )
    if not (nats_bin and redis_bin and pg_bin):
        pytest.skip("needs nats-server, redis-server and PostgreSQL's server binaries")
    root = tempfile.mkdtemp(prefix="ingestion-readyz-")  # in /tmp: the postgres user can reach it
    os.chmod(root, 0o755)
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    base = Path(root)
    logs = Path(tempfile.mkdtemp(prefix="ingestion-readyz-logs-"))
    pg_data = base / "pg"
    initdb = str(Path(pg_bin).with_name("initdb"))
    subprocess.run(
        [initdb, "-D", str(pg_data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **({"user": user} if user else {}),
    )
    ports = {k: free_port() for k in ("nats", "nats_monitor", "redis", "postgres")}
    servers = {
        "nats": Server(
            "nats",
            [
                nats_bin,
                "-a",
                "127.0.0.1",
                "-p",
                str(ports["nats"]),
                "-js",
                "-sd",
                str(base / "js"),
                "-m",
                str(ports["nats_monitor"]),
            ],
            ports["nats"],
            log=logs / "nats.log",
        ),
        "redis": Server(
            "redis",
            [
                redis_bin,
                "--port",
                str(ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(logs),
            ],
            ports["redis"],
            log=logs / "redis.log",
        ),
        "postgres": Server(
            "postgres",
            [
                pg_bin,
                "-D",
                str(pg_data),
                "-p",
                str(ports["postgres"]),
                "-k",
                root,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            ports["postgres"],
            stop_signal=signal.SIGINT,  # fast shutdown (SIGTERM waits for clients)
            user=user,
            log=logs / "postgres.log",
        ),
    }
    servers["nats"].monitor_port = ports["nats_monitor"]  # type: ignore[attr-defined]
    try:
        for s in servers.values():
            s.start()
        yield servers
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


async def readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(url + "/readyz") as r:
        return r.status, await r.json()


async def wait_ready(url: str, want: int, limit_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        status, doc = await readyz(url)
        if status == want or time.monotonic() > deadline:
            assert status == want, doc
            return doc
        await asyncio.sleep(0.1)


async def test_readyz_follows_each_dependency(services: dict[str, Server]) -> None:
    metrics.reset()
    ports = {k: s.port for k, s in services.items()}
    config = Config(
        http=HttpSettings(port=0),
        nats=NatsSettings(url=Secret(f"nats://127.0.0.1:{ports['nats']}")),
        postgres=PostgresSettings(
            dsn=Secret(
                f"postgresql://postgres:not-a-real-secret@127.0.0.1:{ports['postgres']}/postgres"
            )
        ),
        redis=RedisSettings(url=Secret(f"redis://127.0.0.1:{ports['redis']}/0")),
    )
    await _ensure_streams(config.nats)  # as the publisher does (storage survives the restart)
    async with HttpServer.serve(config, FakeSource(cycles=1), check_timeout_s=2.0) as srv:
        doc = await wait_ready(srv.url, 200)
        assert set(doc["checks"]) == {"nats", "postgres", "redis", "breaker"}
        assert all(c["status"] == "ok" for c in doc["checks"].values())
        for name, server in services.items():
            server.stop()
            status, doc = await readyz(srv.url)
            assert status == 503, doc
            assert doc["status"] == "not_ready"
            assert doc["checks"][name]["status"] == "fail", doc
            assert {k for k, c in doc["checks"].items() if c["status"] == "fail"} == {name}
            assert "not-a-real-secret" not in str(doc)
            server.start()
            await wait_ready(srv.url, 200)
    reg = metrics.registry()
    for name in services:
        assert reg.get_sample_value("ingestion_dependency_up", {"dependency": name}) == 1
    metrics.reset()


async def _opened_connections(services: dict[str, Server]) -> dict[str, Any]:
    """Connections each private server has accepted so far (NATS: open and closed clients named
    as the probe; Redis: total received), and the readiness backends PostgreSQL serves now."""
    monitor = services["nats"].monitor_port  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{monitor}/connz?state=all&limit=1000"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        connz = await r.json()
    nats_opened = sum(1 for c in connz["connections"] if "probe" in (c.get("name") or ""))
    redis_cli = redis_dep.client(
        RedisSettings(url=Secret(f"redis://127.0.0.1:{services['redis'].port}/0"))
    )
    try:
        info = await redis_cli.info("stats")
    finally:
        await redis_cli.aclose()
    conn = await asyncpg.connect(
        f"postgresql://postgres@127.0.0.1:{services['postgres'].port}/postgres"
    )
    try:
        backends = await conn.fetch(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = $1",
            "ingestion-agent:readyz",
        )
    finally:
        await conn.close()
    return {
        "nats": nats_opened,
        "redis": int(info["total_connections_received"]),
        "postgres": sorted((r["pid"], r["backend_start"]) for r in backends),
    }


@pytest.mark.timeout(60)
async def test_readyz_reuses_its_connections(services: dict[str, Server]) -> None:
    """20 calls of /readyz open O(1) connections: one kept per dependency, not one per call."""
    metrics.reset()
    ports = {k: s.port for k, s in services.items()}
    config = Config(
        http=HttpSettings(port=0),
        nats=NatsSettings(url=Secret(f"nats://127.0.0.1:{ports['nats']}")),
        postgres=PostgresSettings(
            dsn=Secret(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres")
        ),
        redis=RedisSettings(url=Secret(f"redis://127.0.0.1:{ports['redis']}/0")),
    )
    await _ensure_streams(config.nats)
    async with HttpServer.serve(
        config, FakeSource(cycles=1), check_timeout_s=2.0, probe_interval_s=None
    ) as srv:
        await wait_ready(srv.url, 200)
        before = await _opened_connections(services)
        for _ in range(20):
            status, doc = await readyz(srv.url)
            assert status == 200, doc
        after = await _opened_connections(services)
    assert after["nats"] - before["nats"] <= 1, (before, after)
    # the counting itself opens one Redis connection per call
    assert after["redis"] - before["redis"] <= 2, (before, after)
    assert len(after["postgres"]) == 1 and after["postgres"] == before["postgres"], (before, after)
    deadline = time.monotonic() + 5
    while (await _opened_connections(services))["postgres"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the backend exits just after the client closes
    closed = await _opened_connections(services)
    assert closed["postgres"] == [], "the probe connection is closed on shutdown"
    metrics.reset()


async def _ensure_streams(settings: NatsSettings) -> None:
    """Create the quote and DLQ streams as the publisher does at its start."""
    async with nats_dep.connection(settings, attempts=3) as nc:
        js = nc.jetstream()
        await nats_dep.ensure_stream(js, settings.stream, settings.subject, settings)
        await nats_dep.ensure_stream(js, settings.dlq_stream, settings.dlq_subject, settings)


@pytest.mark.timeout(60)
async def test_readyz_fails_while_a_stream_is_missing() -> None:
    """The shared NATS, unique stream names: ready with both streams; the quote stream deleted
    -> 503 naming it; recreated -> 200; the DLQ stream deleted -> 503 naming it."""
    metrics.reset()
    tag = uuid.uuid4().hex[:10].upper()
    settings = NatsSettings(
        stream=f"RZ_Q_{tag}",
        subject=f"rz.{tag.lower()}.quote",
        dlq_stream=f"RZ_D_{tag}",
        dlq_subject=f"rz.{tag.lower()}.dlq",
    )
    config = Config(
        http=HttpSettings(port=0),
        nats=settings,
        postgres=PostgresSettings(enabled=False),
        redis=RedisSettings(enabled=False),
    )
    await _ensure_streams(settings)
    try:
        async with (
            HttpServer.serve(
                config, FakeSource(cycles=1), check_timeout_s=2.0, probe_interval_s=None
            ) as srv,
            nats_dep.connection(settings, attempts=3) as nc,
        ):
            js = nc.jetstream()
            doc = await wait_ready(srv.url, 200)
            assert doc["checks"]["nats"]["status"] == "ok", doc
            for missing in (settings.stream, settings.dlq_stream):
                await js.delete_stream(missing)
                status, doc = await readyz(srv.url)
                assert status == 503, doc
                nats_doc = doc["checks"]["nats"]
                assert nats_doc["status"] == "fail", doc
                assert nats_doc["error"] == "StreamMissing", doc
                assert missing in nats_doc["detail"], doc
                await _ensure_streams(settings)
                doc = await wait_ready(srv.url, 200)
                assert doc["checks"]["nats"]["status"] == "ok", doc
    finally:
        async with nats_dep.connection(settings, attempts=3) as nc:
            js = nc.jetstream()
            for name in (settings.stream, settings.dlq_stream):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)
    metrics.reset()
