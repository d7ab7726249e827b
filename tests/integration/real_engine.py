"""A real running engine for the observability tests that look at it from outside (Prometheus
scraping ``/metrics``, Chromium rendering ``/status``): no tests here.

:func:`real_engine` starts the bundled Yahoo emulator and one ``ingestion-agent run`` against it
and the real NATS, PostgreSQL and Redis (unique stream, subject, table and key names, all
removed afterwards), with its HTTP endpoint on a free port, the earnings job enabled and a 2 s
cycle interval. The emulator is set up so that every series the dashboard reads has data:

* symbols that fail on every cycle - :data:`UNKNOWN` are added to the universe but the emulator
  does not list them (missing from every answer), :data:`DELISTED` are real universe symbols the
  emulator answers with the ``quoteType: NONE`` stub (rejected ``not_traded`` and dead-lettered
  on every cycle): together :data:`FAILING`, they lead the top-10 failing symbols (the tracker
  orders ties by name, so ours sort first);
* 5xx answers and connection resets on the v7 quote endpoint (retried: ``fetch_retries``; with
  two attempts, about 2 % of the batches fail for good: ``fetch_failures``) and an invalid quote
  in a few batches (more rejection reasons);
* the earnings job runs its start-up sync at once: ``exchange_calendar = "24/7"`` and a sync
  time of 00:00 make today's slot due whenever the test runs (its real schedule is 09:30 New
  York on NYSE trading days), into its own table;
* optionally (``own_nats``) the engine publishes to a private nats-server that
  :meth:`RealEngine.nats_outage` takes down until the publisher has used its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import redis

from engine.observe.quality import sector_labels
from engine.source.universe import Universe, load_symbols
from testkit import (
    ROOT,
    EmulatorProcess,
    EngineProcess,
    OwnNats,
    delete_streams,
    free_port,
)
from testkit.services import POSTGRES_DSN
from tests.conftest import NATS_URL

DSN: Final = POSTGRES_DSN
REDIS_URL: Final = "redis://127.0.0.1:6379/0"
INTERVAL_S: Final = 2.0

UNKNOWN: Final = {
    "AAXQA": "Technology",
    "AAXQB": "Finance",
    "AAXQC": "Health Care",
    "AAXQD": "Energy",
    "AAXQE": "Industrials",
    "AAXQF": "Utilities",
}
"""Symbols added to the universe that the emulator does not know (it leaves them out)."""
DELISTED: Final = ("A", "AAL", "AAPL", "AB", "ABBV", "ABT")
"""Universe symbols the emulator answers with the delisted stub (``--delisted``)."""
FAILING: Final = tuple(sorted((*UNKNOWN, *DELISTED)))
"""Every symbol without a valid quote on every cycle, in name order: they tie on missed cycles
and streak, so the top-10 failing symbols are the first ten of them."""
TOP_FAILING: Final = FAILING[:10]

EMULATOR_ARGS: Final = (
    *("--market-state", "REGULAR", "--latency-ms", "5", "--seed", "7"),
    *("--delisted", ",".join(DELISTED)),
    *("--fault-5xx", "0.1", "--fault-reset", "0.05", "--fault-invalid-quote", "0.05"),
)


@dataclass
class RealEngine:
    """A running engine: ``url`` of its HTTP endpoint, its process and the emulator's."""

    url: str
    engine: EngineProcess
    emulator: EmulatorProcess
    universe: Universe
    nats: OwnNats | None = None
    names: dict[str, str] = field(default_factory=dict)

    def sector_of(self) -> dict[str, str]:
        """Each symbol's sector label (as ``engine.observe.quality`` bounds them)."""
        labels = sector_labels(self.universe.symbols, self.universe.meta)
        return dict(zip(self.universe.symbols, labels, strict=True))

    @property
    def sectors(self) -> set[str]:
        return set(self.sector_of().values())

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_cycles(self, n: int, timeout: float = 60) -> dict[str, Any]:
        """The ``n``-th ``cycle_completed`` event (blocks until it is logged)."""
        return self.engine.wait_event("cycle_completed", timeout=timeout, count=n)

    def wait_earnings_sync(self, timeout: float = 60) -> dict[str, Any]:
        """The earnings child's start-up sync (``earnings_sync_finished``), which must be ok."""
        ev = self.engine.wait_event("earnings_sync_finished", timeout=timeout)
        assert ev.get("level") != "error" and not ev.get("error_kind"), ev
        return ev

    def nats_outage(
        self, while_down: Callable[[], None] | None = None, timeout: float = 60
    ) -> None:
        """Stop the private nats-server until the publisher has put a batch in its outbox (and
        ``while_down()`` returned), then start it again and wait until the outbox is replayed
        (``own_nats`` engines only)."""
        assert self.nats is not None, "real_engine(own_nats=True) only"
        self.nats.kill()
        try:
            self.engine.wait_event("outbox_started", timeout=timeout)
            if while_down is not None:
                while_down()
        finally:
            self.nats.start()
        self.engine.wait_event("outbox_drained", timeout=timeout)


def write_symbols(path: Path) -> Path:
    """The committed universe plus :data:`UNKNOWN` (with their sectors)."""
    doc = json.loads((ROOT / "symbols.json").read_text())
    known = {e["symbol"] for e in doc}
    assert not known & set(UNKNOWN), "an UNKNOWN symbol is in symbols.json"
    listed = (ROOT / "yahoo_emulator" / "data" / "stocks.csv").read_text().splitlines()
    assert not {line.split(",", 1)[0] for line in listed} & set(UNKNOWN), "the emulator knows one"
    assert set(DELISTED) <= known, "a DELISTED symbol is not in symbols.json"
    doc += [{"symbol": s, "name": f"Test {s}", "sector": sec} for s, sec in UNKNOWN.items()]
    path.write_text(json.dumps(doc))
    return path


