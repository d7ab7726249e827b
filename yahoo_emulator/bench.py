"""Throughput and CPU cost of the emulator's v7 quote endpoint.

Starts ``python -m yahoo_emulator`` in its own process (or uses ``--url``), gets a cookie and
crumb, then sends ``--requests`` v7 requests of ``--batch`` distinct symbols (listed symbols,
then ``{BASE}.X{n}`` replicas, so 2,000 x 50 covers 100,000 different instruments) with
``--concurrency`` requests in flight from one aiohttp client. Reports wall time, requests/s,
symbols/s, client-side latency percentiles and the emulator process's CPU time per request
(from ``/_emulator/stats`` ``cpu_s``, so only meaningful when the emulator runs alone in its
process).

    python -m yahoo_emulator.bench --requests 2000 --batch 50 --concurrency 8
    python -m yahoo_emulator.bench --fields symbol,regularMarketPrice,regularMarketTime
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson

from yahoo_emulator.universe import load_universe


def symbol_batches(n_requests: int, batch: int) -> list[list[str]]:
    base = list(load_universe().symbols)
    need = n_requests * batch
    names: list[str] = []
    k = 0
    while len(names) < need:
        names.extend(base if k == 0 else [f"{s}.X{k}" for s in base])
        k += 1
    names = names[:need]
    return [names[i : i + batch] for i in range(0, need, batch)]


def spawn(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "yahoo_emulator", "--port", "0", "--log-level", "WARNING", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on (http://\S+)", line)
    if m is None:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, m.group(1)


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    batches = symbol_batches(args.requests, args.batch)
    conn = aiohttp.TCPConnector(limit=args.concurrency)
    jar = aiohttp.CookieJar(unsafe=True)  # the emulator is an IP origin
    async with aiohttp.ClientSession(connector=conn, cookie_jar=jar) as http:
        async with http.get(url + "/") as r:
            await r.read()
        async with http.get(url + "/v1/test/getcrumb") as r:
            crumb = await r.text()
        async with http.get(url + "/_emulator/stats") as r:
            before = orjson.loads(await r.read())
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        queue: asyncio.Queue[list[str]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            while not queue.empty():
                syms = queue.get_nowait()
                params = {"symbols": ",".join(syms), "crumb": crumb, "formatted": "false"}
                if args.fields:
                    params["fields"] = args.fields
                t0 = time.perf_counter()
                async with http.get(url + "/v7/finance/quote", params=params) as r:
                    body = await r.read()
                latencies.append(time.perf_counter() - t0)
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200 and args.check:
                    assert len(orjson.loads(body)["quoteResponse"]["result"]) == len(syms)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
        async with http.get(url + "/_emulator/stats") as r:
            after = orjson.loads(await r.read())
    cpu = after["cpu_s"] - before["cpu_s"]
    lat = sorted(latencies)
    return {
        "requests": len(batches),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "fields": args.fields or None,
        "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(batches) / wall, 1),
        "symbols_per_s": round(len(batches) * args.batch / wall),
        "latency_ms": {
            "p50": round(statistics.median(lat) * 1e3, 3),
            "p99": round(lat[int(len(lat) * 0.99) - 1] * 1e3, 3),
            "max": round(lat[-1] * 1e3, 3),
        },
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_request": round(cpu / len(batches) * 1e3, 3),
        "instruments_after": after["instruments"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="use a running emulator instead of spawning one")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--fields", default="")
    ap.add_argument("--check", action="store_true", help="decode bodies and count quotes")
    ap.add_argument("--rounds", type=int, default=1, help="repeat (first round registers replicas)")
    ap.add_argument("emulator_args", nargs="*", help="extra args for the spawned emulator")
    args = ap.parse_args(argv)
    proc = None
    url = args.url
    if url is None:
        proc, url = spawn(["--market-state", "REGULAR", *args.emulator_args])
    try:
        for i in range(args.rounds):
            result = asyncio.run(run(url, args))
            result["round"] = i + 1
            print(orjson.dumps(result).decode(), flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
