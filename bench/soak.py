"""Soak: the engine for an hour against the emulator's default fault mix, while its dependencies
and its own processes are taken down at random times.

``ingestion-agent run`` polls ``--symbols`` (5,000) every ``--interval-s`` (10 s) for
``--minutes`` (60) against ``yahoo-emulator --fault-mix default`` (5 % 429, 5 % 5xx, 2 % resets,
1 % truncated bodies). NATS (JetStream), PostgreSQL and Redis are PRIVATE instances on spare
loopback ports (testkit.privateservers), never the shared services. After a warm-up, at seeded
random times, each round of disruptions:

* restarts NATS (in the first round once more with its storage wiped: the stream is gone),
  PostgreSQL (down ``--down-s``) and Redis;
* SIGKILLs a worker and the publisher;
* sends SIGHUP after changing the symbols file (5 % of the universe swapped out).

Before NATS is wiped its store is copied aside; at the end every copy is read back, so the
stream's content is the union of what each incarnation held. Reported (JSON + a summary):

* symbol error rate: symbols of a cycle that got no answer (``failed``) over symbols requested;
  symbols of cycles that never completed count as failed;
* fetched-but-lost: quotes the engine accepted as new (its ``cycle_completed`` counts) that
  are missing from the stream or from PostgreSQL (bench/accounting.py, the fault bench's
  checker, with the quote identity (symbol, market time, volume)); besides, every symbol the
  emulator answered intact (its access log) must be counted fetched or missing by a cycle;
* duplicated: the same (symbol, market time, volume) in the stream more than once;
* PostgreSQL rows missing: stream quotes whose (symbol, market time) has no row;
* RSS and open file descriptors of the engine's process tree: growth from the first to the
  last minute after warm-up;
* stalls: per stage (fetch requests, cycles, published messages, PostgreSQL rows written; the
  engine's /metrics counters, polled), the longest time without progress, not counting the time
  the stage's dependency was down.

Pass/fail against the targets: error rate < 0.05 %, 0 lost, 0 duplicates, 0 PostgreSQL rows
missing, RSS growth < 10 %, no stage stalled > 30 s. Not a CI gate (the smoke test
``tests/integration/test_bench_soak.py`` runs one minute)::

    .venv/bin/python bench/soak.py --json bench/results/soak-latest.json
    .venv/bin/python bench/soak.py --minutes 1 --symbols 200 --interval-s 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accounting import (  # noqa: E402
    LIFTED_RATE,
    StreamMsg,
    account,
    crashes,
    machine,
    observation_key,
    pg_rows,
    read_access_log,
    read_stream,
    served_symbols,
    stop_engine,
    universe,
)
from bench.procstat import cpu_s, tree_pids  # noqa: E402
from testkit import EmulatorProcess, EngineProcess, free_port  # noqa: E402
from testkit.privateservers import PrivateNats, PrivatePostgres, PrivateRedis  # noqa: E402

STREAM, SUBJECT, DLQ, DLQ_SUBJECT, TABLE = "SOAK_Q", "soak.quote", "SOAK_D", "soak.dlq", "soak_q"

# stage -> (its /metrics counter, the sample's labels it must carry, the dependency it needs)
STAGES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "fetch": ("ingestion_fetch_requests_total", {}, None),
    "cycle": ("ingestion_cycles_total", {}, None),
    "publish": ("ingestion_messages_total", {"outcome": "published"}, "nats"),
    "store": ("ingestion_store_rows_total", {"outcome": "written"}, "postgres"),
}
EVENTS = (  # engine log events worth counting over a soak
    *("child_died", "nats_disconnected", "nats_reconnected", "outbox_started", "quotes_spilled"),
    *("quotes_lost", "quotes_dropped", "reload_requested", "task_failed", "publisher_fatal"),
    "stream_created",
    "worker_share_refetch",
    "worker_share_lost",
    "stage_stalled",
)
NOTABLE = (  # events kept whole in the report (the first few of each), to explain a failure
    "quotes_lost",
    "quotes_dropped",
    "task_failed",
    "publisher_fatal",
    "worker_share_lost",
    "stage_stalled",
    "spill_failed",
)
TARGETS = {
    "symbol_error_rate": 0.0005,
    "lost": 0,
    "duplicated": 0,
    "pg_rows_missing": 0,
    "rss_growth": 0.10,
    "max_stall_s": 30.0,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] soak: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# sampling: process tree, /metrics
# --------------------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def read_counters(url: str) -> dict[str, float]:
    """Each stage's counter from the engine's /metrics (summed over the matching samples)."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = dict.fromkeys(STAGES, 0.0)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            for stage, (name, labels, _) in STAGES.items():
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    out[stage] += s.value
    return out


