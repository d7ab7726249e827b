"""Real messages against schemas/*.schema.json, and docs/examples/consumer.py against them.

A real `ingestion-agent run --once` (emulator with corrupt and stale quotes injected,
PostgreSQL, Redis, JetStream - unique names per test) publishes quotes and dead letters; every
message in both streams, and every latest-quote value in Redis, must validate against its schema.
The documented example consumer then reads the same streams as a durable pull consumer.
The earnings job's real messages are validated the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.js.errors
import pytest
import redis
from jsonschema import FormatChecker
from jsonschema.validators import validator_for
from nats.js.api import StreamConfig

from testkit import EmulatorProcess, create_refusing_stream, stream_messages
from tests.conftest import NATS_URL, run_cli
from tests.integration.test_earnings_sync import SLOT, TODAY, Env, env  # noqa: F401
from tests.integration.test_engine_cycle import _env, summary
from tests.integration.test_engine_storage import DSN, REDIS_URL
from tests.integration.test_store import drop_table

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = ROOT / "docs" / "examples" / "consumer.py"
SCHEMAS = ROOT / "schemas"


def validate_all(schema_file: str, docs: list[Any]) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    v = validator_for(schema)(schema, format_checker=FormatChecker())
    bad = [(d, [e.message for e in v.iter_errors(d)]) for d in docs]
    bad = [b for b in bad if b[1]]
    assert not bad, f"{len(bad)} of {len(docs)} messages invalid against {schema_file}: {bad[:3]}"


def consume(stream: str, subject: str, durable: str, count: int) -> list[dict[str, Any]]:
    r = subprocess.run(
        [sys.executable, str(CONSUMER), "--server", NATS_URL, "--stream", stream,
         "--subject", subject, "--durable", durable, "--count", str(count), "--idle", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "encountered error" not in r.stderr, r.stderr  # nats-py's report, e.g. a drain timeout
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert f"consumed {len(lines)} message(s) from {stream}" in r.stderr
    return lines


@pytest.fixture
def table() -> Iterator[str]:
    name = f"md_{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(drop_table(DSN, name))


@pytest.fixture
def key_prefix() -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:10]}:market:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.mark.timeout(180)
def test_real_cycle_messages_validate_and_example_consumer_reads_them(
    nats_names: dict[str, str], tmp_path: Path, table: str, key_prefix: str
) -> None:
    universe = json.loads((ROOT / "symbols.json").read_text())[:400]
    syms = [u["symbol"] for u in universe] + ["BRK-A", "BRKS"]  # BRK-A publishes; not_traded
    sym_file = tmp_path / "symbols.json"
    sym_file.write_text(json.dumps(sorted(set(syms))))
    corrupt = universe[7]["symbol"]  # ~1e9 for it: price_out_of_range
    args = ["--market-state", "REGULAR", "--latency-ms", "2", "--seed", "5",
            "--fault-invalid-quote", "0.7", "--fault-stale-quote", "0.7",
            "--poison-symbols", f"{corrupt}=huge_price"]  # fmt: skip
    with EmulatorProcess(args) as emu:
        env = _env(
            emu.url, nats_names, tmp_path,
            INGEST_SYMBOLS__FILE=str(sym_file),
            INGEST_POSTGRES__ENABLED="true", INGEST_POSTGRES__DSN=DSN,
            INGEST_POSTGRES__TABLE=table,
            INGEST_REDIS__ENABLED="true", INGEST_REDIS__URL=REDIS_URL,
            INGEST_REDIS__KEY_PREFIX=key_prefix,
        )  # fmt: skip
        r = run_cli(["run", "--once"], env, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    s = summary(r.stdout)

    quote_stream, dlq_stream = (
        nats_names["INGEST_NATS__STREAM"],
        nats_names["INGEST_NATS__DLQ_STREAM"],
    )
    quotes = stream_messages(NATS_URL, quote_stream)
    letters = stream_messages(NATS_URL, dlq_stream)
    assert len(quotes) == s["published"] > 300
    assert len(letters) == s["rejected"] > 0
    reasons = Counter(p["reason"] for p, _ in letters)
    assert {"price_out_of_range", "not_traded", "stale"} <= set(reasons), reasons
    validate_all("market_quote.v1.schema.json", [p for p, _ in quotes])
    validate_all("market_dlq.v1.schema.json", [p for p, _ in letters])
    # the headers documented in docs/messages.md
    for p, h in quotes:
        assert h["Nats-Msg-Id"] == f"{p['symbol']}:{p['market_time']}:{p['volume']}"
    for p, h in letters:
        if p["market_time"]:
            assert h["Nats-Msg-Id"] == f"{p['symbol']}:{p['reason']}:{p['market_time']}"
        else:  # the ingest second (docs/messages.md)
            second = int(dt.datetime.fromisoformat(p["ingest_time"]).timestamp())
            assert h["Nats-Msg-Id"] == f"{p['symbol']}:{p['reason']}:i{second}"

    # Redis market:{SYMBOL} holds the same document
    rd = redis.Redis.from_url(REDIS_URL)
    try:
        cached = [json.loads(v) for v in rd.mget([key_prefix + p["symbol"] for p, _ in quotes])]
    finally:
        rd.close()
    assert all(c is not None for c in cached)
    validate_all("market_quote.v1.schema.json", cached)
    assert {c["correlation_id"] for c in cached} == {p["correlation_id"] for p, _ in quotes}

    # the example consumer: a durable pull consumer resumes where it stopped
    subject = nats_names["INGEST_NATS__SUBJECT"]
    first = consume(quote_stream, subject, "docs-example", 5)
    rest = consume(quote_stream, subject, "docs-example", 100_000)
    got = first + rest
    assert [g["seq"] for g in got] == list(range(1, len(quotes) + 1))
    assert [(g["message"], g["msg_id"]) for g in got] == [(p, h["Nats-Msg-Id"]) for p, h in quotes]
    assert consume(quote_stream, subject, "docs-example", 10) == []  # all acknowledged
    dead = consume(dlq_stream, nats_names["INGEST_NATS__DLQ_SUBJECT"], "docs-example-dlq", 10_000)
    assert [d["message"] for d in dead] == [p for p, _ in letters]


@pytest.mark.timeout(120)
def test_unpublishable_letters_validate(nats_names: dict[str, str], tmp_path: Path) -> None:
    """A quote stream that refuses every message (max size) yields 'unpublishable' letters."""

    create_refusing_stream(
        NATS_URL, nats_names["INGEST_NATS__STREAM"], nats_names["INGEST_NATS__SUBJECT"]
    )
    sym = tmp_path / "s.json"
    sym.write_text('["AAPL", "MSFT"]')
    with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "1"]) as emu:
        r = run_cli(["run", "--once"], _env(emu.url, nats_names, tmp_path,
                                            INGEST_SYMBOLS__FILE=str(sym)))  # fmt: skip
    assert r.returncode == 4  # SINK_REFUSED: JetStream refused the quotes
    letters = stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"])
    assert {p["kind"] for p, _ in letters} == {"unpublishable"} and len(letters) == 2
    validate_all("market_dlq.v1.schema.json", [p for p, _ in letters])
    validate_all("market_quote.v1.schema.json", [json.loads(p["original"]) for p, _ in letters])
    for p, h in letters:
        assert h["Nats-Msg-Id"] == f"unpublishable:{p['original_msg_id']}"


@pytest.mark.timeout(120)
async def test_real_earnings_messages_validate(env: Env) -> None:  # noqa: F811
    settings = msgspec.structs.replace(env.settings, fundamentals=False)
    async with env.services(settings) as svc:
        report = await svc.sync.run(TODAY, trigger="schedule", covers=SLOT)
    assert report.ok, report.error
    msgs = await env.messages()
    kinds = Counter(m["kind"] for m, _ in msgs)
    assert kinds["reporting_today"] > 0 and kinds["eps_reported"] > 0, kinds
    validate_all("earnings_reported.v1.schema.json", [m for m, _ in msgs])
    assert all(i == f"earnings:{m['kind']}:{m['symbol']}:{m['event_date']}" for m, i in msgs)

    loop = asyncio.get_running_loop()
    lines = await loop.run_in_executor(
        None, consume, settings.stream, settings.subject, "docs-example", 10_000
    )
    assert [x["message"] for x in lines] == [m for m, _ in msgs]


def test_consumer_refuses_an_unknown_schema_version(uid: str) -> None:
    """A message of a newer, unknown layout stops the example (exit 3) and stays unacked."""
    stream, subject = f"T_{uid}_V", f"test.{uid}.v"

    async def setup() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
        await js.publish(subject, b'{"schema_version": 1, "symbol": "A"}')
        await js.publish(subject, b'{"schema_version": 2, "symbol": "B"}')
        await nc.close()

    async def teardown() -> None:
        nc = await nats.connect(NATS_URL)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(setup())
    try:
        cmd = [sys.executable, str(CONSUMER), "--server", NATS_URL, "--stream", stream,
               "--subject", subject, "--durable", "d", "--count", "5", "--idle", "1"]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 3, r.stderr
        assert [json.loads(x)["message"]["symbol"] for x in r.stdout.splitlines()] == ["A"]
        assert "unsupported schema_version 2" in r.stderr
    finally:
        asyncio.run(teardown())
