"""Dead letters end to end: rejected and unpublishable messages, `dlq list` and `dlq replay`."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest
import redis
from nats.js.api import StorageType, StreamConfig

from testkit import EmulatorProcess, stream_messages
from testkit.services import POSTGRES_DSN
from tests.conftest import NATS_URL, run_cli
from tests.integration.real_engine import REDIS_URL, _drop_tables
from tests.integration.test_engine_cycle import _env

pytestmark = [pytest.mark.integration, pytest.mark.fault]

STALE_ONE_PER_BATCH = ["--market-state", "REGULAR", "--latency-ms", "1",
                       "--fault-stale-quote", "1.0", "--stale-age-s", "3600"]  # fmt: skip
"""One quote of each v7 answer is an hour old: rejected ``stale`` during regular hours."""
LONGER_AGE = {"INGEST_VALIDATION__MAX_AGE_REGULAR_S": "7200"}


def dead_lettered(names: dict[str, str]) -> list[str]:
    return [p["symbol"] for p, _ in stream_messages(NATS_URL, names["INGEST_NATS__DLQ_STREAM"])]


class TestDeadLetters:
    @pytest.mark.timeout(120)
    def test_rejected_quote_replayed_after_rules_change(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A quote an hour old in regular hours is rejected (stale); after raising
        max_age_regular_s, replay publishes it."""
        sym = tmp_path / "s.json"
        sym.write_text('["AAPL", "BRK-A", "MSFT"]')
        with EmulatorProcess(STALE_ONE_PER_BATCH) as emu:
            # one worker, one request: one stale quote
            env = _env(emu.url, nats_names, tmp_path, INGEST_SYMBOLS__FILE=str(sym),
                       INGEST_WORKERS__COUNT="1")  # fmt: skip
            r = run_cli(["run", "--once"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        (stale,) = dead_lettered(nats_names)
        listed = run_cli(["dlq", "list"], env)
        assert listed.returncode == 0 and stale in listed.stdout
        assert "stale" in listed.stdout
        dry = run_cli(["dlq", "replay", "--dry-run"], {**env, **LONGER_AGE})
        assert "would_replay=1" in dry.stdout
        still = run_cli(["dlq", "replay"], env)
        assert "still_invalid=1" in still.stdout
        done = run_cli(["dlq", "replay"], {**env, **LONGER_AGE})
        assert done.returncode == 0 and "replayed=1" in done.stdout, done.stdout + done.stderr
        quotes = {
            p["symbol"] for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
        }
        assert quotes == {"AAPL", "BRK-A", "MSFT"}
        assert stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"]) == []

    @pytest.mark.timeout(120)
    def test_message_refused_by_jetstream_is_dead_lettered_and_replayed(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A stream that refuses the messages (max size) sends them to the DLQ verbatim;
        once fixed, `dlq replay` re-drives them with their original Nats-Msg-Id."""
        sym = tmp_path / "s.json"
        sym.write_text('["AAPL", "MSFT"]')

        async def make_stream(max_size: int) -> None:
            nc = await nats.connect(NATS_URL)
            js = nc.jetstream()
            cfg = StreamConfig(
                name=nats_names["INGEST_NATS__STREAM"],
                subjects=[nats_names["INGEST_NATS__SUBJECT"]],
                storage=StorageType.FILE,
                duplicate_window=120,
                max_msg_size=max_size,
            )
            try:
                await js.update_stream(cfg)
            except nats.js.errors.NotFoundError:
                await js.add_stream(cfg)
            await nc.close()

        asyncio.run(make_stream(64))
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "1"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SYMBOLS__FILE=str(sym))
            r = run_cli(["run", "--once"], env)
        assert r.returncode == 4  # SINK_REFUSED: JetStream refused the quotes
        dlq = stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"])
        assert {p["kind"] for p, _ in dlq} == {"unpublishable"}
        assert {p["symbol"] for p, _ in dlq} == {"AAPL", "MSFT"}
        assert all("maximum" in p["detail"].lower() for p, _ in dlq), dlq[0][0]["detail"]
        asyncio.run(make_stream(-1))
        done = run_cli(["dlq", "replay"], env)
        assert "replayed=2" in done.stdout, done.stdout + done.stderr
        quotes = stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
        assert {p["symbol"] for p, _ in quotes} == {"AAPL", "MSFT"}
        assert {h["Nats-Msg-Id"] for _, h in quotes} == {p["original_msg_id"] for p, _ in dlq}


class TestReplayCompletesStorage:
    @pytest.mark.timeout(120)
    def test_replayed_quote_reaches_postgres_and_redis(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A re-validated letter is published AND written to PostgreSQL (and to the Redis latest
        quote, being newer than nothing there) before it leaves the DLQ."""
        uid = uuid.uuid4().hex[:10]
        table, prefix = f"md_{uid}", f"t{uid}:market:"
        sym = tmp_path / "s.json"
        sym.write_text('["AAPL", "BRK-A", "MSFT"]')
        try:
            with EmulatorProcess(STALE_ONE_PER_BATCH) as emu:
                env = _env(
                    emu.url, nats_names, tmp_path, INGEST_SYMBOLS__FILE=str(sym),
                    INGEST_WORKERS__COUNT="1",  # one request: one stale quote
                    INGEST_POSTGRES__ENABLED="true", INGEST_POSTGRES__DSN=POSTGRES_DSN,
                    INGEST_POSTGRES__TABLE=table, INGEST_REDIS__ENABLED="true",
                    INGEST_REDIS__URL=REDIS_URL, INGEST_REDIS__KEY_PREFIX=prefix,
                )  # fmt: skip
                r = run_cli(["run", "--once"], env)
            # (the exit status is not asserted: with PostgreSQL on, the publisher may outbox the
            # cycle while it connects, and the cycle then reports not ok)
            (stale,) = dead_lettered(nats_names)
            listed = run_cli(["dlq", "list"], env)
            assert stale in listed.stdout, r.stderr[-3000:]
            assert stale not in asyncio.run(_rows(table))
            done = run_cli(["dlq", "replay"], {**env, **LONGER_AGE})
            assert done.returncode == 0 and "replayed=1" in done.stdout, done.stdout + done.stderr
            assert asyncio.run(_rows(table)).get(stale) == 1
            assert "stored=1" in done.stdout, done.stdout
            cached = redis.Redis.from_url(REDIS_URL).get(f"{prefix}{stale}")
            assert cached is not None and json.loads(cached)["symbol"] == stale
            assert stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"]) == []
        finally:
            asyncio.run(_drop_tables(table))
            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(f"{prefix}*"))
            if keys:
                r.delete(*keys)


async def _rows(table: str) -> dict[str, int]:
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        rows = await conn.fetch(f"SELECT symbol, count(*) AS n FROM {table} GROUP BY 1")
    except asyncpg.UndefinedTableError:
        return {}
    finally:
        await conn.close()
    return {r["symbol"]: r["n"] for r in rows}
