"""PostgreSQL cannot miss what the stream holds: quotes JetStream acknowledged but never COPY'd
(the engine killed between the two) are written by the reconcile the next start runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from engine.config import NatsSettings, Secret
from engine.sinks.jetstream import JetStreamPublisher
from engine.sinks.reconcile import reconcile, stream_tail
from engine.sinks.store import QuoteStore
from testkit import EmulatorProcess
from tests.conftest import NATS_URL, run_cli
from tests.integration.test_engine_cycle import _env
from tests.integration.test_engine_storage import _rows, _stream_ids
from tests.integration.test_store import DSN, drop_table, make_quote, pg_settings

pytestmark = [pytest.mark.integration, pytest.mark.fault]

NOW = int(time.time())


@pytest.fixture
def table() -> Iterator[str]:
    name = f"t_recon_{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(drop_table(DSN, name))


def nats_settings(names: dict[str, str]) -> NatsSettings:
    return NatsSettings(
        url=Secret(NATS_URL),
        stream=names["INGEST_NATS__STREAM"],
        subject=names["INGEST_NATS__SUBJECT"],
        dlq_stream=names["INGEST_NATS__DLQ_STREAM"],
        dlq_subject=names["INGEST_NATS__DLQ_SUBJECT"],
        ack_timeout_s=0.5,
        connect_timeout_s=1.0,
    )


class TestReconcile:
    @pytest.mark.timeout(60)
    async def test_acked_but_never_copied_quotes_reach_the_table(
        self, nats_names: dict[str, str], table: str, tmp_path: Path
    ) -> None:
        """Quotes in the stream, not in the table (host killed after the ack, before COPY): the
        reconcile writes every one of them, and a second reconcile writes none."""
        s = nats_settings(nats_names)
        quotes = [make_quote(f"R{i:04d}", NOW - 30) for i in range(250)]
        enc = msgspec.json.Encoder()
        async with JetStreamPublisher.connect(s, attempts=3) as jsp:
            for q in quotes:  # as the publisher sends them
                await jsp.js.publish(
                    s.subject, enc.encode(q.to_message()), headers={"Nats-Msg-Id": q.msg_id}
                )
            await jsp.js.publish(s.subject, b"not a quote", headers={"Nats-Msg-Id": "junk"})
            async with QuoteStore.connect(pg_settings(table, tmp_path / "spill")) as store:
                tail = await stream_tail(jsp.js, s.stream)
                assert tail is not None
                first = await reconcile(jsp.js, store, s, tail=tail, lookback_s=600)
                second = await reconcile(jsp.js, store, s, tail=tail, lookback_s=600)
        assert first.messages == 251
        assert first.undecodable == 1
        assert first.inserted == 250
        assert second.inserted == 0
        assert await _rows(table) == {(q.symbol, q.market_time) for q in quotes}

    @pytest.mark.timeout(60)
    async def test_lookback_bounds_what_is_read(
        self, nats_names: dict[str, str], table: str, tmp_path: Path
    ) -> None:
        """Only messages stored within lookback_s before the stream's last one are read."""
        s = nats_settings(nats_names)
        enc = msgspec.json.Encoder()
        async with JetStreamPublisher.connect(s, attempts=3) as jsp:
            old = make_quote("OLD", NOW - 60)
            await jsp.js.publish(
                s.subject, enc.encode(old.to_message()), headers={"Nats-Msg-Id": old.msg_id}
            )
            await asyncio.sleep(1.5)
            new = make_quote("NEW", NOW - 30)
            await jsp.js.publish(
                s.subject, enc.encode(new.to_message()), headers={"Nats-Msg-Id": new.msg_id}
            )
            async with QuoteStore.connect(pg_settings(table, tmp_path / "spill")) as store:
                tail = await stream_tail(jsp.js, s.stream)
                assert tail is not None
                done = await reconcile(jsp.js, store, s, tail=tail, lookback_s=0.5)
        assert (done.messages, done.inserted) == (1, 1)
        assert await _rows(table) == {("NEW", NOW - 30)}


class TestEngineRestart:
    @pytest.mark.timeout(240)
    def test_quotes_published_without_postgres_are_stored_by_the_next_start(
        self, nats_names: dict[str, str], tmp_path: Path, table: str
    ) -> None:
        """A run whose quotes reached JetStream but not PostgreSQL (here: PostgreSQL disabled,
        the same state a kill between ack and COPY leaves): the next start stores them."""
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            first = run_cli(["run", "--once"], _env(emu.url, nats_names, tmp_path))
            assert first.returncode == 0, first.stderr[-3000:]
            published = _stream_ids(nats_names["INGEST_NATS__STREAM"])
            env = _env(
                emu.url, nats_names, tmp_path,
                INGEST_POSTGRES__ENABLED="true",
                INGEST_POSTGRES__DSN=DSN,
                INGEST_POSTGRES__TABLE=table,
                INGEST_POSTGRES__RECONCILE_LOOKBACK_S="600",
            )  # fmt: skip
            second = run_cli(["run", "--once"], env)
            assert second.returncode == 0, second.stderr[-3000:]
        assert len(published) > 4000
        stored = asyncio.run(_rows(table))
        assert published <= stored, f"{len(published - stored)} published quotes not stored"
        assert '"pg_reconciled"' in second.stdout + second.stderr
