"""Cycle benchmark: the engine against the bare-fetch floor, on the bundled emulator.

For each number of requests in flight (``--in-flight``, default 4, 20 and 50) it measures, on
one emulator (REGULAR market, ``--latency-ms`` 50, ``--full-change``: every price moves every
second):

* the **bare-fetch floor** (bench/floor.py, its own process): aiohttp on uvloop, cookie and crumb
  once, the same 5,000 symbols in v7 batches of 50 with N requests in flight, orjson parse only;
  best of ``--floor-repeats`` (3);
* the **cycle** of one ``ingestion-agent run --once`` right after: from the emulator's first
  quote request (its access log) to the JetStream timestamp of the last stored message; the
  ratio cycle / floor; the engine's tail after the last answer; wall, CPU of every process, peak
  RSS (sum of VmHWM), and the start-up by phase (the engine's ``engine_started`` log event);
* **accounting**: the quote stream and the dead-letter stream read back against the symbols the
  emulator answered (every answered symbol exactly once in one of them, no id twice, every id
  ``{symbol}:{market_time}:{volume}`` of its payload).

Then the larger universes (``--sizes``, at the largest in-flight) the same way, the **steady
state** (``run`` with interval ``--steady-interval-s``: CPU-s per cycle of all engine processes
over ``--steady-cycles`` (>= 6) cycles after ``--steady-warmup`` cycles, also per 1,000 published
quotes, with the same lost/duplicate accounting: bench/accounting.py), the **per-stage profile**
(bench/stages.py: us of CPU per quote in each stage of the hot path) and, with ``--peer``,
yfinance's ``yf.download(..., threads=True)`` of the same symbols.

Timings on a shared 2-core machine are noisy: read the ratios, measured in one run, beside the
absolute figures. Not a CI gate (tests/integration/test_bench_cycle.py runs a tiny version and
checks only that it runs and that its accounting is exact).

    .venv/bin/python bench/cycle.py                        # the issue-15 table (~6 min)
    .venv/bin/python bench/cycle.py --in-flight 4,50 --sizes 5000 --steady-cycles 6 --no-stages
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import floor as floor_bench  # noqa: E402
from bench.accounting import (  # noqa: E402
    StreamMsg,
    account,
    iso_epoch,
    observation_key,
    pg_rows,
    read_access_log,
    read_stream,
)
from bench.procstat import cpu_s, hwm_kb, tree_pids  # noqa: E402
from testkit import EmulatorProcess, EngineProcess, delete_streams  # noqa: E402

NATS_URL = os.environ.get("INGEST_NATS__URL", "nats://127.0.0.1:4222")
PG_DSN = os.environ.get("INGEST_POSTGRES__DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("INGEST_REDIS__URL", "redis://127.0.0.1:6379/0")
ENGINE_OVERRIDES: dict[str, str] = {}
"""Settings every engine run of this bench gets on top of :func:`engine_env` (``--workers``)."""


def universe(n: int) -> list[str]:
    base = [row["symbol"] for row in orjson.loads((ROOT / "symbols.json").read_bytes())]
    if n <= len(base):
        return base[:n]
    out = list(base)
    k = 1
    while len(out) < n:
        out.extend(f"{s}.X{k}" for s in base[: n - len(out)])
        k += 1
    return out


class RssSampler(threading.Thread):
    """Polls the process tree, keeping each pid's peak RSS (VmHWM); the figure is their sum."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in tree_pids(self.root):
                self.peak[pid] = max(self.peak.get(pid, 0), hwm_kb(pid))
            self.stop.wait(0.02)

    @property
    def total_mb(self) -> float:
        return sum(self.peak.values()) / 1024


