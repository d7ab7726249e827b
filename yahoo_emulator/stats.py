"""Counters behind ``GET /_emulator/stats`` and the JSON-lines access log.

Stats count what the emulator did for Yahoo endpoints (control requests are not counted):
requests by endpoint and status, 429s, faults injected by kind, symbols requested / served /
unknown / delisted, cookies and crumbs issued. ``started_at`` and ``cpu_s`` (process CPU time)
let a bench compute the emulator's CPU cost per request when it runs in its own process.

The access log (``--access-log FILE``) gets one JSON object per Yahoo request, written and
flushed when the answer is ready::

    {"ts": 1764171234.123456, "method": "GET", "path": "/v7/finance/quote", "status": 200,
     "endpoint": "quote", "n_symbols": 50, "client": "127.0.0.1", "latency_ms": 0.0,
     "duration_ms": 0.41, "fault": null}

``ts`` is the wall-clock arrival time (epoch seconds, float), ``latency_ms`` the injected
latency, ``duration_ms`` the time to the answer (injected latency included), ``status`` 0 when
the connection was reset on purpose. With ``access_log_symbols`` a v7 quote line also carries
``"symbols"``: the request's ``symbols`` parameter as sent (comma list).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import IO, Any

import orjson


class Stats:
    def __init__(self) -> None:
        self.started_at = time.time()
        self.reset()

    def reset(self) -> None:
        self.requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults: Counter[str] = Counter()
        self.rate_limited = 0
        self.symbols_requested = 0
        self.symbols_served = 0
        self.symbols_unknown = 0
        self.symbols_delisted = 0

    def record(self, endpoint: str, status: int, fault: str | None) -> None:
        self.requests[endpoint][str(status)] += 1
        if status == 429:
            self.rate_limited += 1
        if fault is not None:
            self.faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "uptime_s": time.time() - self.started_at,
            "cpu_s": time.process_time(),
            "requests_total": sum(sum(c.values()) for c in self.requests.values()),
            "requests": {ep: dict(c) for ep, c in sorted(self.requests.items())},
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "symbols": {
                "requested": self.symbols_requested,
                "served": self.symbols_served,
                "unknown": self.symbols_unknown,
                "delisted": self.symbols_delisted,
            },
        }


class AccessLog:
    """Append-only JSON-lines file; one flushed line per request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: IO[bytes] | None = open(path, "ab")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(orjson.dumps(record) + b"\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class StreamStats:
    """Counters of the websocket streamer (``streamer`` in ``GET /_emulator/stats``).

    ``frames_sent`` counts pricing frames written to sockets (snapshots included; garbage and
    other-type frames are counted in ``faults``), ``frames_by_symbol`` the same per symbol,
    ``closes`` connections ended by reason (``client``, ``malformed``, ``idle``, ``fault_close``,
    ``fault_abort``, ``slow_reader``, ``shutdown``), ``refused`` upgrades by HTTP status.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.connections_opened = 0
        self.refused: Counter[str] = Counter()
        self.subscribe_frames = 0
        self.unsubscribe_frames = 0
        self.symbols_dropped = 0  # over the per-connection cap
        self.symbols_unknown = 0  # slots taken by symbols the emulator does not know
        self.frames_sent = 0
        self.snapshots_sent = 0
        self.frames_by_symbol: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections_opened": self.connections_opened,
            "refused": dict(self.refused),
            "subscribe_frames": self.subscribe_frames,
            "unsubscribe_frames": self.unsubscribe_frames,
            "symbols_dropped": self.symbols_dropped,
            "symbols_unknown": self.symbols_unknown,
            "frames_sent": self.frames_sent,
            "snapshots_sent": self.snapshots_sent,
            "frames_by_symbol": dict(self.frames_by_symbol),
            "closes": dict(self.closes),
            "faults": dict(self.faults),
        }
