"""Cycle benchmark: the engine against the bundled emulator, beside yfinance on the same emulator.

Measures, for one process tree of ``ingestion-agent run --once`` (start-up included):
wall time, CPU seconds (all processes), peak RSS (sum of every process's VmHWM), and the cycle
latency measured from outside the engine - the emulator's access-log time of the first quote
request to the JetStream server timestamp of the last stored message - against its floor
``ceil(requests / in_flight) * latency``. Then the steady-state CPU per cycle of a continuous run
(cycles after the first), the scale curve (replica symbols ``SYM.X<n>``), and yfinance's
``yf.download(..., threads=True)`` of the same symbols from the same emulator, with the ratio.

Timings on a shared 2-core machine are noisy: read the ratios, measured in one run, beside the
absolute figures. Not a CI gate.

    .venv/bin/python bench/cycle.py                       # everything (yfinance takes minutes)
    .venv/bin/python bench/cycle.py --no-peer --sizes 5000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_s, hwm_kb, tree_pids  # noqa: E402
from testkit import EmulatorProcess, EngineProcess, delete_streams  # noqa: E402

NATS_URL = os.environ.get("INGEST_NATS__URL", "nats://127.0.0.1:4222")


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
    emu_url: str, sym_file: Path, stream: str, in_flight: int, cfg: Path
) -> dict[str, str]:
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
            "INGEST_POSTGRES__ENABLED": "false",
            "INGEST_REDIS__ENABLED": "false",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
            "INGEST_NATS__OUTBOX_DIR": str(cfg.parent / f"outbox-{stream}"),
            "INGEST_LOG__LEVEL": "WARNING",
        }
    )
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


def quote_requests(access_log: Path, since: float) -> dict[str, Any]:
    """The v7 quote requests the emulator logged since ``since``: count, first arrival, last
    answer (arrival + duration) and the service-time percentiles (injected latency included)."""
    first: float | None = None
    last_answer: float | None = None
    durations: list[float] = []
    for line in access_log.read_text().splitlines():
        e = orjson.loads(line)
        if e.get("ts", 0) >= since and "/v7/finance/quote" in e.get("path", ""):
            durations.append(e["duration_ms"])
            first = e["ts"] if first is None else min(first, e["ts"])
            done = e["ts"] + e["duration_ms"] / 1000
            last_answer = done if last_answer is None else max(last_answer, done)
    durations.sort()

    def pct(q: float) -> float | None:
        return round(durations[int(q * (len(durations) - 1))], 1) if durations else None

    return {"n": len(durations), "first": first, "last_answer": last_answer,
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "max_ms": pct(1.0)}  # fmt: skip


def run_once(emu: EmulatorProcess, access_log: Path, n: int, in_flight: int, latency_ms: float,
             tmp: Path) -> dict[str, Any]:  # fmt: skip
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
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "--once"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sampler = RssSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    emu_cpu = (cpu_s(emu.proc.pid) if emu.proc else 0.0) - emu_cpu0
    stored, last_ts = asyncio.run(_last_msg_time(f"{stream}_Q"))
    q = quote_requests(access_log, t_start)
    first_ts, requests, last_answer = q["first"], q["n"], q["last_answer"]
    delete_streams(NATS_URL, [f"{stream}_Q", f"{stream}_D"])
    latency = (last_ts - first_ts) if (last_ts and first_ts) else None
    floor = math.ceil(requests / in_flight) * latency_ms / 1000 if requests else None
    # where the latency goes: fetching (first request -> last answer, emulator clock) and the
    # tail after the last answer (parse, validate, ring, publish, last ack: the engine's alone)
    fetch = (last_answer - first_ts) if (last_answer and first_ts) else None
    tail = (last_ts - last_answer) if (last_ts and last_answer) else None
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
        "floor_s": floor,
        "latency_over_floor": None if not (latency and floor) else round(latency / floor, 2),
        "fetch_span_s": None if fetch is None else round(fetch, 3),
        "tail_after_last_answer_s": None if tail is None else round(tail, 3),
        "emulator_ms_p50_p90_max": [q["p50_ms"], q["p90_ms"], q["max_ms"]],
        "emulator_cpu_s": round(emu_cpu, 3),
    }


def steady_cpu(
    emu: EmulatorProcess, n: int, in_flight: int, cycles: int, tmp: Path, interval_s: float
) -> dict[str, Any]:
    sym = tmp / f"steady{n}.json"
    sym.write_text(orjson.dumps(universe(n)).decode())
    cfg = tmp / "empty.toml"
    cfg.write_text("")
    stream = f"S{uuid.uuid4().hex[:8]}"
    env = engine_env(emu.url, sym, stream, in_flight, cfg)
    # the share of quotes that changed (and so are published) grows with the interval: the
    # emulator's stocks trade with a per-tick probability, like Yahoo's
    env.update({"INGEST_SCHEDULER__INTERVAL_S": f"{interval_s:g}", "INGEST_LOG__LEVEL": "INFO"})
    with EngineProcess(["run"], env) as eng:
        assert eng.proc is not None
        eng.wait_event("cycle_completed", timeout=60)
        pids = tree_pids(eng.proc.pid)
        c0 = sum(cpu_s(p) for p in pids)
        t0 = time.perf_counter()
        eng.wait_event("cycle_completed", count=cycles + 1, timeout=30 + cycles * 2 * interval_s)
        c1 = sum(cpu_s(p) for p in tree_pids(eng.proc.pid))
        elapsed = time.perf_counter() - t0
        done = eng.named("cycle_completed")[1 : cycles + 1]
        eng.proc.terminate()
        eng.wait(60)
    delete_streams(NATS_URL, [f"{stream}_Q", f"{stream}_D"])
    return {
        "symbols": n,
        "in_flight": in_flight,
        "interval_s": interval_s,
        "cycles": cycles,
        "cpu_s_per_cycle": round((c1 - c0) / cycles, 3),
        "elapsed_s": round(elapsed, 1),
        "published_per_cycle": [d.get("published") for d in done],
        "unchanged_per_cycle": [d.get("unchanged") for d in done],
    }


def yfinance_peer(emu_url: str, n: int) -> dict[str, Any]:
    import yfinance as yf

    from yahoo_emulator.yfsession import RewritingSession

    with tempfile.TemporaryDirectory() as cache:
        yf.cache.set_cache_location(cache)
        yf.set_tz_cache_location(cache)
        session = RewritingSession(emu_url)
        symbols = universe(n)
        t0 = time.perf_counter()
        df = yf.download(symbols, period="1d", session=session, threads=True, progress=False,
                         auto_adjust=False)  # fmt: skip
        wall = time.perf_counter() - t0
    got = 0
    if df is not None and not df.empty:
        close = df["Close"] if "Close" in df.columns.get_level_values(0) else df
        got = int(close.ffill().iloc[-1].notna().sum())
    return {"symbols": n, "wall_s": round(wall, 2), "prices": got}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--sizes", default="5000,20000,100000")
    ap.add_argument("--in-flight", default="4,50", help="defaults for real Yahoo, then emulator")
    ap.add_argument("--steady-cycles", type=int, default=5)
    ap.add_argument(
        "--steady-interval-s", type=float, default=10.0, help="the steady run's interval (10 s)"
    )
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--peer-symbols", type=int, default=5000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cycle-latest.json"))
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    flights = [int(x) for x in a.in_flight.split(",")]
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "date": datetime.now().isoformat(timespec="seconds"),
        },
        "latency_ms": a.latency_ms,
        "once": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log = tmp / "access.jsonl"
        args = ["--market-state", "REGULAR", "--latency-ms", str(a.latency_ms), "--seed", "1",
                "--max-symbols", "1500"]  # fmt: skip
        with EmulatorProcess(args, access_log=log) as emu:
            for f in flights:
                r = run_once(emu, log, 5000, f, a.latency_ms, tmp)
                results["once"].append(r)
                print(orjson.dumps(r).decode(), flush=True)
            for n in sizes:
                if n == 5000:
                    continue
                r = run_once(emu, log, n, max(flights), a.latency_ms, tmp)
                results["once"].append(r)
                print(orjson.dumps(r).decode(), flush=True)
            results["steady"] = steady_cpu(
                emu, 5000, flights[0], a.steady_cycles, tmp, a.steady_interval_s
            )
            print(orjson.dumps(results["steady"]).decode(), flush=True)
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
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
