"""A local, scriptable emulator of Yahoo Finance's unofficial API (no internet needed).

It is what the ingestion engine is built and tested against, so it reproduces Yahoo's
observable behaviour (as recorded from the real service): the fc.yahoo.com ``A3`` cookie
and getcrumb flow, ``/v7/finance/quote`` (crumb required, ``fields`` with the fixed base set,
``formatted``, unknown symbols omitted, delisted stubs, units), ``/v8/finance/chart`` (good
enough for ``yfinance.download``), the websocket streamer (protobuf pricing frames, 100 symbols
per connection), plain-text 429s, and the faults clients must survive.
Prices are seeded random walks from the last sale of ~7,200 US listings, advanced lazily with
a simulated New York market clock. ``{BASE}.X{n}`` replicas scale the universe to 100k+
symbols for benches.

Entry points::

    from yahoo_emulator import EmulatorConfig, EmulatorThread, serve_emulator

    async with serve_emulator(EmulatorConfig(market_state="REGULAR"), port=0) as emu:
        ...  # emu.url, emu.stats(), emu.configure(fault_5xx=0.1)

    with EmulatorThread(EmulatorConfig(seed=7)) as emu:
        ...  # emu.url, emu.stats(), emu.configure(...)

or the ``yahoo-emulator`` console script (:mod:`yahoo_emulator.cli`).

Modules: :mod:`.config` knobs, :mod:`.universe` reference data, :mod:`.market` clock and walks,
:mod:`.auth` cookie/crumb, :mod:`.quotes` v7 quote, :mod:`.chart` v8 chart, :mod:`.faults`
rate limiting and fault injection, :mod:`.streamer` the websocket streamer (with
:mod:`.stream_conn` one connection and :mod:`.stream_feed` cadence and frames),
:mod:`.stats` counters and access log, :mod:`.control`
``/_emulator/*``, :mod:`.state` the emulator's state, :mod:`.app` routing and the edge
middleware, :mod:`.server` runners, :mod:`.cli`.
"""

from yahoo_emulator.app import build_app
from yahoo_emulator.config import ConfigPatchError, EmulatorConfig, patch_config
from yahoo_emulator.server import EmulatorThread, RunningEmulator, serve_emulator
from yahoo_emulator.state import Emulator

__all__ = [
    "ConfigPatchError",
    "Emulator",
    "EmulatorConfig",
    "EmulatorThread",
    "RunningEmulator",
    "build_app",
    "patch_config",
    "serve_emulator",
]
