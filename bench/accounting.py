"""What a bench run stored, read back and checked: shared by the fault bench (bench/faults.py)
and the soak (bench/soak.py).

* readers: every message of a stream (:func:`read_stream`), a stream's size, PostgreSQL's
  (symbol, market time) rows, Redis keys under a prefix, the emulator's JSON-lines access log,
  the epoch of an engine log line;
* :func:`account` - lost and duplicated messages: the engine's per-cycle counts (its
  ``cycle_completed`` events) against the stream against PostgreSQL (pure: the smoke tests feed
  it doctored inputs);
* :func:`served_symbols` - what the emulator answered in intact 200 v7 responses, to
  cross-check the engine's own fetch counts;
* per-cycle rates (:func:`cycle_rates`, :func:`summarise_rates`) and the crash summary of an
  engine run (:func:`crashes`); :func:`stop_engine`, :func:`machine`, :func:`universe`.

Every reader takes the server's URL/DSN, so a bench can point it at the shared services or at
private ones it started itself.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nats.js.errors
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.sinks.partitions import quote_ident  # noqa: E402
from testkit import EngineProcess  # noqa: E402

# the emulator is not Yahoo: lifts the engine's adaptive budget (like bench/cycle.py) when asked
LIFTED_RATE = {
    "INGEST_YAHOO__RATE_INITIAL_RPS": "1000",
    "INGEST_YAHOO__RATE_MAX_RPS": "1000",
    "INGEST_YAHOO__RATE_BURST": "1000",
    "INGEST_YAHOO__RATE_INCREASE_RPS": "100",
}

StreamMsg = tuple[dict[str, Any], dict[str, str]]


async def read_stream(nats_url: str, stream: str) -> list[StreamMsg]:
    """Every message of ``stream`` in stream order, through an ordered push consumer (one
    ``get_msg`` per message would take minutes for 100k messages)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return []
        n = info.state.messages
        out: list[StreamMsg] = []
        if not n:
            return out
        subjects = info.config.subjects or [">"]
        sub = await js.subscribe(subjects[0], stream=stream, ordered_consumer=True)
        try:
            while len(out) < n:
                m = await sub.next_msg(timeout=30)
                out.append((orjson.loads(m.data or b"{}"), dict(m.headers or {})))
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def stream_count(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        try:
            return int((await nc.jetstream().stream_info(stream)).state.messages)
        except nats.js.errors.NotFoundError:
            return 0
    finally:
        await nc.close()


async def pg_rows(dsn: str, table: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass($1)", quote_ident(table)):
            return []
        rows = await conn.fetch(
            f"SELECT symbol, extract(epoch FROM market_time)::bigint AS t FROM {quote_ident(table)}"
        )
        return [(r["symbol"], int(r["t"])) for r in rows]
    finally:
        await conn.close()


def redis_keys(redis_url: str, prefix: str) -> int:
    r = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in r.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        r.close()


def read_access_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def event_time(ev: dict[str, Any]) -> float:
    """Epoch seconds of an engine JSON log line's ``ts`` (``2026-01-02T03:04:05.678Z``)."""
    return datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def iso_epoch(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# --------------------------------------------------------------------------------------------
# accounting (pure: the smoke test feeds it doctored inputs)
# --------------------------------------------------------------------------------------------


def time_key(p: dict[str, Any]) -> tuple[Any, ...]:
    """A quote's identity when one market time is one quote: (symbol, market time)."""
    return (p.get("symbol"), p.get("market_time"))


def observation_key(p: dict[str, Any]) -> tuple[Any, ...]:
    """A quote's identity when a higher volume at the same market time is a new observation:
    (symbol, market time, volume)."""
    return (p.get("symbol"), p.get("market_time"), p.get("volume"))


def _rank(k: tuple[Any, ...]) -> tuple[int, ...]:
    """The per-symbol order of an identity: its fields after the symbol, as integers."""
    return tuple(int(v or 0) for v in k[1:])


def account(
    cycles: Sequence[dict[str, Any]],
    stream: Sequence[StreamMsg],
    rows: Sequence[tuple[str, int]] | None,
    dlq_count: int | None = None,
    *,
    key: Callable[[dict[str, Any]], tuple[Any, ...]] = time_key,
    check_msg_ids: bool = True,
) -> dict[str, Any]:
    """Lost and duplicated messages: the engine's per-cycle counts vs the stream vs PostgreSQL.

    ``cycles`` are ``cycle_completed`` events (every completed cycle of the run); ``stream`` the
    stream's messages (payload, headers); ``rows`` PostgreSQL's (symbol, market time) rows.
    ``key`` is a quote's identity (two messages with the same one are a duplicate; per symbol
    it must only grow); ``check_msg_ids`` also requires ``Nats-Msg-Id`` ==
    ``{symbol}:{market_time}`` of the payload.
    """
    ids = Counter(h.get("Nats-Msg-Id", "") for _, h in stream)
    keys = Counter(key(p) for p, _ in stream)
    id_mismatch = (
        sum(
            1
            for p, h in stream
            if h.get("Nats-Msg-Id") != f"{p.get('symbol')}:{p.get('market_time')}:{p.get('volume')}"
        )
        if check_msg_ids
        else 0
    )
    dup_ids = sum(n - 1 for n in ids.values() if n > 1)
    dup_keys = sum(n - 1 for n in keys.values() if n > 1)
    by_cycle: Counter[int] = Counter(int(p.get("cycle") or 0) for p, _ in stream)
    expected: dict[int, int] = {}
    for c in cycles:
        expected[c["cycle"]] = c["valid"] - c["unchanged"]
    short = {c: e - by_cycle.get(c, 0) for c, e in expected.items() if by_cycle.get(c, 0) < e}
    extra = {
        c: by_cycle[c] - expected.get(c, 0)
        for c in by_cycle
        if by_cycle[c] > expected.get(c, 0) and c in expected
    }
    unaccounted_cycles = {c: n for c, n in by_cycle.items() if c not in expected}
    order_violations = 0
    last: dict[str, tuple[int, ...]] = {}
    for p, _ in stream:
        sym, rank = p.get("symbol", ""), _rank(key(p))
        prev = last.get(sym)
        if prev is not None and rank <= prev:
            order_violations += 1
        last[sym] = rank if prev is None else max(rank, prev)
    out: dict[str, Any] = {
        "engine_accepted_new": sum(expected.values()),
        "engine_published": sum(c.get("published", 0) for c in cycles),
        "engine_deduplicated_by_jetstream": sum(c.get("deduplicated", 0) for c in cycles),
        "engine_publish_failed": sum(c.get("publish_failed", 0) for c in cycles),
        "engine_outboxed": sum(c.get("outboxed", 0) for c in cycles),
        "stream_messages": len(stream),
        "stream_distinct_msg_ids": len(ids),
        "stream_distinct_symbol_time": len(keys),
        "msg_id_payload_mismatch": id_mismatch,
        "duplicated": max(dup_ids, dup_keys) + id_mismatch,
        "lost_vs_engine_counts": sum(short.values()),
        "lost_by_cycle": {str(k): v for k, v in sorted(short.items())},
        "extra_vs_engine_counts": sum(extra.values()),
        "stream_msgs_of_cycles_not_completed": sum(unaccounted_cycles.values()),
        "per_symbol_time_order_violations": order_violations,
    }
    lost = out["lost_vs_engine_counts"]
    if rows is not None:
        row_keys = Counter(rows)
        stream_keys = {time_key(p) for p, _ in stream}
        pg_keys = set(row_keys)
        out.update(
            {
                "pg_rows": len(rows),
                "pg_distinct_symbol_time": len(row_keys),
                "pg_duplicate_rows": len(rows) - len(row_keys),
                "pg_not_in_stream": len(pg_keys - stream_keys),
                "stream_not_in_pg": len(stream_keys - pg_keys),
            }
        )
        out["duplicated"] += out["pg_duplicate_rows"]
        lost = max(lost, out["pg_not_in_stream"]) + out["stream_not_in_pg"]
    if dlq_count is not None:
        rejected = sum(sum(c.get("rejected", {}).values()) for c in cycles)
        out["dlq_messages"] = dlq_count
        out["engine_rejected"] = rejected
        # the DLQ's Nats-Msg-Id is {symbol}:{reason}:{market time}: the same bad quote seen
        # again in a later cycle is deduplicated, so the DLQ holds distinct rejections
        out["dlq_covers_rejections"] = 0 < dlq_count <= rejected or dlq_count == rejected == 0
    out["lost"] = lost
    return out


def served_symbols(access: Iterable[dict[str, Any]]) -> int:
    """Symbols the emulator answered in intact 200 v7 responses (no fault injected)."""
    return sum(
        int(e.get("n_symbols", 0))
        for e in access
        if e.get("endpoint") == "quote" and e.get("status") == 200 and not e.get("fault")
    )


def cycle_rates(c: dict[str, Any]) -> dict[str, Any]:
    req = max(1, int(c["requested"]))
    rejected = sum(c.get("rejected", {}).values())
    data = rejected + c["missing"]
    return {
        "cycle": c["cycle"],
        "requested": c["requested"],
        "valid": c["valid"],
        "new": c["valid"] - c["unchanged"],
        "no_valid": c["requested"] - c["valid"],
        "fetch_errors": c["failed"],
        "data": data,
        "unaccounted": c["requested"] - c["valid"] - c["failed"] - data,
        "no_valid_rate": (c["requested"] - c["valid"]) / req,
        "fetch_error_rate": c["failed"] / req,
        "data_rate": data / req,
        "rejected": c.get("rejected", {}),
        "errors": c.get("errors", {}),
        "requests": c["requests"],
        "attempts": c["attempts"],
        "seconds": round(c["seconds"], 2),
        "rate_rps": c.get("rate_rps"),
        "rate_headroom": c.get("rate_headroom"),
        "breaker": c.get("breaker"),
    }


def summarise_rates(rows: Sequence[dict[str, Any]], key: str) -> dict[str, float]:
    vals = [r[key] for r in rows]
    if not vals:
        return {"max": 0.0, "mean": 0.0}
    return {"max": max(vals), "mean": sum(vals) / len(vals)}


def crashes(eng: EngineProcess, exit_code: int | None, children: int) -> dict[str, Any]:
    started = Counter(e.get("child") for e in eng.named("child_started"))
    text = [e["text"] for e in eng.events if e.get("event") == "_text"]
    return {
        "exit_code": exit_code,
        "child_died": [
            {"child": e.get("child"), "exit_code": e.get("exit_code")}
            for e in eng.named("child_died")
        ],
        "child_restarts": sum(started.values()) - children,
        "non_json_stderr_lines": len(text),
        "non_json_stderr_head": text[:5],
        "crashes": len(eng.named("child_died"))
        + max(0, sum(started.values()) - children)
        + (0 if exit_code == 0 else 1),
    }


def stop_engine(eng: EngineProcess, timeout_s: float = 90) -> int | None:
    assert eng.proc is not None
    if eng.proc.poll() is None:
        eng.proc.send_signal(signal.SIGTERM)
    try:
        return eng.wait(timeout_s)
    except Exception:  # a hung shutdown is itself a finding
        return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now().isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
    }


def universe(n: int) -> list[str]:
    base = [row["symbol"] for row in orjson.loads((ROOT / "symbols.json").read_bytes())]
    if n > len(base):
        raise SystemExit(f"--symbols {n}: symbols.json holds only {len(base)}")
    return base[:n]