def engine_env(tmp: Path, emulator_url: str, nats_url: str, uid: str, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INGEST_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    (tmp / "absent-ok.toml").write_text("")
    env.update(
        {
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
            "INGEST_CONFIG": str(tmp / "absent-ok.toml"),
            "INGEST_LOG__FORMAT": "json",
            "INGEST_SYMBOLS__FILE": str(write_symbols(tmp / "symbols.json")),
            "INGEST_YAHOO__BASE_URL": emulator_url,
            "INGEST_YAHOO__MAX_IN_FLIGHT": "16",
            "INGEST_YAHOO__MAX_ATTEMPTS": "2",
            "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
            "INGEST_YAHOO__BACKOFF_BASE_S": "0.05",
            # the whole universe every cycle: a budget well above 100 requests per 2 s
            "INGEST_YAHOO__RATE_INITIAL_RPS": "200",
            "INGEST_YAHOO__RATE_MAX_RPS": "400",
            "INGEST_YAHOO__RATE_BURST": "400",
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_SCHEDULER__INTERVAL_S": str(INTERVAL_S),
            "INGEST_SCHEDULER__SHUTDOWN_GRACE_S": "10",
            "INGEST_NATS__URL": nats_url,
            "INGEST_NATS__ACK_TIMEOUT_S": "1",
            "INGEST_NATS__OUTBOX_AFTER_S": "1",
            "INGEST_NATS__STREAM": f"T_{uid}_QUOTES",
            "INGEST_NATS__SUBJECT": f"test.{uid}.market.quote",
            "INGEST_NATS__DLQ_STREAM": f"T_{uid}_DLQ",
            "INGEST_NATS__DLQ_SUBJECT": f"test.{uid}.market.dlq",
            "INGEST_NATS__OUTBOX_DIR": str(tmp / "outbox"),
            "INGEST_POSTGRES__ENABLED": "true",
            "INGEST_POSTGRES__DSN": DSN,
            "INGEST_POSTGRES__TABLE": f"md_{uid}",
            "INGEST_POSTGRES__SPILL_DIR": str(tmp / "spill"),
            "INGEST_REDIS__ENABLED": "true",
            "INGEST_REDIS__URL": REDIS_URL,
            "INGEST_REDIS__KEY_PREFIX": f"t{uid}:market:",
            "INGEST_HTTP__ENABLED": "true",
            "INGEST_HTTP__PORT": str(port),
            "INGEST_EARNINGS__ENABLED": "true",
            "INGEST_EARNINGS__EXCHANGE_CALENDAR": "24/7",
            "INGEST_EARNINGS__SYNC_TIMES": '["00:00"]',
            "INGEST_EARNINGS__TABLE": f"ec_{uid}",
            "INGEST_EARNINGS__STREAM": f"T_{uid}_EARN",
            "INGEST_EARNINGS__SUBJECT": f"test.{uid}.earnings.reported",
            "INGEST_EARNINGS__FLAG_KEY_PREFIX": f"t{uid}:flag:",
            "INGEST_EARNINGS__ANALYSIS_KEY_PREFIX": f"t{uid}:analysis:",
        }
    )
    return env


async def _drop_tables(*tables: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        for t in tables:
            await conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")
        with contextlib.suppress(asyncpg.UndefinedTableError):
            await conn.execute(
                "DELETE FROM ingestion_schema_migrations WHERE table_name = ANY($1::text[])",
                list(tables),
            )
    finally:
        await conn.close()


def _clean_up(uid: str, shared_nats: bool) -> None:
    if shared_nats:
        delete_streams(NATS_URL, [f"T_{uid}_QUOTES", f"T_{uid}_DLQ", f"T_{uid}_EARN"])
    asyncio.run(_drop_tables(f"md_{uid}", f"ec_{uid}", f"ec_{uid}_syncs", f"ec_{uid}_changes"))
    r = redis.Redis.from_url(REDIS_URL)
    try:
        for prefix in (f"t{uid}:market:", f"t{uid}:flag:", f"t{uid}:analysis:"):
            keys = list(r.scan_iter(f"{prefix}*", count=1000))
            if keys:
                r.delete(*keys)
    finally:
        r.close()


@contextlib.contextmanager
def real_engine(
    tmp: Path, *, port: int | None = None, own_nats: bool = False
) -> Iterator[RealEngine]:
    """Start the emulator and the engine (HTTP on ``port``, a free one by default; JetStream on
    the shared NATS, or on a private nats-server with ``own_nats``); on exit stop both (SIGTERM,
    the engine must exit 0) and remove every stream, table and key it made."""
    uid = uuid.uuid4().hex[:10]
    port = port or free_port()
    nats = OwnNats(tmp / "jetstream") if own_nats else None
    try:
        if nats is not None:
            nats.start()
        with EmulatorProcess(EMULATOR_ARGS) as emu:
            env = engine_env(tmp, emu.url, nats.url if nats else NATS_URL, uid, port)
            universe = load_symbols(Path(env["INGEST_SYMBOLS__FILE"]))
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("http_listening", timeout=30)
                url = f"http://127.0.0.1:{port}"
                yield RealEngine(url, eng, emu, universe, nats, {"uid": uid})
                assert eng.proc is not None
                if eng.proc.poll() is None:
                    eng.proc.send_signal(signal.SIGTERM)
                code = eng.wait(60)
                errors = [e for e in eng.events if e.get("level") in ("error", "critical")]
                assert code == 0, errors[-10:]
    finally:
        if nats is not None:
            nats.kill()
        _clean_up(uid, shared_nats=nats is None)
