"""``yahoo-emulator``: run the emulator as a process.

Every knob of :class:`~yahoo_emulator.config.EmulatorConfig` is a flag (``seed`` ->
``--seed``, ``fault_5xx`` -> ``--fault-5xx``; booleans also have ``--no-...``; list knobs take
comma lists), validated by the same Struct as runtime patches. Once bound it prints exactly one
line to stdout, ``yahoo-emulator listening on http://HOST:PORT``, and flushes it, so a parent
process can read the URL (``--port 0`` picks a free port). SIGTERM/SIGINT stop it cleanly.

Example::

    yahoo-emulator --port 8765 --market-state REGULAR --max-symbols 100 \\
        --rate-limit-rps 20 --rate-limit-burst 40 --fault-5xx 0.01 --access-log var/emu.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from yahoo_emulator.config import HELP, ConfigPatchError, EmulatorConfig, config_from_mapping
from yahoo_emulator.presets import FAULT_MIXES, fault_mix
from yahoo_emulator.server import new_event_loop, serve_emulator

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="yahoo-emulator",
        description="Local emulator of Yahoo Finance's cookie/crumb, v7 quote and v8 chart APIs.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8765, help="bind port; 0 = ephemeral")
    ap.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    ap.add_argument(
        "--fault-mix", choices=tuple(FAULT_MIXES), default=None,
        help="start from a named fault mix (yahoo_emulator/presets.py); knobs given as flags "
        "win over it (default: no faults)",
    )  # fmt: skip
    knobs = ap.add_argument_group("emulator knobs (also patchable at POST /_emulator/config)")
    for f in msgspec.structs.fields(EmulatorConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f"{HELP.get(f.name, '')} (default: {_show(default)})"
        if isinstance(default, bool):
            knobs.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
        else:
            knobs.add_argument(
                flag, dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(),
                help=help_text,
            )  # fmt: skip
    return ap


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return repr(value)


def config_from_args(ns: argparse.Namespace) -> EmulatorConfig:
    """The knobs given on the command line over the defaults (raises ConfigPatchError)."""
    mix = getattr(ns, "fault_mix", None)  # a preset first: the knobs given as flags win
    values: dict[str, Any] = fault_mix(mix) if mix else {}
    for f in msgspec.structs.fields(EmulatorConfig):
        if not hasattr(ns, f.name):
            continue
        value = getattr(ns, f.name)
        if isinstance(f.default, tuple) and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif f.name == "rate_limit_body" and isinstance(value, str):
            value = value.encode().decode("unicode_escape")  # allow "\r\n" on the command line
        values[f.name] = value
    return config_from_mapping(values, strict=False)


async def _run(cfg: EmulatorConfig, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_emulator(cfg, host=host, port=port) as emu:
        sys.stdout.write(f"yahoo-emulator listening on {emu.url}\n")
        sys.stdout.flush()
        logger.info(
            "emulator started",
            extra={"url": emu.url, "instruments": emu.emulator.market.n, "seed": cfg.seed},
        )
        await stop.wait()
        logger.info("emulator stopping", extra={"stats": emu.stats()["requests"]})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        cfg = config_from_args(ns)
    except ConfigPatchError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=getattr(logging, ns.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_run(cfg, ns.host, ns.port))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