def engine_env(
    emu_url: str,
    sym_file: Path,
    stream: str,
    in_flight: int,
    cfg: Path,
    *,
    sinks: bool = False,
) -> dict[str, str]:
    """The engine's environment for a bench run; ``sinks``: PostgreSQL and Redis on too (their
    own table and key prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        {
            "INGEST_CONFIG": str(cfg),
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_NATS__STREAM": f"{stream}_Q",
            "INGEST_NATS__SUBJECT": f"bench.{stream}.quote",
            "INGEST_NATS__DLQ_STREAM": f"{stream}_D",
            "INGEST_NATS__DLQ_SUBJECT": f"bench.{stream}.dlq",
            "INGEST_YAHOO__BASE_URL": emu_url,
            "INGEST_YAHOO__MAX_IN_FLIGHT": str(in_flight),
            "INGEST_SYMBOLS__FILE": str(sym_file),
            "INGEST_WORKERS__RING_CAPACITY": "262144",
            # the emulator is not Yahoo: lift the adaptive budget so it never paces the bench
            "INGEST_YAHOO__RATE_INITIAL_RPS": "5000",
            "INGEST_YAHOO__RATE_MAX_RPS": "5000",
            "INGEST_YAHOO__RATE_BURST": "5000",
            "INGEST_POSTGRES__ENABLED": "true" if sinks else "false",
            "INGEST_REDIS__ENABLED": "true" if sinks else "false",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
            "INGEST_NATS__OUTBOX_DIR": str(cfg.parent / f"outbox-{stream}"),
            "INGEST_LOG__LEVEL": "INFO",  # a few lines per cycle: engine_started, cycle_completed
        }
    )
    env.update(ENGINE_OVERRIDES)
    if sinks:
        env["INGEST_POSTGRES__DSN"] = PG_DSN
        env["INGEST_POSTGRES__TABLE"] = f"bench_{stream.lower()}"
        env["INGEST_REDIS__URL"] = REDIS_URL
        env["INGEST_REDIS__KEY_PREFIX"] = f"bench:{stream}:"
    return env


async def _last_msg_time(stream: str) -> tuple[int, float | None]:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        if not info.state.messages:
            return 0, None
        m = await js.get_msg(stream, info.state.last_seq)
        ts = m.time
        if isinstance(ts, str):  # RFC 3339 with nanoseconds
            ts = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", ts.replace("Z", "+00:00")))
        return info.state.messages, ts.timestamp() if ts else None
    finally:
        await nc.close()


def quote_requests(access_log: Path, since: float, until: float = math.inf) -> dict[str, Any]:
    """The v7 quote requests the emulator logged in [since, until): count, first arrival, last
    answer (arrival + duration), the service-time percentiles (injected latency included) and
    the symbols of the intact 200 answers (``--access-log-symbols``), per symbol."""
    first: float | None = None
    last_answer: float | None = None
    durations: list[float] = []
    served: Counter[str] = Counter()
    for e in read_access_log(access_log):
        if not (since <= e.get("ts", 0) < until) or e.get("endpoint") != "quote":
            continue
        durations.append(e["duration_ms"])
        first = e["ts"] if first is None else min(first, e["ts"])
        done = e["ts"] + e["duration_ms"] / 1000
        last_answer = done if last_answer is None else max(last_answer, done)
        if e.get("status") == 200 and not e.get("fault") and e.get("symbols"):
            served.update(e["symbols"].split(","))
    durations.sort()

    def pct(q: float) -> float | None:
        return round(durations[int(q * (len(durations) - 1))], 1) if durations else None

    return {
        "n": len(durations),
        "first": first,
        "last_answer": last_answer,
        "served": served,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "max_ms": pct(1.0),
    }


def against_emulator(
    stream: list[StreamMsg], dlq: list[StreamMsg], served: Counter[str], *, unchanged: int
) -> dict[str, Any]:
    """The streams against what the emulator answered, symbol by symbol. Every price moves, so
    nothing is unchanged: a symbol never rejected has one quote message per answer; a rejected
    one (in the dead-letter stream) fewer quote messages than answers (a price that crossed a
    bound is rejected in some cycles only). ``exact`` when nothing is lost or extra."""
    in_stream: Counter[str] = Counter(p.get("symbol", "") for p, _ in stream)
    rejected = {p.get("symbol", "") for p, _ in dlq}
    out: dict[str, Any] = {
        "emulator_answers": sum(served.values()),
        "emulator_symbols": len(served),
        "dlq_symbols": len(rejected),
        "rejected_yet_every_answer_published": sum(
            1 for s in rejected if in_stream[s] >= served.get(s, 0)
        ),
        "not_requested": sum(n for s, n in in_stream.items() if s not in served),
    }
    if unchanged:  # an unchanged quote is rightly not re-published: per-symbol counts differ
        out["lost_vs_emulator"] = out["extra_vs_emulator"] = None
        out["exact"] = None
        return out
    out["lost_vs_emulator"] = sum(
        max(0, n - in_stream[s]) for s, n in served.items() if s not in rejected
    )
    out["extra_vs_emulator"] = sum(max(0, n - served[s]) for s, n in in_stream.items())
    out["exact"] = not (
        out["lost_vs_emulator"]
        or out["extra_vs_emulator"]
        or out["rejected_yet_every_answer_published"]
        or out["not_requested"]
    )
    return out


def accounting(
    cycles: list[dict[str, Any]], stream: str, served: Counter[str], pg_table: str | None = None
) -> dict[str, Any]:
    """Lost and duplicated messages: bench/accounting.py's check (engine counts vs the stream,
    duplicate ids and keys, ids matching payloads, per-symbol order; the stream vs PostgreSQL's
    rows when ``pg_table``) plus the emulator's side."""
    msgs = asyncio.run(read_stream(NATS_URL, f"{stream}_Q"))
    dlq = asyncio.run(read_stream(NATS_URL, f"{stream}_D"))
    rows = asyncio.run(pg_rows(PG_DSN, pg_table)) if pg_table else None
    acc = account(cycles, msgs, rows, len(dlq), key=observation_key)
    emu = against_emulator(msgs, dlq, served, unchanged=sum(c["unchanged"] for c in cycles))
    fetched = sum(c["fetched"] + c["missing"] for c in cycles)
    rejected = sum(sum(c.get("rejected", {}).values()) for c in cycles)
    unchanged = sum(c["unchanged"] for c in cycles)
    # every answer is a quote message, a rejection or (not with full change) unchanged
    balance = emu["emulator_answers"] - acc["stream_messages"] - rejected - unchanged
    exact = (
        balance == 0
        and acc["lost"] == 0
        and acc["duplicated"] == 0
        and acc["per_symbol_time_order_violations"] == 0
        and acc["stream_msgs_of_cycles_not_completed"] == 0
        and acc["extra_vs_engine_counts"] == 0
        and emu["emulator_answers"] == fetched
        and emu["exact"] is not False
    )
    return {
        "exact": exact,
        "answers_not_published_rejected_or_unchanged": balance,
        "stream_messages": acc["stream_messages"],
        "dlq_messages": len(dlq),
        "lost": max(acc["lost"], emu.get("lost_vs_emulator") or 0),
        "duplicated": acc["duplicated"],
        "engine_fetched_plus_missing": fetched,
        **{k: v for k, v in emu.items() if k != "exact"},
        "engine": {
            k: acc[k]
            for k in (
                "engine_accepted_new",
                "lost_vs_engine_counts",
                "extra_vs_engine_counts",
                "msg_id_payload_mismatch",
                "per_symbol_time_order_violations",
            )
        },
        **(
            {"pg": {k: v for k, v in acc.items() if k.startswith("pg_") or k == "stream_not_in_pg"}}
            if rows is not None
            else {}
        ),
    }


