"""A restarted engine publishes nothing twice: the last published identity per symbol is
restored at start (from PostgreSQL or Redis), so unchanged quotes stay unchanged even once
JetStream's duplicate window has passed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.config import Config, PostgresSettings, RedisSettings, Secret, WorkersSettings
from engine.runtime import identity
from testkit import ROOT, EmulatorProcess, stream_messages
from tests.conftest import NATS_URL, run_cli
from tests.integration.test_store import drop_table

pytestmark = [pytest.mark.integration]

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
N_SYMBOLS = 150
WINDOW_S = 1.0
SUMMARY = re.compile(r"(\w+)=([\d.]+)")


async def _drop_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _summary(stdout: str) -> dict[str, float]:
    line = stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in SUMMARY.findall(line)}


def _env(
    emu: EmulatorProcess, names: dict[str, str], tmp: Path, uid: str, source: str
) -> dict[str, str]:
    symbols = json.loads((ROOT / "symbols.json").read_text())[:N_SYMBOLS]
    (tmp / "symbols.json").write_text(json.dumps(symbols))
    (tmp / "empty.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(names)
    env.update(
        {
            "INGEST_CONFIG": str(tmp / "empty.toml"),
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_NATS__DUPLICATE_WINDOW_S": str(WINDOW_S),
            "INGEST_NATS__OUTBOX_DIR": str(tmp / "outbox"),
            "INGEST_YAHOO__BASE_URL": emu.url,
            "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
            "INGEST_YAHOO__BACKOFF_BASE_S": "0.05",
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_SYMBOLS__FILE": str(tmp / "symbols.json"),
            "INGEST_POSTGRES__ENABLED": str(source == "postgres").lower(),
            "INGEST_POSTGRES__DSN": DSN,
            "INGEST_POSTGRES__TABLE": f"t_ident_{uid}",
            "INGEST_POSTGRES__SPILL_DIR": str(tmp / "spill"),
            "INGEST_REDIS__ENABLED": str(source == "redis").lower(),
            "INGEST_REDIS__URL": REDIS_URL,
            "INGEST_REDIS__KEY_PREFIX": f"t{uid}:market:",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
        }
    )
    return env


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["postgres", "redis"])
def test_restart_after_the_duplicate_window_publishes_no_unchanged_quote(
    source: str, nats_names: dict[str, str], uid: str, tmp_path: Path
) -> None:
    """Run once, wait out the stream's duplicate window, run again over frozen prices: the
    second run publishes nothing (every quote is unchanged against the restored identities)."""
    stream = nats_names["INGEST_NATS__STREAM"]
    try:
        with EmulatorProcess(["--market-state", "REGULAR", "--freeze", "--latency-ms", "2"]) as emu:
            env = _env(emu, nats_names, tmp_path, uid, source)
            first = run_cli(["run", "--once"], env)
            assert first.returncode == 0, first.stderr[-3000:]
            n1 = len(stream_messages(NATS_URL, stream))
            time.sleep(WINDOW_S * 1.5)  # JetStream no longer drops a re-publish
            second = run_cli(["run", "--once"], env)
            assert second.returncode == 0, second.stderr[-3000:]
        s2 = _summary(second.stdout)
        n2 = len(stream_messages(NATS_URL, stream))
        assert n1 > N_SYMBOLS * 0.9
        assert n2 == n1, second.stderr[-2000:]
        assert s2["published"] == 0
        assert s2["deduplicated"] == s2["valid"] > N_SYMBOLS * 0.9
    finally:
        asyncio.run(drop_table(DSN, f"t_ident_{uid}"))
        asyncio.run(_drop_keys(f"t{uid}:market:"))


async def test_a_source_that_is_down_is_skipped_quickly() -> None:
    """Nothing listens on the configured ports: restore returns nothing, it does not raise."""
    config = Config(
        postgres=PostgresSettings(
            dsn=Secret("postgresql://postgres@127.0.0.1:1/test"), command_timeout_s=2.0
        ),
        redis=RedisSettings(url=Secret("redis://127.0.0.1:1/0"), timeout_s=1.0),
        workers=WorkersSettings(skip_unchanged=True),
    )
    started = time.monotonic()
    assert await identity.restore(config, ["AAPL", "MSFT"]) == {}
    assert time.monotonic() - started < identity.RESTORE_BUDGET_S


async def test_postgres_before_the_first_migration_gives_nothing(uid: str) -> None:
    """No quote table yet (first start): nothing restored, no error."""
    settings = PostgresSettings(dsn=Secret(DSN), table=f"t_absent_{uid}")
    assert await identity.from_postgres(settings, ["AAPL"], now_s=time.time()) == {}