class Sampler(threading.Thread):
    """Every ``every_s``: the engine tree's RSS, fds and CPU, and each stage's counter."""

    def __init__(self, pid: int, metrics_url: str, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.url, self.every = pid, metrics_url, every_s
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = tree_pids(self.pid)
            s: dict[str, Any] = {
                "t": time.time(),
                "rss_kb": sum(_rss_kb(p) for p in pids),
                "fds": sum(_fds(p) for p in pids),
                "cpu_s": round(sum(cpu_s(p) for p in pids), 2),
                "procs": len(pids),
            }
            with contextlib.suppress(Exception):
                s["counters"] = read_counters(self.url)
            self.samples.append(s)
            self.stop.wait(self.every)


# --------------------------------------------------------------------------------------------
# analysis (pure: the smoke test feeds it made-up samples)
# --------------------------------------------------------------------------------------------

Window = tuple[float, float]


def _overlap(a: float, b: float, windows: Sequence[Window]) -> float:
    """Seconds of [a, b] covered by ``windows`` (merged first, so overlaps count once)."""
    merged: list[list[float]] = []
    for s, e in sorted(windows):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in merged)


def stalls(
    samples: Sequence[dict[str, Any]], down: dict[str, list[Window]], t0: float, t1: float
) -> dict[str, dict[str, Any]]:
    """Per stage, the longest time within [t0, t1] its counter did not grow, minus the time its
    dependency was down during that gap."""
    out: dict[str, dict[str, Any]] = {}
    rows = [s for s in samples if "counters" in s]
    for stage, (_, _, dep) in STAGES.items():
        progress = [t0]
        for prev, cur in itertools.pairwise(rows):
            if cur["counters"][stage] > prev["counters"][stage] and t0 <= cur["t"] <= t1:
                progress.append(cur["t"])
        progress.append(t1)
        excluded = down.get(dep, []) if dep else []
        worst, at = 0.0, t0
        for a, b in itertools.pairwise(progress):
            gap = (b - a) - _overlap(a, b, excluded)
            if gap > worst:
                worst, at = gap, a
        out[stage] = {
            "max_stall_s": round(worst, 1),
            "from_s": round(at - t0, 1),
            "progress_samples": len(progress) - 2,
            "dependency": dep,
        }
    return out


def growth(samples: Sequence[dict[str, Any]], key: str, t0: float, t1: float) -> dict[str, Any]:
    """Median of ``key`` in the first and the last minute (at most a third of the span each) of
    [t0, t1], and the relative growth between them."""
    span = min(60.0, (t1 - t0) / 3)
    first = [s[key] for s in samples if t0 <= s["t"] <= t0 + span]
    last = [s[key] for s in samples if t1 - span <= s["t"] <= t1]
    if not first or not last:
        return {"first": None, "last": None, "growth": None}
    a, b = statistics.median(first), statistics.median(last)
    return {"first": a, "last": b, "growth": round((b - a) / a, 4) if a else None}


def error_rate(cycles: Sequence[dict[str, Any]], incomplete: int, n_symbols: int) -> dict[str, Any]:
    requested = sum(c["requested"] for c in cycles) + incomplete * n_symbols
    failed = sum(c["failed"] for c in cycles) + incomplete * n_symbols
    data = sum(sum(c.get("rejected", {}).values()) + c["missing"] for c in cycles)
    return {
        "requested": requested,
        "failed": failed,
        "cycles_incomplete": incomplete,
        "symbol_error_rate": failed / requested if requested else 0.0,
        "data_rate": data / requested if requested else 0.0,
    }


