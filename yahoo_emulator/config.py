"""The emulator's knobs: one frozen msgspec Struct, patched as a whole at runtime.

Every knob is a CLI flag (``--fault-5xx 0.1``, built from the Struct by :mod:`yahoo_emulator.cli`)
and a key of ``POST /_emulator/config`` (a JSON object of the keys to change). A patch is merged
into the current values and re-validated as a whole (:func:`patch_config`), so a bad patch
changes nothing and its error names the key. The running emulator swaps the new Struct in
atomically; handlers read ``emulator.cfg`` once per request.

Probabilities are per request (``fault_429``, ``fault_5xx``, ``fault_html``, ``fault_truncate``,
``fault_reset``, ``fault_stall``, ``fault_crumb_text``) or per v7 response (``fault_invalid_quote``,
``fault_stale_quote``: one quote of the batch is damaged) or per quote (``fault_poison_quote``: a
share of the quotes carries an extreme value of ``poison_kinds``; ``poison_symbols`` names symbols
whose quote is always poisoned, ``SYMBOL=kind``, kind a poison or an invalid kind). The
streamer's (``stream_*``) are per websocket upgrade (``stream_refuse``), per connection
(``stream_fault_close``/``abort``/``stall``, drawn when it opens), per frame sent
(``stream_fault_garbage``, ``stream_fault_unknown_type``, ``stream_same_time``,
``stream_components``) or per snapshot (``stream_fault_stale_snapshot``).
All draws come from RNGs seeded with ``seed``, so a sequential client sees the same faults on
every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

Prob = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]

ForcedState = Literal["", "PREPRE", "PRE", "REGULAR", "POST", "POSTPOST", "CLOSED"]
InvalidKind = Literal["string_price", "negative_volume", "zero_price", "huge_price", "string_time"]
FaultEndpoint = Literal[
    "cookie", "getcrumb", "quote", "chart", "quoteSummary", "visualization", "screener",
    "timeseries",
]  # fmt: skip

PoisonKind = Literal[
    "ancient_time", "huge_time", "huge_volume", "nan_price", "inf_price", "neg_inf_change",
    "max_price", "long_symbol",
]  # fmt: skip
POISON_KINDS: Final[tuple[PoisonKind, ...]] = (
    "ancient_time",  # regularMarketTime -2**62
    "huge_time",  # regularMarketTime 2**63
    "huge_volume",  # regularMarketVolume 2**63
    "nan_price",  # regularMarketPrice NaN (a raw token: not JSON)
    "inf_price",  # regularMarketPrice Infinity (raw token)
    "neg_inf_change",  # regularMarketChangePercent -Infinity (raw token)
    "max_price",  # regularMarketPrice 1e308
    "long_symbol",  # symbol: the requested one padded to 300 characters
)

INVALID_KINDS: Final[tuple[InvalidKind, ...]] = (
    "string_price",
    "negative_volume",
    "zero_price",
    "huge_price",
    "string_time",
)


class EmulatorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """All knobs of the emulator. Defaults: a well-behaved Yahoo with today's batch limit."""

    seed: int = 1
    # --- market -------------------------------------------------------------------------------
    market_state: ForcedState = ""
    freeze: bool = False
    tick_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 1.0
    time_offset_s: float = 0.0
    min_trade_prob: Prob = 0.05
    full_change: bool = False
    delisted: tuple[str, ...] = ("BRKS", "SI", "SIMP")
    replicas: bool = True
    # --- cookie / crumb -----------------------------------------------------------------------
    require_auth: bool = True
    crumb_ttl_s: NonNegFloat = 0.0
    crumb_style: Literal["mixed", "plain", "special"] = "mixed"
    getcrumb_no_cookie: Literal["empty", "401"] = "empty"
    # --- limits -------------------------------------------------------------------------------
    max_symbols: NonNegInt = 100
    max_url_length: NonNegInt = 8192
    rate_limit_rps: NonNegFloat = 0.0
    rate_limit_burst: Annotated[float, msgspec.Meta(ge=1.0)] = 10.0
    retry_after_s: NonNegInt | None = None
    rate_limit_body: str = "Too Many Requests\r\n"
    # --- latency ------------------------------------------------------------------------------
    latency_ms: NonNegFloat = 0.0
    latency_jitter_ms: NonNegFloat = 0.0
    # --- faults -------------------------------------------------------------------------------
    fault_429: Prob = 0.0
    fault_5xx: Prob = 0.0
    fault_html: Prob = 0.0
    fault_html_status: Annotated[int, msgspec.Meta(ge=200, le=599)] = 200
    fault_truncate: Prob = 0.0
    fault_reset: Prob = 0.0
    fault_stall: Prob = 0.0
    stall_s: NonNegFloat = 30.0
    fault_invalid_quote: Prob = 0.0
    invalid_kinds: tuple[InvalidKind, ...] = INVALID_KINDS
    fault_stale_quote: Prob = 0.0
    stale_age_s: NonNegFloat = 3600.0
    fault_crumb_text: Prob = 0.0
    fault_endpoints: tuple[FaultEndpoint, ...] = ("quote", "chart")
    # --- earnings calendar / quoteSummary (yahoo_emulator/earnings.py) ---------------------------
    earnings_reschedule: Prob = 0.0
    earnings_reschedule_days: Annotated[int, msgspec.Meta(ge=-30, le=30)] = 1
    earnings_null_as_zero: bool = False
    visualization_max_size: NonNegInt = 100
    # --- poison quotes (extreme values; yahoo_emulator/poison.py) ------------------------------
    fault_poison_quote: Prob = 0.0
    poison_kinds: tuple[PoisonKind, ...] = POISON_KINDS
    poison_symbols: tuple[str, ...] = ()
    # --- websocket streamer (yahoo_emulator/streamer.py) ---------------------------------------
    stream_max_symbols: NonNegInt = 100
    stream_pump_s: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] = 0.2
    stream_liquid_volume: NonNegInt = 500_000
    stream_min_gap_s: NonNegFloat = 1.0
    stream_max_gap_s: NonNegFloat = 5.0
    stream_illiquid_gap_s: NonNegFloat = 180.0
    stream_same_time: Prob = 0.05
    stream_components: Prob = 0.05
    stream_idle_close_s: NonNegFloat = 1200.0
    stream_refuse: Prob = 0.0
    stream_refuse_status: Literal[429, 503] = 429
    stream_fault_close: Prob = 0.0
    stream_fault_abort: Prob = 0.0
    stream_fault_stall: Prob = 0.0
    stream_fault_after_s: NonNegFloat = 60.0
    stream_fault_garbage: Prob = 0.0
    stream_fault_unknown_type: Prob = 0.0
    stream_fault_stale_snapshot: Prob = 0.0
    # --- logging ------------------------------------------------------------------------------
    access_log: str = ""
    access_log_symbols: bool = False

    def __post_init__(self) -> None:
        if not self.invalid_kinds:
            raise ValueError("invalid_kinds: must name at least one kind")
        if not self.poison_kinds:
            raise ValueError("poison_kinds: must name at least one kind")
        if self.stream_max_gap_s < self.stream_min_gap_s:
            raise ValueError("stream_max_gap_s: must be >= stream_min_gap_s")
        for entry in self.poison_symbols:
            sym, _, kind = entry.partition("=")
            if not sym or kind not in POISON_KINDS + INVALID_KINDS:
                raise ValueError(
                    f"poison_symbols: {entry!r} is not SYMBOL=kind with kind one of "
                    + ",".join(POISON_KINDS + INVALID_KINDS)
                )


