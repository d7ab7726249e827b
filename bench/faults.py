"""Fault bench: the two resilience targets, measured end to end against the bundled emulator.

A. Fault mix. The emulator injects 429 (5 %), 5xx (5 %), connection resets (2 %) and truncated
   JSON bodies (1 %) on every v7 request while ``ingestion-agent run`` polls the universe for
   ``--cycles`` cycles (prices walk, so every cycle brings new quotes). Per cycle, from the
   supervisor's ``cycle_completed`` event:

   * ``no_valid`` = symbols left without a valid quote = requested - valid (the issue's "symbol
     error rate"), split into ``fetch_errors`` (``failed``: the batch never came back after its
     retries and splits) and ``data`` (``rejected`` by validation for a data reason - delisted
     stubs, out-of-range prices - plus ``missing``: unknown to Yahoo). The data part is the same
     without faults; only the fetch part is the engine's to fix.
   * crashes: ``child_died`` events, children started more than once, a non-zero exit code,
     non-JSON lines on stderr (tracebacks).
   * lost / duplicated messages (:func:`account`): the stream must hold, per cycle, exactly the
     ``valid - unchanged`` new quotes the workers accepted; every ``Nats-Msg-Id`` once and equal
     to ``{symbol}:{market_time}`` of its payload; PostgreSQL must hold the same (symbol, market
     time) set, one row each; the DLQ one message per rejection; per symbol, market times only
     grow. Independently of the engine's counters, the emulator's access log gives every symbol
     it answered in an intact 200 response: each must be counted as fetched or missing.

B. Rate limit below need. The emulator's token bucket is set to ``--budget-fraction`` (0.5) of
   what the schedule needs (``ceil(symbols / batch_size)`` requests per ``interval``), for
   ``--rl-seconds`` (>= 180). Reported: 429s per minute (emulator stats, polled) and per 10 s
   (access log), the engine's ``rate_rps`` / ``rate_headroom`` per cycle and its
   ``rate_limited`` / ``rate_budget_insufficient`` events, and the longest time any symbol went
   without a refresh - from the access log (every symbol of every intact 200 quote response:
   exact, independent of price changes), in scheduler intervals and in engine cycles, against
   the target ``2 * need / budget`` intervals - plus the same from the stream (ingest times;
   only quotes whose price changed are published there, so it is an upper bound).

Every run uses its own stream, subject, DLQ, table and Redis key prefix, deleted afterwards.
Timings on the shared 2-core machine are noisy. Not a CI gate (the smoke test
``tests/integration/test_bench_faults.py`` runs a reduced version)::

    .venv/bin/python bench/faults.py --json bench/results/faults-latest.json
    .venv/bin/python bench/faults.py --part A --symbols 200 --cycles 3
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accounting import (  # noqa: E402
    LIFTED_RATE,
    account,
    crashes,
    cycle_rates,
    event_time,
    iso_epoch,
    machine,
    pg_rows,
    read_access_log,
    read_stream,
    redis_keys,
    served_symbols,
    stop_engine,
    stream_count,
    summarise_rates,
    universe,
)
from engine.sinks.partitions import quote_ident  # noqa: E402
from testkit import EmulatorProcess, EngineProcess, delete_streams  # noqa: E402
from yahoo_emulator.presets import fault_mix  # noqa: E402

NATS_URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")
PG_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BATCH_SIZE = 50  # the engine's default yahoo.batch_size (not overridden here)

FAULT_MIX = fault_mix("default")  # 5 % 429, 5 % 5xx, 2 % resets, 1 % truncated bodies


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# names, environment, clean-up
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    uid: str

    @property
    def stream(self) -> str:
        return f"BF_{self.uid}_Q"

    @property
    def dlq_stream(self) -> str:
        return f"BF_{self.uid}_D"

    @property
    def table(self) -> str:
        return f"bf_{self.uid}"

    @property
    def key_prefix(self) -> str:
        return f"bf_{self.uid}:"

    def env(self) -> dict[str, str]:
        return {
            "INGEST_NATS__STREAM": self.stream,
            "INGEST_NATS__SUBJECT": f"bench.{self.uid}.quote",
            "INGEST_NATS__DLQ_STREAM": self.dlq_stream,
            "INGEST_NATS__DLQ_SUBJECT": f"bench.{self.uid}.dlq",
            "INGEST_POSTGRES__TABLE": self.table,
            "INGEST_REDIS__KEY_PREFIX": self.key_prefix,
        }


def new_names() -> Names:
    return Names(uuid.uuid4().hex[:10])


def engine_env(emu_url: str, names: Names, tmp: Path, n_symbols: int, interval_s: float,
               extra: dict[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    sym = tmp / "symbols.json"
    sym.write_bytes(orjson.dumps(universe(n_symbols)))
    cfg = tmp / "empty.toml"
    cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(names.env())
    env.update(
        {
            "INGEST_CONFIG": str(cfg),
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_YAHOO__BASE_URL": emu_url,
            "INGEST_SYMBOLS__FILE": str(sym),
            "INGEST_SCHEDULER__INTERVAL_S": str(interval_s),
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_POSTGRES__ENABLED": "true",
            "INGEST_POSTGRES__DSN": PG_DSN,
            "INGEST_POSTGRES__SPILL_DIR": str(tmp / "spill"),
            "INGEST_REDIS__ENABLED": "true",
            "INGEST_REDIS__URL": REDIS_URL,
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_NATS__OUTBOX_DIR": str(tmp / "outbox"),
            "INGEST_LOG__FORMAT": "json",
            "INGEST_LOG__LEVEL": "INFO",
        }
    )
    env.update(extra or {})
    return env


async def _drop_table(table: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {quote_ident(table)} CASCADE")
        if await conn.fetchval("SELECT to_regclass('ingestion_schema_migrations')"):
            await conn.execute(
                "DELETE FROM ingestion_schema_migrations WHERE table_name = $1", table
            )
    finally:
        await conn.close()


def cleanup(names: Names) -> None:
    with contextlib.suppress(Exception):
        delete_streams(NATS_URL, [names.stream, names.dlq_stream])
    with contextlib.suppress(Exception):
        asyncio.run(_drop_table(names.table))
    with contextlib.suppress(Exception):
        r = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(r.scan_iter(match=f"{names.key_prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                r.delete(*keys[i : i + 1000])
        finally:
            r.close()


# --------------------------------------------------------------------------------------------
# running the engine
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def engine_run(env: dict[str, str]) -> Iterator[EngineProcess]:
    with EngineProcess(["run"], env) as eng:
        yield eng


def save_artifacts(dest: str | None, part: str, access: Path, eng: EngineProcess) -> None:
    """Keep the emulator's access log and the engine's log events for a closer look."""
    if not dest:
        return
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    if access.exists():
        (d / f"{part}-access.jsonl").write_bytes(access.read_bytes())
    (d / f"{part}-engine.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in eng.events))


# --------------------------------------------------------------------------------------------
# A: fault mix
# --------------------------------------------------------------------------------------------


def run_fault_mix(a: argparse.Namespace, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """Part A. ``raw`` (if given) receives the cycle events, stream messages and PostgreSQL
    rows the figures were computed from (the smoke test doctors them)."""
    names = new_names()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as d:
        tmp = Path(d)
        access = tmp / "access.jsonl"
        faults = {k: getattr(a, k) for k in FAULT_MIX}
        emu_args = [
            *("--market-state", "REGULAR", "--latency-ms", str(a.latency_ms)),
            *("--seed", str(a.seed), "--access-log-symbols"),
        ]
        for k, v in faults.items():
            emu_args += ["--" + k.replace("_", "-"), str(v)]
        extra = dict(LIFTED_RATE) if a.rate_policy == "lifted" else {}
        try:
            with EmulatorProcess(emu_args, access_log=access) as emu:
                env = engine_env(emu.url, names, tmp, a.symbols, a.interval, extra)
                log(f"A: fault mix {faults}, {a.symbols} symbols, {a.cycles} cycles, "
                    f"interval {a.interval}s, rate policy {a.rate_policy}")  # fmt: skip
                t0 = time.monotonic()
                with engine_run(env) as eng:
                    for n in range(1, a.cycles + 1):
                        c = eng.wait_event("cycle_completed", count=n, timeout=a.cycle_timeout)
                        log(f"A: cycle {c['cycle']} valid={c['valid']} failed={c['failed']} "
                            f"new={c['valid'] - c['unchanged']} seconds={c['seconds']:.1f} "
                            f"rate={c['rate_rps']}")  # fmt: skip
                    wall = time.monotonic() - t0
                    code = stop_engine(eng)
                stats = emu.stats()
            events = eng.events
            completed = eng.named("cycle_completed")
            log(f"A: engine stopped (exit {code}); reading stream, DLQ, PostgreSQL")
            stream = asyncio.run(read_stream(NATS_URL, names.stream))
            dlq = asyncio.run(stream_count(NATS_URL, names.dlq_stream))
            rows = asyncio.run(pg_rows(PG_DSN, names.table))
            cached = redis_keys(REDIS_URL, names.key_prefix)
        finally:
            cleanup(names)
        acc_log = read_access_log(access)
        save_artifacts(a.artifacts, "A", access, eng)
    if raw is not None:
        raw.update(cycles=completed, stream=stream, rows=rows, dlq=dlq, access=acc_log)
    measured = [cycle_rates(c) for c in completed[: a.cycles]]
    acct = account(completed, stream, rows, dlq)
    served = served_symbols(acc_log)
    engine_seen = sum(c["fetched"] + c["missing"] for c in completed)
    quote_reqs = [e for e in acc_log if e.get("endpoint") == "quote"]
    return {
        "part": "A",
        "config": {
            "symbols": a.symbols,
            "cycles": a.cycles,
            "interval_s": a.interval,
            "emulator_latency_ms": a.latency_ms,
            "faults": faults,
            "seed": a.seed,
            "rate_policy": a.rate_policy,
            "engine_overrides": extra,
        },
        "wall_s": round(wall, 1),
        "cycles_completed_total": len(completed),
        "symbol_error_rate": summarise_rates(measured, "no_valid_rate"),
        "fetch_error_rate": summarise_rates(measured, "fetch_error_rate"),
        "data_rate": summarise_rates(measured, "data_rate"),
        "cycle_seconds": summarise_rates(measured, "seconds"),
        "crashes": crashes(eng, code, 3),
        "messages": acct,
        "redis_keys": cached,
        "emulator": {
            "quote_requests": len(quote_reqs),
            "quote_status": dict(Counter(str(e.get("status")) for e in quote_reqs)),
            "faults": stats.get("faults", {}),
            "symbols_in_intact_200_answers": served,
            "engine_fetched_plus_missing": engine_seen,
        },
        "events": {
            "rate_limited": len(eng.named("rate_limited")),
            "batch_split": len(eng.named("batch_split")),
            "batch_failed": len(eng.named("batch_failed")),
            "breaker_opened": len(eng.named("breaker_opened")),
            "rate_budget_insufficient": len(eng.named("rate_budget_insufficient")),
            "cycle_overrun": len(eng.named("cycle_overrun")),
            "failure_rate_high": len(eng.named("failure_rate_high")),
            "total_log_lines": len(events),
        },
        "failed_batches": [
            {k: e.get(k) for k in ("cycle", "symbols", "first_symbol", "error", "detail")}
            for e in eng.named("batch_failed")
        ],
        "per_cycle": measured,
    }


# --------------------------------------------------------------------------------------------
# B: rate limit below need
# --------------------------------------------------------------------------------------------


class StatsPoller(threading.Thread):
    def __init__(self, emu: EmulatorProcess, every_s: float) -> None:
        super().__init__(daemon=True)
        self.emu = emu
        self.every = every_s
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                s = self.emu.stats()
                q = s["requests"].get("quote", {})
                self.samples.append(
                    {
                        "t": time.time(),
                        "rate_limited": s["rate_limited"],
                        "requests_total": s["requests_total"],
                        "quote_200": q.get("200", 0),
                        "quote_429": q.get("429", 0),
                    }
                )
            self.stop.wait(self.every)


def per_minute(samples: Sequence[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """429s and requests in each whole minute since ``t0``, from cumulative stats samples."""

    def at(t: float) -> dict[str, Any] | None:
        best = None
        for s in samples:
            if s["t"] <= t + 1e-6:
                best = s
        return best

    out: list[dict[str, Any]] = []
    if not samples:
        return out
    k = 0
    while t0 + 60 * (k + 1) <= samples[-1]["t"] + 2.5:
        a, b = at(t0 + 60 * k), at(t0 + 60 * (k + 1))
        if a is not None and b is not None:
            n429 = b["rate_limited"] - a["rate_limited"]
            reqs = b["requests_total"] - a["requests_total"]
            out.append(
                {
                    "minute": k + 1,
                    "from_s": round(a["t"] - t0, 1),
                    "to_s": round(b["t"] - t0, 1),
                    "429s": n429,
                    "requests": reqs,
                    "share_429": round(n429 / reqs, 4) if reqs else 0.0,
                }
            )
        k += 1
    return out


def bins_429(access: Sequence[dict[str, Any]], t0: float, width: float) -> list[int]:
    counts: Counter[int] = Counter()
    last = 0
    for e in access:
        k = int((e["ts"] - t0) // width)
        if k < 0:
            continue
        last = max(last, k)
        if e.get("status") == 429:
            counts[k] += 1
    return [counts[k] for k in range(last + 1)]


def refresh_gaps(
    refreshes: dict[str, list[float]],
    symbols: Sequence[str],
    start: float,
    end: float,
    cycle_starts: Sequence[float],
    interval_s: float,
) -> dict[str, Any]:
    """Longest time each symbol went without a refresh within [start, end]: leading gap (from
    ``start``), gaps between refreshes, and the trailing gap to ``end`` (so a symbol starved at
    the end counts). In seconds, intervals (seconds / interval) and engine cycles (how many
    cycle starts the gap spans)."""

    def cyc(t: float) -> int:
        return bisect.bisect_right(cycle_starts, t)

    worst_s: dict[str, float] = {}
    worst_c: dict[str, int] = {}
    never = []
    for s in symbols:
        ts = sorted(t for t in refreshes.get(s, ()) if start <= t <= end)
        if not ts:
            never.append(s)
            continue
        points = [start, *ts, end]
        worst_s[s] = max(b - a for a, b in itertools.pairwise(points))
        worst_c[s] = max(cyc(b) - cyc(a) for a, b in itertools.pairwise(points))
    if not worst_s:
        return {"symbols_never_refreshed": len(never)}
    top = max(worst_s, key=lambda k: worst_s[k])
    vals = sorted(worst_s.values())
    return {
        "max_gap_s": round(vals[-1], 2),
        "max_gap_intervals": round(vals[-1] / interval_s, 2),
        "p99_gap_intervals": round(vals[int(0.99 * (len(vals) - 1))] / interval_s, 2),
        "median_worst_gap_intervals": round(vals[len(vals) // 2] / interval_s, 2),
        "max_gap_engine_cycles": max(worst_c.values()),
        "worst_symbol": top,
        "symbols_never_refreshed": len(never),
        "never_refreshed_head": never[:10],
    }


def run_rate_limit(a: argparse.Namespace) -> dict[str, Any]:
    """Part B."""
    names = new_names()
    need_per_interval = math.ceil(a.symbols / BATCH_SIZE)
    need_rps = need_per_interval / a.rl_interval
    emu_rps = round(need_rps * a.budget_fraction, 3)
    burst = max(10.0, emu_rps) if a.rl_burst is None else a.rl_burst
    budget_per_interval = emu_rps * a.rl_interval
    target_intervals = 2 * need_per_interval / budget_per_interval
    symbols = universe(a.symbols)
    with tempfile.TemporaryDirectory(prefix="bench-faults-rl-") as d:
        tmp = Path(d)
        access = tmp / "access.jsonl"
        emu_args = [
            *("--market-state", "REGULAR", "--latency-ms", str(a.latency_ms)),
            *("--seed", str(a.seed), "--access-log-symbols"),
            *("--rate-limit-rps", str(emu_rps), "--rate-limit-burst", str(burst)),
        ]
        try:
            with EmulatorProcess(emu_args, access_log=access) as emu:
                env = engine_env(emu.url, names, tmp, a.symbols, a.rl_interval)
                log(f"B: emulator limit {emu_rps} rps (burst {burst}) vs need {need_rps:.2f} "
                    f"rps; {a.symbols} symbols, interval {a.rl_interval}s, "
                    f"{a.rl_seconds}s")  # fmt: skip
                poller = StatsPoller(emu, a.poll_s)
                poller.start()
                with engine_run(env) as eng:
                    first = eng.wait_event("cycle_started", timeout=120)
                    t_start = event_time(first)
                    while time.time() < t_start + a.rl_seconds:
                        time.sleep(min(10.0, max(0.1, t_start + a.rl_seconds - time.time())))
                        done = eng.named("cycle_completed")
                        if done:
                            c = done[-1]
                            log(f"B: t={time.time() - t_start:.0f}s cycle {c['cycle']} "
                                f"failed={c['failed']} rate={c['rate_rps']} "
                                f"429s={emu.stats()['rate_limited']}")  # fmt: skip
                    t_end = time.time()
                    code = stop_engine(eng)
                poller.stop.set()
                poller.join(10)
            completed = eng.named("cycle_completed")
            stream = asyncio.run(read_stream(NATS_URL, names.stream))
            rows = asyncio.run(pg_rows(PG_DSN, names.table))
        finally:
            cleanup(names)
        acc_log = read_access_log(access)
        save_artifacts(a.artifacts, "B", access, eng)
    cycle_starts = [event_time(e) for e in eng.named("cycle_started")]
    # intact 200 answers: every symbol in them was refreshed at that moment
    refreshed: dict[str, list[float]] = defaultdict(list)
    for e in acc_log:
        if e.get("endpoint") == "quote" and e.get("status") == 200 and not e.get("fault"):
            for s in (e.get("symbols") or "").split(","):
                if s:
                    refreshed[s.upper()].append(float(e["ts"]))
    # measure over whole minutes of the run, up to the last completed cycle's end
    end = min(t_end, max((event_time(c) for c in completed), default=t_end))
    gaps = refresh_gaps(refreshed, symbols, t_start, end, cycle_starts, a.rl_interval)
    settle_from = t_start + a.settle_s
    gaps_after = refresh_gaps(refreshed, symbols, settle_from, end, cycle_starts, a.rl_interval)
    by_stream: dict[str, list[float]] = defaultdict(list)
    for p, _ in stream:
        by_stream[p["symbol"]].append(iso_epoch(p["ingest_time"]))
    published = sorted(by_stream)
    stream_gaps = refresh_gaps(by_stream, published, t_start, end, cycle_starts, a.rl_interval)
    minutes = per_minute(poller.samples, t_start)
    tail = [m for m in minutes if m["minute"] >= 2]
    near_zero = all(m["share_429"] <= a.near_zero_share for m in tail) if tail else None
    rate_events = eng.named("rate_limited")
    budget_events = eng.named("rate_budget_insufficient")
    return {
        "part": "B",
        "config": {
            "symbols": a.symbols,
            "interval_s": a.rl_interval,
            "seconds": a.rl_seconds,
            "emulator_latency_ms": a.latency_ms,
            "need_requests_per_interval": need_per_interval,
            "need_rps": round(need_rps, 3),
            "emulator_rate_limit_rps": emu_rps,
            "emulator_rate_limit_burst": burst,
            "budget_requests_per_interval": round(budget_per_interval, 2),
            "seed": a.seed,
            "near_zero_share": a.near_zero_share,
        },
        "exit_code": code,
        "crashes": crashes(eng, code, 3),
        "cycles_completed": len(completed),
        "cycle_overruns": len(eng.named("cycle_overrun")),
        "429_per_minute": minutes,
        "429_per_10s": bins_429(acc_log, t_start, 10.0),
        "429s_fall_to_near_zero_within_60s": near_zero,
        "fairness": {
            "target_max_gap_intervals": round(target_intervals, 2),
            "from_access_log": gaps,
            "from_access_log_after_settle": {"settle_s": a.settle_s, **gaps_after},
            "from_stream_upper_bound": stream_gaps,
            "met": gaps.get("max_gap_intervals", math.inf) <= target_intervals
            and not gaps.get("symbols_never_refreshed"),
        },
        "engine": {
            "rate_limited_events": len(rate_events),
            "rate_limited_per_minute": bins_events(rate_events, t_start, 60.0),
            "rate_budget_insufficient_events": len(budget_events),
            "budget_events_head": [
                {k: e.get(k) for k in ("requests_needed", "budget", "rate_rps", "cycles_per_pass")}
                for e in budget_events[:3]
            ],
            "budget_events_last": [
                {k: e.get(k) for k in ("requests_needed", "budget", "rate_rps", "cycles_per_pass")}
                for e in budget_events[-3:]
            ],
            "per_cycle": [
                {
                    "cycle": c["cycle"],
                    "t_s": round(event_time(c) - t_start, 1),
                    "seconds": round(c["seconds"], 1),
                    "requests": c["requests"],
                    "attempts": c["attempts"],
                    "failed": c["failed"],
                    "valid": c["valid"],
                    "rate_rps": c.get("rate_rps"),
                    "rate_headroom": c.get("rate_headroom"),
                    "breaker": c.get("breaker"),
                    "errors": c.get("errors", {}),
                }
                for c in completed
            ],
        },
        "messages": account(completed, stream, rows),
    }


def bins_events(events: Sequence[dict[str, Any]], t0: float, width: float) -> list[int]:
    counts: Counter[int] = Counter(int((event_time(e) - t0) // width) for e in events)
    if not counts:
        return []
    return [counts[k] for k in range(max(0, max(counts)) + 1)]


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.3f}%"


def print_a(r: dict[str, Any]) -> None:
    m, cr = r["messages"], r["crashes"]
    print(f"\n== A. fault mix: {r['config']['faults']} ==")
    print(f"config: {r['config']}")
    print(f"wall {r['wall_s']} s, cycles completed {r['cycles_completed_total']} "
          f"(measured {len(r['per_cycle'])}), cycle seconds max "
          f"{r['cycle_seconds']['max']:.1f} mean {r['cycle_seconds']['mean']:.1f}")  # fmt: skip
    for label, key in (("symbols without a valid quote", "symbol_error_rate"),
                       ("  of which fetch errors", "fetch_error_rate"),
                       ("  of which data (rejected + unknown)", "data_rate")):  # fmt: skip
        v = r[key]
        print(f"{label:38} max {pct(v['max'])}  mean {pct(v['mean'])}")
    print(f"crashes {cr['crashes']} (exit {cr['exit_code']}, child_died {len(cr['child_died'])},"
          f" restarts {cr['child_restarts']}, non-JSON stderr lines "
          f"{cr['non_json_stderr_lines']})")  # fmt: skip
    print(f"lost {m['lost']}  duplicated {m['duplicated']}  | engine accepted new "
          f"{m['engine_accepted_new']}, stream {m['stream_messages']} msgs / "
          f"{m['stream_distinct_msg_ids']} ids, PG {m.get('pg_rows')} rows / "
          f"{m.get('pg_distinct_symbol_time')} distinct, PG-not-in-stream "
          f"{m.get('pg_not_in_stream')}, stream-not-in-PG {m.get('stream_not_in_pg')}, "
          f"DLQ {m.get('dlq_messages')} vs rejected {m.get('engine_rejected')}, "
          f"order violations {m['per_symbol_time_order_violations']}")  # fmt: skip
    e = r["emulator"]
    print(f"emulator: {e['quote_requests']} quote requests {e['quote_status']}, faults "
          f"{e['faults']}; symbols in intact answers {e['symbols_in_intact_200_answers']} vs "
          f"engine fetched+missing {e['engine_fetched_plus_missing']}")  # fmt: skip
    print(f"events: {r['events']}")
    for fb in r["failed_batches"]:
        print(f"  batch_failed: {fb}")
    print("cycle  new  no_valid fetch_err data  requests attempts  secs  rate_rps  errors")
    for c in r["per_cycle"]:
        print(f"{c['cycle']:5} {c['new']:5} {c['no_valid']:6} {c['fetch_errors']:8} "
              f"{c['data']:5} {c['requests']:8} {c['attempts']:8} {c['seconds']:6} "
              f"{c['rate_rps']!s:>8}  {c['errors']}")  # fmt: skip


def print_b(r: dict[str, Any]) -> None:
    cfg = r["config"]
    print(f"\n== B. rate limit {cfg['emulator_rate_limit_rps']} rps vs need {cfg['need_rps']} "
          f"rps ==")  # fmt: skip
    print(f"config: {cfg}")
    print(f"exit {r['exit_code']}, crashes {r['crashes']['crashes']}, cycles "
          f"{r['cycles_completed']}, overruns {r['cycle_overruns']}")  # fmt: skip
    print("429s per minute (emulator stats):")
    for m in r["429_per_minute"]:
        print(f"  minute {m['minute']}: {m['429s']} 429s / {m['requests']} requests "
              f"({pct(m['share_429'])})")  # fmt: skip
    print(f"429s per 10 s (access log): {r['429_per_10s']}")
    print(f"429s near zero after the first 60 s (<= {pct(cfg['near_zero_share'])} of requests "
          f"each minute): {r['429s_fall_to_near_zero_within_60s']}")  # fmt: skip
    f = r["fairness"]
    print(f"fairness: target <= {f['target_max_gap_intervals']} intervals; met: {f['met']}")
    print(f"  from access log: {f['from_access_log']}")
    print(f"  after settle:    {f['from_access_log_after_settle']}")
    print(f"  from stream (upper bound, changed quotes only): {f['from_stream_upper_bound']}")
    e = r["engine"]
    print(f"engine: rate_limited events {e['rate_limited_events']} per minute "
          f"{e['rate_limited_per_minute']}; rate_budget_insufficient "
          f"{e['rate_budget_insufficient_events']}")  # fmt: skip
    print(f"  budget events first {e['budget_events_head']}")
    print(f"  budget events last  {e['budget_events_last']}")
    print("  cycle   t_s  secs requests attempts failed rate_rps headroom breaker errors")
    for c in e["per_cycle"]:
        print(f"  {c['cycle']:5} {c['t_s']:6} {c['seconds']:5} {c['requests']:8} "
              f"{c['attempts']:8} {c['failed']:6} {c['rate_rps']!s:>8} "
              f"{c['rate_headroom']!s:>8} {c['breaker']} {c['errors']}")  # fmt: skip
    m = r["messages"]
    print(f"messages: lost {m['lost']} duplicated {m['duplicated']} (stream "
          f"{m['stream_messages']}, PG {m.get('pg_rows')})")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=("A", "B", "AB"), default="AB")
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=2.0, help="emulator latency per request")
    g = ap.add_argument_group("A: fault mix")
    g.add_argument("--cycles", type=int, default=30)
    g.add_argument("--interval", type=float, default=5.0, help="scheduler interval, seconds")
    for k, v in FAULT_MIX.items():
        g.add_argument("--" + k.replace("_", "-"), dest=k, type=float, default=v)
    g.add_argument("--rate-policy", choices=("shipped", "lifted"), default="shipped",
                   help="shipped: the engine's default adaptive budget; lifted: start and max at "
                   "1000 rps, +100 rps/s (the emulator is not Yahoo)")  # fmt: skip
    g.add_argument("--cycle-timeout", type=float, default=180.0)
    g = ap.add_argument_group("B: rate limit below need")
    g.add_argument("--rl-seconds", type=float, default=200.0)
    g.add_argument("--rl-interval", type=float, default=5.0)
    g.add_argument("--budget-fraction", type=float, default=0.5)
    g.add_argument(
        "--rl-burst",
        type=float,
        default=None,
        help="emulator bucket (default: max(10, 1 s of refill); the emulator default is 10)",
    )
    g.add_argument("--settle-s", type=float, default=60.0)
    g.add_argument("--poll-s", type=float, default=2.0)
    g.add_argument("--near-zero-share", type=float, default=0.01,
                   help="429s 'near zero': at most this share of a minute's requests")  # fmt: skip
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--artifacts", help="directory to keep access logs and engine events in")
    return ap


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = build_parser().parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "argv": sys.argv}
    if "A" in a.part:
        results["A"] = run_fault_mix(a)
        print_a(results["A"])
    if "B" in a.part:
        results["B"] = run_rate_limit(a)
        print_b(results["B"])
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        print(f"wrote {a.json}")
    return results


if __name__ == "__main__":
    main()