def _events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def startup_phases(events: list[dict[str, Any]]) -> dict[str, float]:
    """The engine's ``engine_started`` event: seconds per start-up phase."""
    ev = next((e for e in events if e.get("event") == "engine_started"), {})
    return {k: v for k, v in ev.items() if k.endswith("_s")}


def run_once(
    emu: EmulatorProcess,
    access_log: Path,
    n: int,
    in_flight: int,
    latency_ms: float,
    tmp: Path,
    floor_s: float | None = None,
    *,
    check: bool = True,
    root: Path = ROOT,
) -> dict[str, Any]:
    """One ``run --once`` of the engine of the checkout ``root`` (default: this one)."""
    sym = tmp / f"sym{n}.json"
    sym.write_text(orjson.dumps(universe(n)).decode())
    cfg = tmp / "empty.toml"
    cfg.write_text("")
    stream = f"B{uuid.uuid4().hex[:8]}"
    env = engine_env(emu.url, sym, stream, in_flight, cfg)
    emu_cpu0 = cpu_s(emu.proc.pid) if emu.proc else 0.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--once"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    emu_cpu = (cpu_s(emu.proc.pid) if emu.proc else 0.0) - emu_cpu0
    events = _events(err)
    stored, last_ts = asyncio.run(_last_msg_time(f"{stream}_Q"))
    q = quote_requests(access_log, t_start)
    first_ts, requests, last_answer = q["first"], q["n"], q["last_answer"]
    cycles = [e for e in events if e.get("event") == "cycle_completed"]
    acc = accounting(cycles, stream, q["served"]) if check and cycles else None
    delete_streams(NATS_URL, [f"{stream}_Q", f"{stream}_D"])
    latency = (last_ts - first_ts) if (last_ts and first_ts) else None
    ideal = math.ceil(requests / in_flight) * latency_ms / 1000 if requests else None
    # where the latency goes: fetching (first request -> last answer, emulator clock) and the
    # tail after the last answer (parse, validate, ring, publish, last ack: the engine's alone)
    fetch = (last_answer - first_ts) if (last_answer and first_ts) else None
    tail = (last_ts - last_answer) if (last_ts and last_answer) else None
    # the tail split at the moment the last worker reported its share fetched (its last
    # answer validated and in its ring): the workers' part, then the publisher's
    started = next((e for e in events if e.get("event") == "cycle_started"), None)
    fetched_at = (
        iso_epoch(started["ts"]) + cycles[0]["fetch_seconds"] if started and cycles else None
    )
    workers_tail = (fetched_at - last_answer) if (fetched_at and last_answer) else None
    publisher_tail = (last_ts - fetched_at) if (fetched_at and last_ts) else None
    return {
        "symbols": n,
        "in_flight": in_flight,
        "exit_code": proc.returncode,
        "summary": out.strip().splitlines()[-1] if out.strip() else err[-500:],
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(sampler.total_mb, 1),
        "stored": stored,
        "requests": requests,
        "latency_s": None if latency is None else round(latency, 3),
        "floor_s": None if floor_s is None else round(floor_s, 3),
        "latency_over_floor": None if not (latency and floor_s) else round(latency / floor_s, 2),
        "ideal_s": ideal,
        "fetch_span_s": None if fetch is None else round(fetch, 3),
        "tail_after_last_answer_s": None if tail is None else round(tail, 3),
        "tail_workers_s": None if workers_tail is None else round(workers_tail, 3),
        "tail_publisher_s": None if publisher_tail is None else round(publisher_tail, 3),
        "emulator_ms_p50_p90_max": [q["p50_ms"], q["p90_ms"], q["max_ms"]],
        "emulator_cpu_s": round(emu_cpu, 3),
        "startup": startup_phases(events),
        "accounting": acc,
    }