HELP: Final[dict[str, str]] = {
    "seed": "seed of the price walks, history, crumbs and fault draws",
    "market_state": "force marketState (PREPRE/PRE/REGULAR/POST/POSTPOST/CLOSED); empty = follow "
    "America/New_York wall time",
    "freeze": "prices never change (regularMarketTime stays put too)",
    "tick_s": "price-walk tick in seconds (walks advance lazily, one vectorised step per request)",
    "time_offset_s": "added to the wall clock to get the simulated time (e.g. jump into REGULAR)",
    "min_trade_prob": "floor of the per-tick trade probability of illiquid symbols",
    "full_change": "every instrument trades every tick and its price moves by at least one tick "
    "(cent, 1/100 cent below $1): every quote is new each second (the benches' worst case)",
    "delisted": "comma list of symbols answered with the quoteType NONE stub (404 on chart)",
    "replicas": "accept {BASE}.X{n} (n=1..999) as replicas of BASE with their own walk",
    "require_auth": "v7 quote requires the A3 cookie and its crumb",
    "crumb_ttl_s": "crumbs expire this many seconds after issue (0 = never)",
    "crumb_style": "mixed: crumbs sometimes hold '/' or '.'; plain: never; special: always",
    "getcrumb_no_cookie": "getcrumb without a valid cookie: 'empty' 200 body or '401'",
    "max_symbols": "more symbols than this in one v7 request -> 429 (0 = no limit)",
    "max_url_length": "request target longer than this -> 414 (0 = no limit)",
    "rate_limit_rps": "token-bucket refill per client IP, requests/s (0 = off)",
    "rate_limit_burst": "token-bucket size",
    "retry_after_s": "send Retry-After with this value on 429s (default: no header, like Yahoo)",
    "rate_limit_body": "body of 429 answers",
    "latency_ms": "added latency per request, ms",
    "latency_jitter_ms": "uniform extra latency in [0, jitter], ms",
    "fault_429": "probability of a 429 on any Yahoo endpoint (1.0 = a 429 storm)",
    "fault_5xx": "probability of a 5xx answer (500/502/503/504)",
    "fault_html": "probability of the HTML 'Will be right back' outage page",
    "fault_html_status": "HTTP status of the outage page",
    "fault_truncate": "probability a JSON body is cut short (status 200)",
    "fault_reset": "probability the connection is reset without an answer",
    "fault_stall": "probability the request hangs stall_s seconds before its answer (a client "
    "timeout)",
    "stall_s": "how long a stalled request hangs, seconds",
    "fault_invalid_quote": "probability one quote of a v7 batch is invalid (see invalid_kinds)",
    "invalid_kinds": "comma list: string_price,negative_volume,zero_price,huge_price,string_time",
    "fault_stale_quote": "probability one quote of a v7 batch carries an old regularMarketTime",
    "stale_age_s": "age of such a stale quote (v7) or stale snapshot (streamer), seconds",
    "fault_crumb_text": "probability getcrumb answers 'Too Many Requests' as the crumb (200)",
    "fault_endpoints": "endpoints subject to the 5xx/html/truncate/reset faults "
    "(cookie,getcrumb,quote,chart,quoteSummary,visualization,screener,timeseries)",
    "earnings_reschedule": "fraction of earnings events moved by earnings_reschedule_days "
    "(deterministic per seed and event)",
    "earnings_reschedule_days": "days a rescheduled earnings event moves (weekends skipped)",
    "earnings_null_as_zero": "calendar rows carry 0 instead of null for unreported/missing EPS",
    "visualization_max_size": "POST /v1/finance/visualization with a larger size -> 400 "
    "(0 = no limit)",
    "fault_poison_quote": "probability EACH quote of a v7 response carries an extreme value "
    "(see poison_kinds)",
    "poison_kinds": "comma list: " + ",".join(POISON_KINDS),
    "poison_symbols": "comma list of SYMBOL=kind: these symbols' quotes are always poisoned "
    "(kind: a poison kind, or an invalid kind such as huge_price or zero_price)",
    "stream_max_symbols": "streamer: symbols per connection; extras are dropped silently, unknown "
    "symbols use up slots (0 = no cap)",
    "stream_pump_s": "streamer: how often (real seconds) it reads the clock and sends updates",
    "stream_liquid_volume": "streamer: daily volume (shares) from which a symbol is liquid",
    "stream_min_gap_s": "streamer: shortest gap between two frames of a liquid symbol (s)",
    "stream_max_gap_s": "streamer: longest gap between two frames of a liquid symbol (s)",
    "stream_illiquid_gap_s": "streamer: mean gap between two frames of an illiquid symbol (s)",
    "stream_same_time": "streamer: probability an update comes as two frames with the same "
    "time and different day_volume",
    "stream_components": "streamer: probability a frame also carries the undeclared field 34",
    "stream_idle_close_s": "streamer: close a socket whose client sent nothing (pings do not "
    "count) for this long, real seconds (0 = never)",
    "stream_refuse": "streamer: probability a websocket upgrade is refused",
    "stream_refuse_status": "streamer: HTTP status of a refused upgrade (429 or 503)",
    "stream_fault_close": "streamer: probability a connection is closed normally (1000) after "
    "about stream_fault_after_s",
    "stream_fault_abort": "streamer: probability a connection is aborted (no close frame) after "
    "about stream_fault_after_s",
    "stream_fault_stall": "streamer: probability a connection goes silent (open, answering "
    "pings, no frames) after about stream_fault_after_s",
    "stream_fault_after_s": "streamer: when a connection fault strikes: uniform in [0.5, 1.5] x "
    "this, real seconds after the connection opened",
    "stream_fault_garbage": "streamer: probability a frame is preceded by a garbage frame",
    "stream_fault_unknown_type": "streamer: probability a frame is preceded by a frame of "
    "another type than pricing",
    "stream_fault_stale_snapshot": "streamer: probability a snapshot on subscribe is stale "
    "(time stale_age_s older, previous close as price)",
    "access_log": "JSON-lines access log file (empty = none)",
    "access_log_symbols": "also write the requested symbols (comma list) of each v7 quote request "
    "to the access log (benches measuring per-symbol refresh times)",
}


class ConfigPatchError(ValueError):
    """A runtime patch was rejected; the message names the key."""


def patch_config(cfg: EmulatorConfig, changes: Mapping[str, Any]) -> EmulatorConfig:
    """``cfg`` with ``changes`` applied, validated as a whole. Raises :class:`ConfigPatchError`."""
    if not isinstance(changes, Mapping):
        raise ConfigPatchError("config patch must be a JSON object of knob -> value")
    merged: dict[str, Any] = msgspec.to_builtins(cfg)
    merged.update(changes)
    try:
        return msgspec.convert(merged, EmulatorConfig)
    except msgspec.ValidationError as exc:
        raise ConfigPatchError(str(exc)) from None


def config_from_mapping(values: Mapping[str, Any], *, strict: bool = True) -> EmulatorConfig:
    """Build a config from plain data (``strict=False`` also converts strings, for the CLI)."""
    try:
        return msgspec.convert(dict(values), EmulatorConfig, strict=strict)
    except msgspec.ValidationError as exc:
        raise ConfigPatchError(str(exc)) from None


def config_to_dict(cfg: EmulatorConfig) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(cfg)
    return out