def verdict(r: dict[str, Any]) -> dict[str, bool]:
    rss = r["resources"]["rss_kb"]["growth"]
    return {
        "symbol_error_rate": r["errors"]["symbol_error_rate"] < TARGETS["symbol_error_rate"],
        "lost": r["messages"]["lost"] == TARGETS["lost"],
        "duplicated": r["messages"]["duplicated"] == TARGETS["duplicated"],
        "pg_rows_missing": r["pg_rows_missing"] == TARGETS["pg_rows_missing"],
        "rss_growth": rss is not None and rss < TARGETS["rss_growth"],
        "max_stall_s": all(
            s["max_stall_s"] <= TARGETS["max_stall_s"] for s in r["stalls"].values()
        ),
    }


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@dataclass
class Soak:
    a: argparse.Namespace
    tmp: Path
    nats: PrivateNats
    pg: PrivatePostgres
    redis: PrivateRedis
    rng: random.Random
    symbols_file: Path
    universe: list[str]
    held_out: list[str] = field(default_factory=list)
    saved_stores: list[Path] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    def engine_env(self, emu_url: str, http_port: int) -> dict[str, str]:
        self.symbols_file.write_bytes(orjson.dumps(self.universe))
        cfg = self.tmp / "empty.toml"
        cfg.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
        env.update(
            {
                "INGEST_CONFIG": str(cfg),
                "INGEST_NATS__URL": self.nats.url,
                "INGEST_NATS__STREAM": STREAM,
                "INGEST_NATS__SUBJECT": SUBJECT,
                "INGEST_NATS__DLQ_STREAM": DLQ,
                "INGEST_NATS__DLQ_SUBJECT": DLQ_SUBJECT,
                "INGEST_NATS__OUTBOX_DIR": str(self.tmp / "outbox"),
                "INGEST_YAHOO__BASE_URL": emu_url,
                "INGEST_SYMBOLS__FILE": str(self.symbols_file),
                "INGEST_SCHEDULER__INTERVAL_S": str(self.a.interval_s),
                "INGEST_WORKERS__COUNT": str(self.a.workers),
                "INGEST_POSTGRES__ENABLED": "true",
                "INGEST_POSTGRES__DSN": self.pg.dsn,
                "INGEST_POSTGRES__TABLE": TABLE,
                "INGEST_POSTGRES__SPILL_DIR": str(self.tmp / "spill"),
                "INGEST_REDIS__ENABLED": "true",
                "INGEST_REDIS__URL": self.redis.url,
                "INGEST_HTTP__ENABLED": "true",
                "INGEST_HTTP__PORT": str(http_port),
                "INGEST_EARNINGS__ENABLED": "false",
                "INGEST_LOG__FORMAT": "json",
                "INGEST_LOG__LEVEL": "INFO",
            }
        )
        if self.a.rate_policy == "lifted":
            env.update(LIFTED_RATE)
        return env

    # -- disruptions -----------------------------------------------------------------------

    def restart_nats(self, eng: EngineProcess, *, wipe: bool = False) -> dict[str, Any]:
        self.nats.stop()
        if wipe:  # keep what this incarnation held: it is read back at the end
            copy = self.tmp / f"nats-store-{len(self.saved_stores)}"
            shutil.copytree(self.nats.store_dir, copy, dirs_exist_ok=True)
            self.saved_stores.append(copy)
            self.nats.wipe()
        time.sleep(self.a.down_s)
        self.nats.start()
        return {"wiped": wipe}

    def restart_postgres(self, eng: EngineProcess) -> dict[str, Any]:
        self.pg.restart(self.a.down_s)
        return {}

    def restart_redis(self, eng: EngineProcess) -> dict[str, Any]:
        self.redis.restart(self.a.down_s)
        return {}

    def kill_child(self, eng: EngineProcess, name: str) -> dict[str, Any]:
        started = [e for e in eng.named("child_started") if e.get("child") == name]
        if not started:
            return {"skipped": f"no {name} started"}
        pid = int(started[-1]["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return {"child": name, "pid": pid}

    def change_universe(self, eng: EngineProcess) -> dict[str, Any]:
        """Swap 5 % of the universe: the symbols held out last time come back."""
        k = max(1, len(self.universe) // 20)
        out = self.rng.sample(self.universe, k)
        back, self.held_out = self.held_out, out
        self.universe = [s for s in self.universe if s not in set(out)] + back
        self.symbols_file.write_bytes(orjson.dumps(self.universe))
        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGHUP)
        return {"removed": len(out), "added": len(back), "universe": len(self.universe)}

    def plan(self, t_first: float, t_last: float) -> list[tuple[float, str]]:
        """Seeded random times in [t_first, t_last] for every disruption of every round."""
        kinds = ["nats", "postgres", "redis", "kill_worker", "kill_publisher", "sighup"]
        todo = ["nats_wiped"]
        for _ in range(self.a.rounds):
            todo += kinds
        return sorted((self.rng.uniform(t_first, t_last), k) for k in todo)

    def act(self, kind: str, eng: EngineProcess) -> None:
        do: dict[str, Callable[[], dict[str, Any]]] = {
            "nats": lambda: self.restart_nats(eng),
            "nats_wiped": lambda: self.restart_nats(eng, wipe=True),
            "postgres": lambda: self.restart_postgres(eng),
            "redis": lambda: self.restart_redis(eng),
            "kill_worker": lambda: self.kill_child(eng, "worker-0"),
            "kill_publisher": lambda: self.kill_child(eng, "publisher"),
            "sighup": lambda: self.change_universe(eng),
        }
        t = time.time()
        detail = do[kind]()
        self.actions.append({"t": t, "kind": kind, "seconds": round(time.time() - t, 2), **detail})
        log(f"{kind} {detail}")

    def read_stream_union(self) -> list[StreamMsg]:
        msgs: list[StreamMsg] = []
        for store in self.saved_stores:
            with PrivateNats(store) as old:
                msgs += asyncio.run(read_stream(old.url, STREAM))
        return msgs + asyncio.run(read_stream(self.nats.url, STREAM))


def run(a: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(a.seed)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-")))
        nats_srv = stack.enter_context(PrivateNats(tmp / "nats"))
        pg = stack.enter_context(PrivatePostgres())
        red = stack.enter_context(PrivateRedis(tmp / "redis"))
        soak = Soak(a, tmp, nats_srv, pg, red, rng, tmp / "symbols.json", universe(a.symbols))
        access = tmp / "access.jsonl"
        emu_args = ["--fault-mix", a.fault_mix, "--market-state", "REGULAR"]
        emu_args += ["--latency-ms", str(a.latency_ms), "--seed", str(a.seed)]
        emu = stack.enter_context(EmulatorProcess(emu_args, access_log=access))
        http_port = free_port()
        env = soak.engine_env(emu.url, http_port)
        eng = stack.enter_context(EngineProcess(["run"], env))
        assert eng.proc is not None
        eng.wait_event("cycle_started", timeout=120)
        t_start = time.time()
        t_end = t_start + a.minutes * 60
        warm = t_start + a.warmup_s
        sampler = Sampler(eng.proc.pid, f"http://127.0.0.1:{http_port}/metrics", a.sample_s)
        sampler.start()
        plan = soak.plan(warm, t_end - a.settle_s)
        log(f"{a.symbols} symbols every {a.interval_s}s for {a.minutes} min; plan "
            f"{[(round(t - t_start), k) for t, k in plan]}")  # fmt: skip
        for when, kind in plan:
            time.sleep(max(0.0, when - time.time()))
            soak.act(kind, eng)
        time.sleep(max(0.0, t_end - time.time()))
        sampler.stop.set()
        sampler.join(10)
        code = stop_engine(eng, a.stop_timeout_s)
        log(f"engine stopped (exit {code}); reading the stream(s) and PostgreSQL")
        stream = soak.read_stream_union()
        rows = asyncio.run(pg_rows(pg.dsn, TABLE))
        served = served_symbols(read_access_log(access))
        down = {"nats": _closed(nats_srv.down_windows), "postgres": _closed(pg.down_windows)}
        down["redis"] = _closed(red.down_windows)
        return report(a, soak, eng, code, stream, rows, served, sampler.samples, down,
                      (t_start, warm, t_end))  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def _closed(windows: Sequence[tuple[float, float | None]]) -> list[Window]:
    return [(s, e if e is not None else time.time()) for s, e in windows]


def report(
    a: argparse.Namespace,
    soak: Soak,
    eng: EngineProcess,
    code: int | None,
    stream: Sequence[StreamMsg],
    rows: Sequence[tuple[str, int]],
    served: int,
    samples: Sequence[dict[str, Any]],
    down: dict[str, list[Window]],
    times: tuple[float, float, float],
) -> dict[str, Any]:
    t_start, warm, t_end = times
    completed = eng.named("cycle_completed")
    started = {e.get("cycle") for e in eng.named("cycle_started")}
    incomplete = len(started - {c["cycle"] for c in completed})
    msgs = account(completed, stream, rows, key=observation_key, check_msg_ids=False)
    # every symbol the emulator answered intact must be counted fetched or missing by a cycle
    seen = sum(c["fetched"] + c["missing"] for c in completed)
    r: dict[str, Any] = {
        "config": {k: v for k, v in vars(a).items() if k != "json"},
        "machine": machine(),
        "exit_code": code,
        "cycles_completed": len(completed),
        "errors": error_rate(completed, incomplete, a.symbols),
        "messages": msgs,
        "lost": msgs["lost"],
        "duplicated": msgs["duplicated"],
        "pg_rows_missing": msgs.get("stream_not_in_pg", 0),
        "emulator_symbols_in_intact_answers": served,
        "engine_fetched_plus_missing": seen,
        "served_not_counted": served - seen,
        "resources": {
            "rss_kb": growth(samples, "rss_kb", warm, t_end),
            "fds": growth(samples, "fds", warm, t_end),
            "samples": len(samples),
        },
        "stalls": stalls(samples, down, warm, t_end),
        "down_windows_s": {
            k: [(round(s - t_start, 1), round(e - t_start, 1)) for s, e in v]
            for k, v in down.items()
        },
        "actions": [{**x, "t": round(x["t"] - t_start, 1)} for x in soak.actions],
        "crashes": crashes(eng, code, a.workers + 1),
        "events": {k: len(eng.named(k)) for k in EVENTS},
        "notable_events": {k: eng.named(k)[:10] for k in NOTABLE if eng.named(k)},
    }
    r["verdict"] = verdict(r)
    r["passed"] = all(r["verdict"].values())
    return r


def summary(r: dict[str, Any]) -> str:
    e, res, v = r["errors"], r["resources"], r["verdict"]

    def ok(key: str) -> str:
        return "PASS" if v[key] else "FAIL"

    lines = [
        f"soak: {r['config']['minutes']} min, {r['config']['symbols']} symbols every "
        f"{r['config']['interval_s']} s, fault mix {r['config']['fault_mix']}; "
        f"{r['cycles_completed']} cycles, exit {r['exit_code']}",
        f"  symbol error rate {100 * e['symbol_error_rate']:.4f} % ({e['failed']} of "
        f"{e['requested']}; {e['cycles_incomplete']} cycles incomplete) "
        f"[< 0.05 %: {ok('symbol_error_rate')}]",
        f"  fetched-but-lost {r['lost']} [0: {ok('lost')}] (emulator answered "
        f"{r['emulator_symbols_in_intact_answers']} symbols intact, cycles counted "
        f"{r['engine_fetched_plus_missing']})",
        f"  duplicated {r['duplicated']} [0: {ok('duplicated')}]",
        f"  PostgreSQL rows missing {r['pg_rows_missing']} [0: {ok('pg_rows_missing')}]",
        f"  RSS {res['rss_kb']} [< 10 %: {ok('rss_growth')}]; fds {res['fds']}",
    ]
    for stage, s in r["stalls"].items():
        lines.append(f"  stage {stage}: longest stall {s['max_stall_s']} s at +{s['from_s']} s "
                     f"(dependency {s['dependency']})")  # fmt: skip
    lines.append(f"  stalls [<= 30 s: {ok('max_stall_s')}]")
    lines.append(f"  actions: {[(x['t'], x['kind']) for x in r['actions']]}")
    lines.append(f"  events: {r['events']}")
    lines.append("PASSED" if r["passed"] else "FAILED")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--interval-s", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-mix", default="default", help="the emulator's --fault-mix")
    ap.add_argument("--latency-ms", type=float, default=2.0)
    ap.add_argument("--rate-policy", choices=("shipped", "lifted"), default="shipped")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of disruptions (default: one per 20 min, >= 1)")  # fmt: skip
    ap.add_argument("--down-s", type=float, default=None,
                    help="how long a restarted server stays down (default: 20 s, less in a "
                    "short run)")  # fmt: skip
    ap.add_argument("--warmup-s", type=float, default=None,
                    help="no disruption, and no growth measured, before this (default: 10 %% "
                    "of the run, 5 min at most)")  # fmt: skip
    ap.add_argument(
        "--settle-s",
        type=float,
        default=None,
        help="no disruption in the last seconds (default: like --warmup-s)",
    )
    ap.add_argument("--sample-s", type=float, default=1.0)
    ap.add_argument("--stop-timeout-s", type=float, default=90.0)
    ap.add_argument("--json", help="write the results here")
    return ap


def resolve(a: argparse.Namespace) -> argparse.Namespace:
    span = a.minutes * 60
    if a.rounds is None:
        a.rounds = max(1, int(a.minutes // 20))
    if a.warmup_s is None:
        a.warmup_s = min(300.0, max(a.interval_s * 2, span * 0.1))
    if a.settle_s is None:
        a.settle_s = a.warmup_s
    if a.down_s is None:
        a.down_s = min(20.0, max(1.0, span / 60))
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = resolve(build_parser().parse_args(argv))
    r = run(a)
    print(summary(r))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2))
        print(f"wrote {a.json}")
    return r


if __name__ == "__main__":
    main()
