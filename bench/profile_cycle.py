"""Profile of one ``ingestion-agent run --once`` cycle: where each engine process spends its CPU.

Starts the bundled emulator (like bench/cycle.py: REGULAR market, ``--latency-ms``, seed 1), then
runs the engine in a child Python whose supervisor, workers and publisher each run under
cProfile (the child wraps ``worker_main`` / ``publisher_main`` before the supervisor forks them;
the engine itself is not changed). Each process writes ``<kind>-<pid>.prof`` into ``--dir``;
the report prints, per process, its total CPU time as cProfile saw it, the time by area (a
coarse grouping of functions by file: JSON decode/validation, HTTP transport, NATS, ring, ...)
and the top functions by own time.

cProfile adds overhead (roughly 1.5-2x on this code), so read the shares, not the absolute
seconds; the unprofiled figures are bench/cycle.py's.

    .venv/bin/python bench/profile_cycle.py --symbols 100000 --in-flight 50
    .venv/bin/python bench/profile_cycle.py --symbols 5000 --in-flight 4 --steady 5  # steady
    .venv/bin/python bench/profile_cycle.py --report-only --dir /tmp/prof   # re-read .prof files
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# (area, substring of the file name or function) - first match wins
AREAS: list[tuple[str, str]] = [
    ("msgspec decode/validate", "msgspec"),
    ("engine quote/validation", "engine/quote.py"),
    ("engine records/ring", "engine/records.py"),
    ("engine records/ring", "engine/ringbuf.py"),
    ("engine worker", "engine/worker.py"),
    ("engine yahoo client", "engine/source/client.py"),
    ("engine transport", "engine/source/transport.py"),
    ("engine publisher", "engine/sinks/publisher.py"),
    ("engine guard/ratelimit", "engine/source/guard.py"),
    ("engine guard/ratelimit", "engine/source/ratelimit.py"),
    ("engine guard/ratelimit", "engine/source/breaker.py"),
    ("engine supervisor/ipc", "engine/supervisor.py"),
    ("engine supervisor/ipc", "engine/runtime/ipc.py"),
    ("engine supervisor/ipc", "engine/runtime/child.py"),
    ("engine metrics/logs", "engine/observe/metrics/"),
    ("engine metrics/logs", "engine/observe/logs.py"),
    ("engine other", "engine/"),
    ("curl_cffi (HTTP)", "curl_cffi"),
    ("nats-py", "/nats/"),
    ("orjson", "orjson"),
    ("numpy", "numpy"),
    ("uvloop/asyncio", "asyncio"),
    ("uvloop/asyncio", "uvloop"),
    ("logging", "logging"),
    ("import/startup", "<frozen importlib"),
    ("select/poll/IO", "select"),
]


def area_of(file: str, func: str) -> str:
    key = f"{file}:{func}"
    for area, needle in AREAS:
        if needle in key:
            return area
    if file == "~":
        return f"builtin {func.split(' ')[-1][:40]}"
    return "other python"


# -- child: the engine with every process under cProfile --------------------------------------


class _Prof:
    """This process's profiler; SIGUSR2 throws away what it recorded so far and starts again
    (the steady mode sends it after the first cycle, so start-up is left out; not SIGUSR1:
    that is the engine's orphan signal, engine/runtime/child.py)."""

    def __init__(self) -> None:
        self.prof = cProfile.Profile(time.process_time)
        signal.signal(signal.SIGUSR2, self._restart)
        self.prof.enable()

    def _restart(self, _sig: int, _frame: Any) -> None:
        self.prof.disable()
        self.prof = cProfile.Profile(time.process_time)
        self.prof.enable()

    def dump(self, path: Path) -> None:
        self.prof.disable()
        self.prof.dump_stats(str(path))


def _profiled(kind: str, fn: Callable[..., None], out: Path) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        prof = _Prof()
        try:
            fn(*args, **kwargs)
        finally:
            prof.dump(out / f"{kind}-{os.getpid()}.prof")

    return wrapper


def child(out: Path, argv: list[str]) -> int:
    import engine.supervisor as sup
    from engine.commands.cli import main

    for kind in ("worker", "publisher"):
        name = f"{kind}_main"
        setattr(sup, name, _profiled(kind, getattr(sup, name), out))
    prof = _Prof()
    try:
        rc = main(argv)
    finally:
        prof.dump(out / f"supervisor-{os.getpid()}.prof")
    return int(rc or 0)


def steady(env: dict[str, str], out: Path, cycles: int, interval_s: float) -> str:
    """``run`` under the profilers; profiles restarted after the first cycle, stopped (SIGTERM)
    after ``cycles`` more: the .prof files hold ``cycles`` steady cycles (plus the drain)."""
    import cycle

    from testkit import EngineProcess

    class Profiled(EngineProcess):
        def __enter__(self) -> Profiled:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--child", str(out), "run"], cwd=ROOT, env=self.env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            self._reader = threading.Thread(target=self._read_stderr, daemon=True)
            self._reader.start()
            return self

    env = dict(env, INGEST_SCHEDULER__INTERVAL_S=f"{interval_s:g}", INGEST_LOG__LEVEL="INFO")
    with Profiled(["run"], env) as eng:
        assert eng.proc is not None
        eng.wait_event("cycle_completed", timeout=120)
        for pid in cycle.tree_pids(eng.proc.pid)[1:]:
            os.kill(pid, signal.SIGUSR2)
        os.kill(eng.proc.pid, signal.SIGUSR2)
        eng.wait_event("cycle_completed", count=cycles + 1, timeout=60 + cycles * 3 * interval_s)
        eng.proc.terminate()
        eng.wait(120)
        done = eng.named("cycle_completed")[1 : cycles + 1]
    return f"{cycles} steady cycles, published per cycle: {[d.get('published') for d in done]}"


# -- report ------------------------------------------------------------------------------------


def report(out: Path, top: int) -> None:
    for path in sorted(out.glob("*.prof")):
        st = pstats.Stats(str(path))
        total = st.total_tt  # type: ignore[attr-defined]
        by_area: dict[str, float] = defaultdict(float)
        rows = []
        for (file, _line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
            by_area[area_of(file, func)] += tt
            rows.append((tt, ct, nc, f"{Path(file).name}:{func}" if file != "~" else func))
        print(f"\n== {path.name}: {total:.3f} CPU-s profiled (own time of every function)")
        for area, t in sorted(by_area.items(), key=lambda kv: -kv[1])[:12]:
            print(f"   {area:<32} {t:7.3f} s  {100 * t / total:5.1f} %")
        print(f"   top {top} functions by own time:   own s   cum s    calls")
        for tt, ct, nc, name in sorted(rows, reverse=True)[:top]:
            print(f"   {name[:60]:<60} {tt:7.3f} {ct:7.3f} {nc:8d}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--symbols", type=int, default=100_000)
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--dir", default="", help="where the .prof files go (default: a temp dir)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument(
        "--steady", type=int, default=0, metavar="N",
        help="profile N steady cycles of `run` (5,000 symbols: pass --symbols 5000) instead",
    )  # fmt: skip
    ap.add_argument("--interval-s", type=float, default=10.0, help="with --steady")
    ap.add_argument(
        "--full-change", action=argparse.BooleanOptionalAction, default=True,
        help="the emulator moves every price every second (bench/cycle.py's default)",
    )  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args()
    if a.child:
        sys.exit(child(Path(a.child), rest))
    out = Path(a.dir or tempfile.mkdtemp(prefix="ia-prof-"))
    out.mkdir(parents=True, exist_ok=True)
    if a.report_only:
        report(out, a.top)
        return

    import cycle

    from testkit import EmulatorProcess, delete_streams

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sym = tmp / "sym.json"
        sym.write_text(orjson.dumps(cycle.universe(a.symbols)).decode())
        cfg = tmp / "empty.toml"
        cfg.write_text("")
        stream = f"P{uuid.uuid4().hex[:8]}"
        args = cycle.emulator_args(a.latency_ms, full_change=a.full_change)
        with EmulatorProcess(args) as emu:
            env = cycle.engine_env(emu.url, sym, stream, a.in_flight, cfg)
            if a.steady:
                print(steady(env, out, a.steady, a.interval_s))
            else:
                cmd = [sys.executable, __file__, "--child", str(out), "run", "--once"]
                p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=600)  # fmt: skip
                print((p.stdout.strip().splitlines() or [p.stderr[-800:]])[-1])
        delete_streams(cycle.NATS_URL, [f"{stream}_Q", f"{stream}_D"])
    print(f"profiles in {out}")
    report(out, a.top)


if __name__ == "__main__":
    main()
