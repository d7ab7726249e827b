"""The bare-fetch floor: the least any client can take to fetch a universe from the emulator.

An aiohttp client on uvloop takes a cookie and a crumb once, then fetches the symbols in v7
batches of ``--batch`` (50) with ``--in-flight`` requests at a time, parsing each body with orjson
and nothing else (no validation, no ring, no publishing). The figure is the time from its first
quote request to the last body parsed; the best of ``--repeats`` (3) runs counts. bench/cycle.py
runs it (as its own process, so the bench's threads do not slow it) beside the engine on the
same emulator and reports the engine's cycle over this floor.

    .venv/bin/python bench/floor.py --url http://127.0.0.1:8765 --symbols 5000 --in-flight 20
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.source.client import quote_params  # noqa: E402  (the same fields as the engine)


async def fetch_all(url: str, symbols: list[str], in_flight: int, batch: int) -> dict[str, Any]:
    """One run: cookie and crumb, then every batch; the span first request -> last parse."""
    connector = aiohttp.TCPConnector(limit=in_flight)
    jar = aiohttp.CookieJar(unsafe=True)  # the emulator's cookie on an IP origin
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as s:
        async with s.get(url + "/") as r:
            await r.read()
        async with s.get(url + "/v1/test/getcrumb") as r:
            crumb = (await r.text()).strip()
        batches = [symbols[i : i + batch] for i in range(0, len(symbols), batch)]
        sem = asyncio.Semaphore(in_flight)
        got = 0
        last = 0.0

        async def one(b: list[str]) -> None:
            nonlocal got, last
            params = {**quote_params(b), "crumb": crumb}
            async with sem, s.get(url + "/v7/finance/quote", params=params) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {body[:100]!r}")
            got += len(orjson.loads(body)["quoteResponse"]["result"])
            last = time.perf_counter()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in batches))
    return {"seconds": last - t0, "quotes": got, "requests": len(batches)}


def best_of(
    url: str, symbols: list[str], in_flight: int, batch: int, repeats: int
) -> dict[str, Any]:
    runs = [uvloop.run(fetch_all(url, symbols, in_flight, batch)) for _ in range(max(1, repeats))]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "in_flight": in_flight, "runs_s": [round(r["seconds"], 3) for r in runs]}


def measure(
    url: str, symbols_file: Path, in_flight: int, *, batch: int = 50, repeats: int = 3
) -> dict[str, Any]:
    """The floor measured in a fresh process (what bench/cycle.py calls)."""
    cmd = [
        sys.executable,
        __file__,
        "--url",
        url,
        "--symbols-file",
        str(symbols_file),
        "--in-flight",
        str(in_flight),
        "--batch",
        str(batch),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True, help="the emulator's base URL")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--symbols-file", help="JSON list of symbols")
    src.add_argument("--symbols", type=int, help="the first N symbols of symbols.json (replicas)")
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.symbols_file:
        symbols = orjson.loads(Path(a.symbols_file).read_bytes())
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from cycle import universe

        symbols = universe(a.symbols)
    r = best_of(a.url.rstrip("/"), symbols, a.in_flight, a.batch, a.repeats)
    print(orjson.dumps(r).decode(), flush=True)


if __name__ == "__main__":
    main()
