"""The emulator's state: :class:`Emulator` holds everything one emulated Yahoo serves from
(configuration, clock, universe, market, renderers, auth, faults, rate limiter, statistics,
access log and the websocket streamer). The handlers take it as their first argument;
:mod:`.app` wires them to routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from yahoo_emulator.auth import AuthStore
from yahoo_emulator.chart import ChartBuilder
from yahoo_emulator.config import EmulatorConfig, config_to_dict, patch_config
from yahoo_emulator.faults import Faults, RateLimiter
from yahoo_emulator.market import Market
from yahoo_emulator.quotes import QuoteRenderer
from yahoo_emulator.responses import N_SYMBOLS
from yahoo_emulator.stats import AccessLog, Stats
from yahoo_emulator.streamer import Streamer
from yahoo_emulator.universe import Universe, load_universe

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class Emulator:
    """Everything one emulated Yahoo holds. Used from its event loop's thread only."""

    def __init__(
        self,
        cfg: EmulatorConfig | None = None,
        *,
        clock: Clock = time.time,
        universe: Universe | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else EmulatorConfig()
        self.clock = clock
        self.universe = universe if universe is not None else load_universe()
        self.market = Market(self.universe, self.cfg, self.now())
        self.quotes = QuoteRenderer(self.market)
        self.charts = ChartBuilder(self.market)
        self.auth = AuthStore(self.cfg.seed)
        self.faults = Faults(self.cfg.seed)
        self.limiter = RateLimiter()
        self.stats = Stats()
        self.delisted = frozenset(s.upper() for s in self.cfg.delisted)
        self.access_log = AccessLog(self.cfg.access_log) if self.cfg.access_log else None
        self.streamer = Streamer(self, self.cfg.seed)

    def now(self) -> float:
        """Simulated time: the clock plus ``time_offset_s``."""
        return self.clock() + self.cfg.time_offset_s

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Apply a runtime patch (validated as a whole; raises ConfigPatchError)."""
        new = patch_config(self.cfg, changes)
        old = self.cfg
        logger.info("emulator config patched", extra={"changes": dict(changes)})
        self.cfg = new
        self.market.configure(new)
        self.delisted = frozenset(s.upper() for s in new.delisted)
        if new.seed != old.seed:
            self.faults.reseed(new.seed)
        if new.access_log != old.access_log:
            if self.access_log is not None:
                self.access_log.close()
            self.access_log = AccessLog(new.access_log) if new.access_log else None
        return new

    def snapshot(self) -> dict[str, Any]:
        out = self.stats.snapshot()
        out["market_state"] = self.market.state_at(self.now())
        out["instruments"] = self.market.n
        out["cookies_issued"] = self.auth.cookies_issued
        out["crumbs_issued"] = self.auth.crumbs_issued
        out["streamer"] = self.streamer.snapshot()
        out["config"] = config_to_dict(self.cfg)
        return out

    def record(
        self,
        request: web.Request,
        endpoint: str,
        status: int,
        fault: str | None,
        arrived: float,
        t0: float,
        latency_ms: float,
    ) -> None:
        self.stats.record(endpoint, status, fault)
        if self.access_log is not None:
            line: dict[str, Any] = {
                "ts": arrived,
                "method": request.method,
                "path": request.path,
                "status": status,
                "endpoint": endpoint,
                "n_symbols": request.get(N_SYMBOLS, 0),
                "client": request.remote,
                "latency_ms": round(latency_ms, 3),
                "duration_ms": round((time.perf_counter() - t0) * 1000.0, 3),
                "fault": fault,
            }
            if self.cfg.access_log_symbols and endpoint == "quote":
                line["symbols"] = request.query.get("symbols", "")
            self.access_log.write(line)

    def close(self) -> None:
        if self.access_log is not None:
            self.access_log.close()
            self.access_log = None