def steady_cpu(
    emu: EmulatorProcess,
    access_log: Path,
    n: int,
    in_flight: int,
    cycles: int,
    tmp: Path,
    interval_s: float,
    *,
    warmup: int = 1,
    sinks: bool = False,
    root: Path = ROOT,
) -> dict[str, Any]:
    """``run`` at ``interval_s``: the CPU of every engine process over ``cycles`` cycles after
    ``warmup`` cycles, per cycle and per 1,000 published quotes; then the accounting of the
    whole run (warm-up included)."""
    sym = tmp / f"steady{n}.json"
    sym.write_text(orjson.dumps(universe(n)).decode())
    cfg = tmp / "empty.toml"
    cfg.write_text("")
    stream = f"S{uuid.uuid4().hex[:8]}"
    env = engine_env(emu.url, sym, stream, in_flight, cfg, sinks=sinks)
    env["INGEST_SCHEDULER__INTERVAL_S"] = f"{interval_s:g}"
    t_start = time.time()
    others = {"emulator": emu.proc.pid if emu.proc else 0}
    with EngineProcess(["run"], env, cwd=root) as eng:
        assert eng.proc is not None
        eng.wait_event("cycle_completed", count=warmup, timeout=60 + warmup * 3 * interval_s)
        o0 = {k: cpu_s(p) for k, p in others.items() if p}
        p0 = {p: cpu_s(p) for p in tree_pids(eng.proc.pid)}
        t0 = time.perf_counter()
        eng.wait_event(
            "cycle_completed", count=warmup + cycles, timeout=60 + cycles * 3 * interval_s
        )
        p1 = {p: (cpu_s(p), _comm(p)) for p in tree_pids(eng.proc.pid)}
        o1 = {k: cpu_s(p) for k, p in others.items() if p}
        elapsed = time.perf_counter() - t0
        eng.proc.terminate()
        eng.wait(60)
        every = eng.named("cycle_completed")
    done = every[warmup : warmup + cycles]
    q = quote_requests(access_log, t_start)
    acc = accounting(every, stream, q["served"], env.get("INGEST_POSTGRES__TABLE"))
    delete_streams(NATS_URL, [f"{stream}_Q", f"{stream}_D"])
    if sinks:
        _drop_sinks(env)
    published = sum(d.get("published", 0) for d in done)
    by_role: Counter[str] = Counter()
    for pid, (c, name) in p1.items():  # a child restarted meanwhile counts from 0
        by_role[_role(name)] += c - p0.get(pid, 0.0)
    cpu = sum(by_role.values())
    return {
        "symbols": n,
        "in_flight": in_flight,
        "interval_s": interval_s,
        "sinks": "nats+postgres+redis" if sinks else "nats",
        "cycles": cycles,
        "warmup_cycles": warmup,
        "cpu_s_per_cycle": round(cpu / cycles, 3),
        "cpu_s_per_1000_published": round(1000 * cpu / published, 3) if published else None,
        "cpu_s_per_cycle_by_process": {k: round(v / cycles, 3) for k, v in sorted(by_role.items())},
        # on the same cores: what the emulator spent meanwhile (per cycle)
        "cpu_s_per_cycle_beside": {k: round((o1[k] - o0[k]) / cycles, 3) for k in o0},
        "elapsed_s": round(elapsed, 1),
        "published_per_cycle": [d.get("published") for d in done],
        "unchanged_per_cycle": [d.get("unchanged") for d in done],
        "cycle_s": [round(d.get("seconds", 0), 3) for d in done],
        "fetch_s": [round(d.get("fetch_seconds", 0), 3) for d in done],
        "accounting": acc,
    }


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _role(comm: str) -> str:
    """The engine process a name (prctl, engine/runtime/child.py) stands for."""
    if comm.startswith("ingest-worker"):
        return "workers"
    if comm.startswith("ingest-publish"):
        return "publisher"
    return "supervisor" if comm.startswith("python") else comm


