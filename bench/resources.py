"""Resource bench: the engine under the compose engine service's limits (docker-compose.yml).

Runs ``ingestion-agent run --once`` and then a steady ``ingestion-agent run`` of N cycles over
the 5,000 symbols of symbols.json against the bundled emulator, with the compose engine's
environment (workers, grace, ...) and config.toml, and the real NATS, PostgreSQL and Redis on
loopback (unique stream, table and key names, removed afterwards). The limits are emulated:

* memory: the process tree runs in its own cgroup (v1 ``memory`` or v2) with the compose
  ``mem_limit`` as its hard limit, like Docker's; its peak usage (RSS + page cache + the
  /dev/shm rings the engine touches, as Docker counts them) and any OOM kill are reported. If
  no cgroup can be made, only the sum of the processes' VmHWM is measured and compared.
* CPU: the tree is pinned with ``taskset`` to ``cpus`` CPUs (when the machine has that many;
  a CFS quota needs a writable ``cpu`` cgroup, which is used when available) and its
  CPU-seconds per cycle are compared with the budget ``cpus x interval_s``.

Also reported: the sum of VmHWM of every engine process, the /dev/shm the engine allocated,
and the SIGTERM drain time against ``scheduler.shutdown_grace_s``.

    .venv/bin/python bench/resources.py                    # 5,000 symbols, 6 steady cycles
    .venv/bin/python bench/resources.py --cycles 3 --json  # raw figures as JSON too

Timings on a shared 2-core machine are noisy. Not a CI gate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_s, hwm_kb, tree_pids  # noqa: E402
from testkit import EmulatorProcess, EngineProcess, delete_streams, free_port  # noqa: E402

NATS_URL = os.environ.get("IA_BENCH_NATS_URL", "nats://127.0.0.1:4222")
PG_DSN = os.environ.get("IA_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent


# -- compose limits --------------------------------------------------------------------------


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kmgKMG])?[bB]?", str(text).strip())
    if not m:
        raise SystemExit(f"docker-compose.yml: {text!r} is not a size such as 1g or 512m")
    return (
        int(m.group(1))
        * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[(m.group(2) or "").lower()]
    )


def compose_engine() -> tuple[dict[str, Any], dict[str, str]]:
    """The compose engine service and its environment (``${VAR...}`` resolved for loopback)."""
    data = YAML(typ="safe", pure=True).load((ROOT / "docker-compose.yml").read_text())
    svc = data["services"]["engine"]
    env = {
        k: re.sub(r"\$\{[^}]*\}", "", str(v))
        for k, v in svc.get("environment", {}).items()
        if k.startswith("INGEST_")
    }
    return svc, env


# -- process tree ----------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Polls the tree: each pid's peak RSS (VmHWM) and last CPU time (kept after it exits)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(0.05)

    def poll(self) -> None:
        for pid in tree_pids(self.root):
            self.peak[pid] = max(self.peak.get(pid, 0), hwm_kb(pid))
            c = cpu_s(pid)
            if c:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), c)

    @property
    def rss_mb(self) -> float:
        return sum(self.peak.values()) / 1024

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())


# -- cgroup ----------------------------------------------------------------------------------


class MemoryCgroup:
    """A child memory cgroup of ours with a hard limit (v1 ``memory`` or v2), if we may."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.path: Path | None = None
        self.version = 0
        name = f"ia-bench-{uuid.uuid4().hex[:8]}"
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            hid, controllers, rel = line.split(":", 2)
            if "memory" in controllers.split(","):
                base = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
                self._try(base / name, 1)
            elif hid == "0" and controllers == "" and self.path is None:
                base = Path("/sys/fs/cgroup") / rel.lstrip("/")
                if (base / "cgroup.subtree_control").exists() and "memory" in (
                    base / "cgroup.subtree_control"
                ).read_text():
                    self._try(base / name, 2)
            if self.path is not None:
                break

    def _try(self, path: Path, version: int) -> None:
        try:
            path.mkdir()
            limit_file = "memory.limit_in_bytes" if version == 1 else "memory.max"
            (path / limit_file).write_text(str(self.limit))
            if version == 1 and (path / "memory.memsw.limit_in_bytes").exists():
                # memswap_limit = mem_limit in compose: no swap beyond the limit
                (path / "memory.memsw.limit_in_bytes").write_text(str(self.limit))
            if version == 2 and (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.path, self.version = path, version

    def enter(self) -> None:
        """preexec_fn: move the child (and so its whole future tree) into the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int | None:
        if self.path is None:
            return None
        f = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / f).read_text())
        return None

    def oom_kills(self) -> int:
        if self.path is None:
            return 0
        f = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            for line in (self.path / f).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        return 0

    def pids(self) -> list[int]:
        if self.path is None:
            return []
        with contextlib.suppress(OSError, ValueError):
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        return []

    def close(self) -> None:
        if self.path is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.2)


def shm_files() -> dict[str, int]:
    out = {}
    for p in Path("/dev/shm").iterdir():
        with contextlib.suppress(OSError):
            out[p.name] = p.stat().st_size
    return out


# -- runs ------------------------------------------------------------------------------------


def launcher(cpus: float) -> list[str]:
    n = max(1, int(cpus))
    if shutil.which("taskset") and (os.cpu_count() or 1) >= n:
        return ["taskset", "-c", f"0-{n - 1}"]
    return []


class BenchEngine(EngineProcess):
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, cg: MemoryCgroup):
        super().__init__([], env)
        self.argv, self.cwd, self.cg = argv, cwd, cg

    def __enter__(self) -> BenchEngine:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self.cg.enter,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        return self


def run_mode(
    mode: str, env: dict[str, str], app: Path, cpus: float, mem_limit: int, cycles: int
) -> dict[str, Any]:
    cg = MemoryCgroup(mem_limit)
    shm_before = shm_files()
    argv = [*launcher(cpus), str(BIN / "ingestion-agent"), "run"]
    if mode == "once":
        argv.append("--once")
    out: dict[str, Any] = {"mode": mode, "cgroup": f"v{cg.version}" if cg.path else "none"}
    shm_peak = 0
    seen: set[int] = set()

    def kill_leftovers() -> None:
        """Children whose supervisor was killed (e.g. by the OOM killer) keep running, and
        keep our pipes open: end every process of this run (ours: in our cgroup/tree)."""
        for pid in set(cg.pids()) | {p for p in seen if Path(f"/proc/{p}").exists()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    try:
        with BenchEngine(argv, env, app, cg) as eng:
            assert eng.proc is not None
            sampler = Sampler(eng.proc.pid)
            sampler.start()
            t0 = time.perf_counter()
            if mode == "once":
                while eng.proc.poll() is None:
                    new = {k: v for k, v in shm_files().items() if k not in shm_before}
                    shm_peak = max(shm_peak, sum(new.values()))
                    seen.update(sampler.peak)
                    time.sleep(0.1)
                seen.update(sampler.peak)
                time.sleep(1)  # the children of a supervisor that exited normally are gone
                kill_leftovers()
                rc = eng.wait(60)
                out["wall_s"] = round(time.perf_counter() - t0, 2)
                out["summary"] = eng.stdout.strip().splitlines()[-1] if eng.stdout.strip() else ""
            else:
                interval = float(env["INGEST_SCHEDULER__INTERVAL_S"])
                try:
                    eng.wait_event("cycle_completed", timeout=120)
                    sampler.poll()
                    c0, w0 = sampler.cpu_total, time.perf_counter()
                    eng.wait_event(
                        "cycle_completed", count=cycles + 1, timeout=60 + cycles * 3 * interval
                    )
                except AssertionError:
                    seen.update(sampler.peak)
                    kill_leftovers()
                    eng.wait(60)
                    sampler.stop.set()
                    out.update(exit_code=eng.proc.returncode, oom_kills=cg.oom_kills(),
                               error="the engine stopped before completing the cycles")  # fmt: skip
                    return out
                sampler.poll()
                c1, w1 = sampler.cpu_total, time.perf_counter()
                shm_peak = sum(v for k, v in shm_files().items() if k not in shm_before)
                done = eng.named("cycle_completed")[1 : cycles + 1]
                out["cycles"] = cycles
                out["cpu_s_per_cycle"] = round((c1 - c0) / cycles, 3)
                out["cpu_share_of_limit"] = round((c1 - c0) / ((w1 - w0) * cpus), 3)
                out["cycle_s"] = [round(d.get("seconds") or 0, 2) for d in done]
                out["published_per_cycle"] = [d.get("published") for d in done]
                out["failed_per_cycle"] = [d.get("failed") for d in done]
                t_term = time.perf_counter()
                eng.proc.send_signal(signal.SIGTERM)
                rc = eng.wait(float(env["INGEST_SCHEDULER__SHUTDOWN_GRACE_S"]) + 30)
                out["sigterm_to_exit_s"] = round(time.perf_counter() - t_term, 2)
            sampler.stop.set()
            sampler.join()
            out["exit_code"] = rc
            out["cpu_s_total"] = round(sampler.cpu_total, 2)
            out["processes"] = len(sampler.peak)
            out["peak_rss_sum_mb"] = round(sampler.rss_mb, 1)
            out["shm_mb"] = round(shm_peak / 2**20, 1)
            peak = cg.peak()
            out["cgroup_peak_mb"] = None if peak is None else round(peak / 2**20, 1)
            out["oom_kills"] = cg.oom_kills()
            errors = [e for e in eng.events if e.get("level") in ("error", "critical")]
            out["errors_logged"] = len(errors)
    finally:
        cg.close()
    return out


async def _pg_drop(table: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        if await conn.fetchval("SELECT to_regclass('ingestion_schema_migrations') IS NOT NULL"):
            await conn.execute("DELETE FROM ingestion_schema_migrations WHERE table_name = $1",
                               table)  # fmt: skip
    finally:
        await conn.close()


@contextlib.contextmanager
def names() -> Iterator[dict[str, str]]:
    uid = uuid.uuid4().hex[:8]
    n = {
        "INGEST_NATS__STREAM": f"RB_{uid}_Q",
        "INGEST_NATS__SUBJECT": f"bench.{uid}.quote",
        "INGEST_NATS__DLQ_STREAM": f"RB_{uid}_D",
        "INGEST_NATS__DLQ_SUBJECT": f"bench.{uid}.dlq",
        "INGEST_POSTGRES__TABLE": f"rb_{uid}",
        "INGEST_REDIS__KEY_PREFIX": f"rb_{uid}:",
    }
    try:
        yield n
    finally:
        delete_streams(NATS_URL, [n["INGEST_NATS__STREAM"], n["INGEST_NATS__DLQ_STREAM"]])
        asyncio.run(_pg_drop(n["INGEST_POSTGRES__TABLE"]))
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=f"{n['INGEST_REDIS__KEY_PREFIX']}*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
        r.close()


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "measured", "limit", "use of limit")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), line, *(fmt.format(*r) for r in rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=6, help="steady cycles measured (default 6)")
    ap.add_argument("--interval", type=float, default=10.0, help="scheduler.interval_s (10)")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="emulator latency (50 ms)")
    ap.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    ap.add_argument("--mem-limit", help="override compose's mem_limit (e.g. 96m: shows the "
                    "limit is enforced: the engine is OOM-killed)")  # fmt: skip
    a = ap.parse_args()

    svc, compose_env = compose_engine()
    cpus = float(svc["cpus"])
    mem_limit = parse_size(a.mem_limit or svc["mem_limit"])
    grace = float(compose_env.get("INGEST_SCHEDULER__SHUTDOWN_GRACE_S", "20"))
    results: dict[str, Any] = {
        "limits": {
            "cpus": cpus,
            "mem_limit_mb": mem_limit / 2**20,
            "shm_size_mb": parse_size(svc["shm_size"]) / 2**20,
            "shutdown_grace_s": grace,
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    with tempfile.TemporaryDirectory(prefix="ia-resources-") as tmp_s:
        tmp = Path(tmp_s)
        app = tmp / "app"  # laid out like the image's /app
        (app / "var").mkdir(parents=True)
        shutil.copy(ROOT / "config.toml", app / "config.toml")
        shutil.copy(ROOT / "symbols.json", app / "symbols.json")
        n_symbols = len(orjson.loads((app / "symbols.json").read_bytes()))
        emu_args = ["--market-state", "REGULAR", "--latency-ms", str(a.latency_ms)]
        with EmulatorProcess(emu_args) as emu:
            for mode in ("once", "steady"):
                with names() as nm:
                    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
                    env.update(compose_env)
                    env.update(nm)
                    env.update(
                        {
                            "INGEST_NATS__URL": NATS_URL,
                            "INGEST_POSTGRES__DSN": PG_DSN,
                            "INGEST_REDIS__URL": REDIS_URL,
                            "INGEST_YAHOO__BASE_URL": emu.url,
                            "INGEST_HTTP__HOST": "127.0.0.1",
                            "INGEST_HTTP__PORT": str(free_port()),
                            "INGEST_SCHEDULER__INTERVAL_S": str(a.interval),
                            "INGEST_EARNINGS__ENABLED": "false",
                            "INGEST_LOG__LEVEL": "INFO",
                        }
                    )
                    print(f"running {mode} ...", file=sys.stderr, flush=True)
                    results[mode] = run_mode(mode, env, app, cpus, mem_limit, a.cycles)
    once, steady = results["once"], results["steady"]
    budget = cpus * a.interval

    def mb(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0f} MB"

    def sec(v: float | None, digits: int = 1) -> str:
        return "n/a" if v is None else f"{v:.{digits}f} s"

    def pct(v: float | None, lim: float) -> str:
        return "n/a" if v is None else f"{100 * v / lim:.0f}%"

    lim_mb = mem_limit / 2**20
    shm_lim = parse_size(svc["shm_size"]) / 2**20
    o, st = once.get, steady.get
    rows = [
        ("run --once: peak memory (cgroup)", mb(o("cgroup_peak_mb")), mb(lim_mb),
         pct(o("cgroup_peak_mb"), lim_mb)),
        ("run --once: sum of VmHWM", mb(o("peak_rss_sum_mb")), mb(lim_mb),
         pct(o("peak_rss_sum_mb"), lim_mb)),
        ("run --once: CPU-seconds (start-up included)", sec(o("cpu_s_total")), "", ""),
        ("run --once: wall", sec(o("wall_s")), "", ""),
        ("steady: peak memory (cgroup)", mb(st("cgroup_peak_mb")), mb(lim_mb),
         pct(st("cgroup_peak_mb"), lim_mb)),
        ("steady: sum of VmHWM", mb(st("peak_rss_sum_mb")), mb(lim_mb),
         pct(st("peak_rss_sum_mb"), lim_mb)),
        ("steady: /dev/shm used", mb(st("shm_mb")), mb(shm_lim), pct(st("shm_mb"), shm_lim)),
        ("steady: CPU-seconds per cycle", sec(st("cpu_s_per_cycle"), 2), f"{budget:.0f} s",
         pct(st("cpu_s_per_cycle"), budget)),
        ("steady: SIGTERM to exit", sec(st("sigterm_to_exit_s")), f"{grace:.0f} s",
         pct(st("sigterm_to_exit_s"), grace)),
        ("OOM kills (once + steady)", str(o("oom_kills", 0) + st("oom_kills", 0)), "0", ""),
    ]  # fmt: skip
    print(
        f"\n{n_symbols} symbols, workers={compose_env.get('INGEST_WORKERS__COUNT')}, "
        f"interval {a.interval:g} s, emulator latency {a.latency_ms:g} ms, "
        f"{a.cycles} steady cycles; limits from docker-compose.yml (cpus {cpus:g}, mem_limit "
        f"{lim_mb:.0f} MB, memory cgroup {o('cgroup')}, CPUs pinned: "
        f"{'yes' if launcher(cpus) else 'no'}); machine {os.cpu_count()} CPUs"
    )
    print(f"once: {o('summary') or o('error', '')} (exit {o('exit_code')})")
    print(f"steady: published/cycle {st('published_per_cycle')}, "
          f"cycle seconds {st('cycle_s')}, exit {st('exit_code')} {st('error', '')}\n")  # fmt: skip
    print(table(rows))
    if a.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    bad = [m for m in ("once", "steady") if results[m]["exit_code"] != 0 or results[m]["oom_kills"]]
    if bad:
        raise SystemExit(f"engine failed under the limits in: {', '.join(bad)}")


if __name__ == "__main__":
    main()
