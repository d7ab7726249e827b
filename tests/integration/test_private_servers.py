"""testkit.privateservers: private NATS/PostgreSQL/Redis that keep their port across restarts,
lose their data only when wiped, and record when they were down."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import nats
import nats.js.errors
import pytest
import redis

from testkit.privateservers import PrivateNats, PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _add_stream(url: str, name: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(name=name, subjects=[f"{name.lower()}.>"])
    finally:
        await nc.close()


async def _has_stream(url: str, name: str) -> bool:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().stream_info(name)
        return True
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()


@pytest.mark.timeout(30)
async def test_nats_restart_keeps_streams_and_wipe_loses_them(tmp_path: Path) -> None:
    with PrivateNats(tmp_path / "js") as srv:
        port = srv.port
        await _add_stream(srv.url, "KEEP")
        srv.restart()
        assert srv.port == port and srv.running
        assert await _has_stream(srv.url, "KEEP")
        srv.restart(wipe=True)
        assert not await _has_stream(srv.url, "KEEP")
        assert len(srv.down_windows) == 2
        assert all(end is not None and end >= start for start, end in srv.down_windows)
    assert not _listening(port)
    assert srv.down_windows[-1][1] is None  # stopped for good at exit


@pytest.mark.timeout(20)
def test_nats_wipe_refuses_a_running_server(tmp_path: Path) -> None:
    with PrivateNats(tmp_path / "js") as srv, pytest.raises(RuntimeError, match="stop"):
        srv.wipe()


@pytest.mark.timeout(20)
def test_redis_restart_loses_keys_and_keeps_port(tmp_path: Path) -> None:
    with PrivateRedis(tmp_path / "redis") as srv:
        r = redis.Redis.from_url(srv.url)
        try:
            r.set("k", "v")
            srv.restart()
            assert r.get("k") is None  # no persistence
            r.set("k", "w")
            assert r.get("k") == b"w"
        finally:
            r.close()
        srv.stop()
        srv.stop()  # idempotent
        assert not _listening(srv.port)


@pytest.mark.timeout(90)
async def test_postgres_keeps_rows_across_restart_and_is_down_between() -> None:
    with PrivatePostgres() as pg:
        base = pg.base_dir
        conn = await asyncpg.connect(pg.dsn)
        try:
            await conn.execute("CREATE TABLE t (x int)")
            await conn.execute("INSERT INTO t VALUES (1), (2)")
        finally:
            await conn.close()
        pg.stop()
        assert not pg.running and not _listening(pg.port)
        with pytest.raises(OSError):
            await asyncpg.connect(pg.dsn, timeout=2)
        pg.start()
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM t") == 2
        finally:
            await conn.close()
        assert len(pg.down_windows) == 1 and pg.down_windows[0][1] is not None
    assert not base.exists()  # its own temp dir is removed at exit
