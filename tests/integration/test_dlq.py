"""Dead letters end to end: rejected and unpublishable messages, `dlq list` and `dlq replay`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from testkit import EmulatorProcess, stream_messages
from tests.conftest import NATS_URL, run_cli
from tests.integration.test_engine_cycle import _env

pytestmark = [pytest.mark.integration, pytest.mark.fault]


class TestDeadLetters:
    @pytest.mark.timeout(120)
    def test_rejected_quote_replayed_after_rules_change(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """BRK-A is rejected (price > max); after raising max_price, replay publishes it."""
        sym = tmp_path / "s.json"
        sym.write_text('["AAPL", "BRK-A", "MSFT"]')
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "1"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SYMBOLS__FILE=str(sym))
            r = run_cli(["run", "--once"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        listed = run_cli(["dlq", "list"], env)
        assert listed.returncode == 0 and "BRK-A" in listed.stdout
        assert "price_out_of_range" in listed.stdout
        dry = run_cli(
            ["dlq", "replay", "--dry-run"], {**env, "INGEST_VALIDATION__MAX_PRICE": "1e7"}
        )
        assert "would_replay=1" in dry.stdout
        still = run_cli(["dlq", "replay"], env)
        assert "still_invalid=1" in still.stdout
        done = run_cli(["dlq", "replay"], {**env, "INGEST_VALIDATION__MAX_PRICE": "1e7"})
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
        assert r.returncode == 1  # the cycle could not publish its quotes
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
