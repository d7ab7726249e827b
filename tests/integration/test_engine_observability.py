"""The running engine's own endpoint and earnings job, end to end (not the modules in isolation).

One ``ingestion-agent run`` against the emulator and the real NATS, PostgreSQL and Redis, with
its HTTP endpoint on a free port and the earnings job enabled (unique table, stream, subject and
key prefixes): after its first cycle, ``/metrics`` must add up the workers' and the publisher's
counters to what the cycle summary says, ``/status`` must show the freshness heatmap and the
failing-symbols table of the real universe, ``/readyz`` must be 200, and the earnings child must
have run its start-up sync into its table (and counted it in ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from testkit import EngineProcess, delete_streams, free_port, wait_for
from tests.conftest import NATS_URL, run_cli

pytestmark = pytest.mark.integration

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/0"


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _event(line: str) -> dict[str, Any]:
    try:
        v = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return v if isinstance(v, dict) else {}


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def _drop_tables(*tables: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        for t in tables:
            await conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")
        await conn.execute(
            "DELETE FROM ingestion_schema_migrations WHERE table_name = ANY($1::text[])",
            list(tables),
        )
    except asyncpg.UndefinedTableError:
        pass
    finally:
        await conn.close()


@pytest.fixture
def names(uid: str) -> Iterator[dict[str, str]]:
    n = {
        "table": f"md_{uid}",
        "earnings_table": f"ec_{uid}",
        "earnings_stream": f"T_{uid}_EARN",
        "prefix": f"t{uid}:market:",
        "flag_prefix": f"t{uid}:flag:",
        "analysis_prefix": f"t{uid}:analysis:",
    }
    yield n
    delete_streams(NATS_URL, [n["earnings_stream"]])
    asyncio.run(
        _drop_tables(
            n["table"],
            n["earnings_table"],
            f"{n['earnings_table']}_syncs",
            f"{n['earnings_table']}_changes",
        )
    )
    r = redis.Redis.from_url(REDIS_URL)
    for p in (n["prefix"], n["flag_prefix"], n["analysis_prefix"]):
        keys = list(r.scan_iter(f"{p}*", count=1000))
        if keys:
            r.delete(*keys)
    r.close()


@pytest.mark.timeout(240)
def test_endpoint_and_earnings_job_of_a_running_engine(
    engine_env: dict[str, str], names: dict[str, str], uid: str
) -> None:
    port = free_port()
    env = dict(engine_env)
    env.update(
        {
            "INGEST_HTTP__ENABLED": "true",
            "INGEST_HTTP__PORT": str(port),
            "INGEST_SCHEDULER__INTERVAL_S": "600",  # one cycle in this test: exact sums
            "INGEST_POSTGRES__ENABLED": "true",
            "INGEST_POSTGRES__DSN": DSN,
            "INGEST_POSTGRES__TABLE": names["table"],
            "INGEST_REDIS__ENABLED": "true",
            "INGEST_REDIS__URL": REDIS_URL,
            "INGEST_REDIS__KEY_PREFIX": names["prefix"],
            "INGEST_EARNINGS__ENABLED": "true",
            "INGEST_EARNINGS__TABLE": names["earnings_table"],
            "INGEST_EARNINGS__STREAM": names["earnings_stream"],
            "INGEST_EARNINGS__SUBJECT": f"test.{uid}.earnings.reported",
            "INGEST_EARNINGS__FLAG_KEY_PREFIX": names["flag_prefix"],
            "INGEST_EARNINGS__ANALYSIS_KEY_PREFIX": names["analysis_prefix"],
        }
    )
    base = f"http://127.0.0.1:{port}"
    with EngineProcess(["run"], env) as eng:
        done = eng.wait_event("cycle_completed", timeout=90)
        # the earnings child runs beside the workers (its schedule is real time: 09:30 New
        # York on trading days, so the test drives a sync by hand below)
        eng.wait_event("earnings_job_started", timeout=60)

        # -- /metrics: several processes add up to the cycle's figures ------------------------
        status, text = _get(f"{base}/metrics")
        assert status == 200
        s = _samples(text)
        assert _total(s, "ingestion_fetch_requests_total") == done["requests"]  # workers
        assert _total(s, "ingestion_symbols_requested_total") == done["requested"]  # supervisor
        assert _total(s, "ingestion_quotes_valid_total") == done["valid"]
        published = sum(
            v
            for (n, labels), v in s.items()
            if n == "ingestion_messages_total" and ("outcome", "published") in labels
        )
        assert published == done["published"] > 4000
        workers = {
            dict(labels)["worker"] for (n, labels) in s if n == "ingestion_ring_occupancy_records"
        }
        assert workers == {"0", "1"}
        assert _total(s, "ingestion_store_rows_total") >= done["valid"] - done["unchanged"]
        assert _total(s, "ingestion_quality_symbols") == done["requested"]
        assert ("ingestion_breaker_state", frozenset()) in s
        # the universe in use (symbols.json: Yahoo notation, nothing skipped or translated)
        assert _total(s, "ingestion_universe_symbols") == done["requested"]
        assert _total(s, "ingestion_symbols_skipped") == 0
        assert ("ingestion_symbols_translated", frozenset()) in s

        # -- /status and /readyz ---------------------------------------------------------------
        status, page = _get(f"{base}/status")
        assert status == 200
        assert 'id="heatmap"' in page and page.count('<i class="l') >= done["requested"]
        assert "failing" in page.lower()
        status, ready = _get(f"{base}/readyz")
        assert status == 200, ready

        # -- `earnings sync` by hand, beside the running engine, into the same table --------
        r = run_cli(["earnings", "sync"], env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        assert "COMPLETE" in r.stdout
        sync = next(
            e
            for e in map(_event, r.stderr.splitlines())
            if e.get("event") == "earnings_sync_finished"
        )

        async def rows() -> int:
            conn = await asyncpg.connect(DSN)
            try:
                return int(await conn.fetchval(f"SELECT count(*) FROM {names['earnings_table']}"))
            finally:
                await conn.close()

        stored = asyncio.run(rows())
        # after 09:30 New York the engine's own child has already run today's sync at start-up,
        # so the manual one finds its rows unchanged: the table holds every row either stored
        assert stored == sync["inserted"] + sync["updated"] + sync["unchanged"] > 0
        r = redis.Redis.from_url(REDIS_URL)
        flags = list(r.scan_iter(f"{names['flag_prefix']}*", count=1000))
        assert len(flags) == sync["flags_set"]
        for key in flags[:20]:
            assert 0 < r.ttl(key) <= 86400
        r.close()

        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGTERM)
        assert eng.wait(60) == 0
    names_seen = {e.get("event") for e in eng.events}
    assert "http_listening" in names_seen
    assert "earnings_job_stopped" in names_seen
    with contextlib.suppress(OSError):
        wait_for(lambda: _get(f"{base}/healthz", 1)[0] != 200, timeout=5)


def test_metric_names_in_alert_rules_exist() -> None:
    """Every ingestion_* series an alert rule or a dashboard panel reads is one the engine
    defines (a renamed metric would silently leave an alert that can never fire)."""
    import re

    import engine.observe.metrics as m

    m.reset()
    m.set_failure_rate(0.0, False)
    defined = {s.name for fam in m.registry().collect() for s in fam.samples} | {
        fam.name for fam in m.registry().collect()
    }
    root = Path(__file__).resolve().parents[2]
    rules = (root / "deploy/prometheus/alerts.yml").read_text()
    used = set(re.findall(r"\b(ingestion_[a-z0-9_]+)", rules))
    quality = {"ingestion_quality_missing_ratio", "ingestion_quality_stale_ratio"}
    missing = sorted(
        u for u in used - quality if u not in defined and not any(u.startswith(d) for d in defined)
    )
    assert not missing, f"alert rules read metrics the engine does not define: {missing}"