def _drop_sinks(env: dict[str, str]) -> None:
    """Drop the steady run's own PostgreSQL table and Redis keys."""
    import asyncpg
    import redis

    async def drop() -> None:
        conn = await asyncpg.connect(env.get("INGEST_POSTGRES__DSN", PG_DSN))
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{env["INGEST_POSTGRES__TABLE"]}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())
    r = redis.Redis.from_url(env.get("INGEST_REDIS__URL", REDIS_URL))
    try:
        keys = list(r.scan_iter(match=env["INGEST_REDIS__KEY_PREFIX"] + "*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
    finally:
        r.close()


def yfinance_peer(emu_url: str, n: int) -> dict[str, Any]:
    import yfinance as yf

    from yahoo_emulator.yfsession import RewritingSession

    with tempfile.TemporaryDirectory() as cache:
        yf.cache.set_cache_location(cache)
        yf.set_tz_cache_location(cache)
        session = RewritingSession(emu_url)
        symbols = universe(n)
        t0 = time.perf_counter()
        df = yf.download(
            symbols, period="1d", session=session, threads=True, progress=False, auto_adjust=False
        )
        wall = time.perf_counter() - t0
    got = 0
    if df is not None and not df.empty:
        close = df["Close"] if "Close" in df.columns.get_level_values(0) else df
        got = int(close.ffill().iloc[-1].notna().sum())
    return {"symbols": n, "wall_s": round(wall, 2), "prices": got}


def emulator_args(latency_ms: float, *, full_change: bool) -> list[str]:
    args = [
        "--market-state",
        "REGULAR",
        "--latency-ms",
        f"{latency_ms:g}",
        "--seed",
        "1",
        "--max-symbols",
        "1500",
        "--access-log-symbols",
    ]
    return [*args, "--full-change"] if full_change else args


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--symbols", type=int, default=5000, help="the universe of the ratio table")
    ap.add_argument("--in-flight", default="4,20,50", help="requests in flight, comma list")
    ap.add_argument("--sizes", default="100000", help="larger universes, at the largest in-flight")
    ap.add_argument("--floor-repeats", type=int, default=3)
    ap.add_argument(
        "--once",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the run --once table (floor, cycle, ratio); --no-once: the steady state etc. only",
    )
    ap.add_argument(
        "--full-change",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the emulator moves every price every second",
    )
    ap.add_argument("--steady-cycles", type=int, default=6)
    ap.add_argument("--steady-warmup", type=int, default=1)
    ap.add_argument("--steady-interval-s", type=float, default=10.0)
    ap.add_argument("--steady-in-flight", type=int, default=0, help="default: the first")
    ap.add_argument("--workers", type=int, default=0, help="workers.count (0: one per core)")
    ap.add_argument(
        "--emulator-nice",
        type=int,
        default=0,
        help="the emulator's scheduling priority (e.g. -10, as root): an experiment that keeps "
        "the engine from starving it of CPU on a small machine",
    )
    ap.add_argument(
        "--baseline-root",
        default="",
        help="another checkout (e.g. a git worktree of main): each engine measurement runs it "
        "too, right before this one, so before/after ratios come from one run",
    )
    ap.add_argument(
        "--steady-sinks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a second steady run with PostgreSQL and Redis on",
    )
    ap.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per in-flight value: --latency-cycles steady cycles (every --latency-interval-s) "
        "beside the floor: the median cycle split into fetch and publish, and the CPU of the "
        "engine, the emulator and nats-server per cycle (who holds the 2 cores)",
    )
    ap.add_argument("--latency-cycles", type=int, default=6)
    ap.add_argument("--latency-interval-s", type=float, default=3.0)
    ap.add_argument(
        "--stages",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the per-stage profile (bench/stages.py)",
    )
    ap.add_argument("--stage-rounds", type=int, default=3)
    ap.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="yfinance on the same emulator (takes minutes)",
    )
    ap.add_argument("--peer-symbols", type=int, default=5000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cycle-latest.json"))
    return ap


def run(a: argparse.Namespace) -> dict[str, Any]:
    if a.workers:
        ENGINE_OVERRIDES["INGEST_WORKERS__COUNT"] = str(a.workers)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    flights = [int(x) for x in a.in_flight.split(",")]
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "date": datetime.now().isoformat(timespec="seconds"),
            "loadavg_at_start": os.getloadavg(),
        },
        "latency_ms": a.latency_ms,
        "full_change": a.full_change,
        "once": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log = tmp / "access.jsonl"
        with EmulatorProcess(
            emulator_args(a.latency_ms, full_change=a.full_change), access_log=log
        ) as emu:
            if a.emulator_nice and emu.proc is not None:
                os.setpriority(os.PRIO_PROCESS, emu.proc.pid, a.emulator_nice)
            results["emulator_nice"] = a.emulator_nice
            runs = [(a.symbols, f) for f in flights] if a.once else []
            runs += [(n, max(flights)) for n in sizes if n != a.symbols and a.once]
            base = Path(a.baseline_root) if a.baseline_root else None
            for n, f in runs:
                sym = tmp / f"floor{n}.json"
                sym.write_text(orjson.dumps(universe(n)).decode())
                t_floor = time.time()
                fl = floor_bench.measure(emu.url, sym, f, repeats=a.floor_repeats)
                fq = quote_requests(log, t_floor)
                fl["emulator_ms_p50_p90_max"] = [fq["p50_ms"], fq["p90_ms"], fq["max_ms"]]
                if base is not None:
                    b = run_once(emu, log, n, f, a.latency_ms, tmp, fl["seconds"], root=base)
                    b["floor"] = fl
                    results.setdefault("baseline_once", []).append(b)
                    print("baseline", orjson.dumps(b).decode(), flush=True)
                r = run_once(emu, log, n, f, a.latency_ms, tmp, fl["seconds"])
                r["floor"] = fl
                results["once"].append(r)
                print(orjson.dumps(r).decode(), flush=True)
            steady_flight = a.steady_in_flight or flights[0]
            if a.steady_cycles > 0 and base is not None:
                st = steady_cpu(
                    emu, log, a.symbols, steady_flight, a.steady_cycles, tmp,
                    a.steady_interval_s, warmup=a.steady_warmup, root=base,
                )  # fmt: skip
                results["baseline_steady"] = st
                print("baseline", orjson.dumps(st).decode(), flush=True)
            variants = [("steady", False), ("steady_sinks", True)][: 1 + bool(a.steady_sinks)]
            for key, sinks in variants if a.steady_cycles > 0 else []:
                st = steady_cpu(
                    emu, log, a.symbols, steady_flight, a.steady_cycles, tmp,
                    a.steady_interval_s, warmup=a.steady_warmup, sinks=sinks,
                )  # fmt: skip
                results[key] = st
                print(orjson.dumps(st).decode(), flush=True)
            if a.latency:
                results["latency"] = []
                sym = tmp / f"floor{a.symbols}.json"
                sym.write_text(orjson.dumps(universe(a.symbols)).decode())
                for f in flights:
                    fl = floor_bench.measure(emu.url, sym, f, repeats=a.floor_repeats)
                    st = steady_cpu(emu, log, a.symbols, f, a.latency_cycles, tmp,
                                    a.latency_interval_s)  # fmt: skip
                    row = latency_row(st, fl["seconds"])
                    results["latency"].append(row)
                    print(orjson.dumps(row).decode(), flush=True)
            if a.stages:
                from bench import stages

                results["stages"] = stages.measure(emu.url, a.symbols, rounds=a.stage_rounds)
                print(orjson.dumps(results["stages"]).decode(), flush=True)
            if a.peer:
                peer = yfinance_peer(emu.url, a.peer_symbols)
                results["peer"] = peer
                ours = results["once"][0]
                base = ours["latency_s"] or ours["wall_s"]
                peer_s = peer["wall_s"]
                if a.peer_symbols < ours["symbols"]:  # a sample: scale linearly, and say so
                    peer_s = round(peer_s * ours["symbols"] / a.peer_symbols, 1)
                    peer["extrapolated_to"] = ours["symbols"]
                    peer["extrapolated_wall_s"] = peer_s
                peer["ratio_vs_our_default_cycle"] = round(peer_s / base, 1)
                peer["ratio_vs_our_default_run_once_wall"] = round(peer_s / ours["wall_s"], 1)
                print(orjson.dumps(peer).decode(), flush=True)
    return results


def latency_row(st: dict[str, Any], floor_s: float) -> dict[str, Any]:
    """Median of a steady run's cycles: the cycle (the supervisor's start to the publisher's
    report), its fetch phase (until the last worker's share is in its ring) and the rest (the
    publisher's tail), against the floor; and who used the CPU per cycle."""
    cyc, fetch = statistics.median(st["cycle_s"]), statistics.median(st["fetch_s"])
    return {
        "in_flight": st["in_flight"],
        "floor_s": round(floor_s, 3),
        "cycle_s": round(cyc, 3),
        "cycle_over_floor": round(cyc / floor_s, 2),
        "fetch_s": round(fetch, 3),
        "publish_tail_s": round(cyc - fetch, 3),
        "cpu_s_per_cycle": {**st["cpu_s_per_cycle_by_process"], **st["cpu_s_per_cycle_beside"]},
        "exact": st["accounting"]["exact"],
    }


def table(results: dict[str, Any]) -> str:
    """The figures as Markdown (what bench/README.md shows); with a baseline, its figures of
    the same run beside each row (``baseline -> this``)."""
    base = results.get("baseline_once") or []

    def pair(i: int, key: str, fmt: str = "{}") -> str:
        now = fmt.format(results["once"][i][key])
        if i < len(base):
            return f"{fmt.format(base[i][key])} -> {now}"
        return now

    rows = [
        "| symbols | in flight | floor | cycle | cycle / floor | tail after last answer "
        "| `run --once` wall | CPU s | peak RSS (sum) | lost / dup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results["once"]):
        acc = r.get("accounting") or {}
        rows.append(
            f"| {r['symbols']:,} | {r['in_flight']} | {r['floor_s']} s "
            f"| {pair(i, 'latency_s')} s | **{pair(i, 'latency_over_floor')}** "
            f"| {pair(i, 'tail_after_last_answer_s')} s | {pair(i, 'wall_s')} s "
            f"| {pair(i, 'cpu_s')} | {pair(i, 'peak_rss_mb', '{:.0f}')} MB "
            f"| {acc.get('lost')} / {acc.get('duplicated')} |"
        )
    out = "\n".join(rows)
    for key in ("baseline_steady", "steady", "steady_sinks"):
        st = results.get(key)
        if st:
            acc = st["accounting"]
            out += (
                f"\n\n{'Baseline steady' if key.startswith('baseline') else 'Steady'} "
                f"({st['sinks']}, {st['symbols']:,} symbols, {st['in_flight']} in "
                f"flight, every {st['interval_s']:g} s, {st['cycles']} cycles after "
                f"{st['warmup_cycles']} warm-up): **{st['cpu_s_per_cycle']} CPU-s per cycle**, "
                f"{st['cpu_s_per_1000_published']} CPU-s per 1,000 published quotes "
                f"(by process: {st['cpu_s_per_cycle_by_process']}); published "
                f"per cycle {st['published_per_cycle']}; lost {acc['lost']}, duplicated "
                f"{acc['duplicated']}, exact {acc['exact']}."
            )
    if results.get("latency"):
        out += (
            "\n\n| in flight | floor | cycle (median) | cycle / floor | fetch | publish tail "
            "| CPU-s per cycle |\n|---|---|---|---|---|---|---|"
        )
        for r in results["latency"]:
            out += (
                f"\n| {r['in_flight']} | {r['floor_s']} s | {r['cycle_s']} s "
                f"| {r['cycle_over_floor']} | {r['fetch_s']} s | {r['publish_tail_s']} s "
                f"| {r['cpu_s_per_cycle']} |"
            )
    for key, label in (("baseline_once", "Baseline start-up"), ("once", "Start-up")):
        first = results[key][0].get("startup") if results.get(key) else None
        if first:
            out += f"\n\n{label} (" + ", ".join(f"{k} {v}" for k, v in first.items()) + ")"
    return out


def main() -> None:
    a = build_parser().parse_args()
    results = run(a)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(table(results))
    if "stages" in results:
        from bench import stages

        print(stages.table(results["stages"]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
