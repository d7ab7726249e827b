"""SIGHUP: reload the symbols file between two cycles.

The handler only records the request (:class:`ReloadRequest`); the scheduler applies it before
the next cycle starts, so a cycle never runs on two universes. A file that does not load is
rejected with a logged error and the running universe is kept; an unchanged file changes nothing.
"""

from __future__ import annotations

import logging

from engine.config import Config
from engine.errors import SymbolsError
from engine.source.universe import Universe, load_configured, log_notes

log = logging.getLogger(__name__)


class ReloadRequest:
    """Set by the SIGHUP handler, taken by the scheduler before the next cycle."""

    def __init__(self) -> None:
        self._requested = False

    def request(self) -> None:
        log.info("reload_requested", extra={"signal": "SIGHUP"})
        self._requested = True

    def take(self) -> bool:
        """Whether a reload was requested since the last call."""
        requested, self._requested = self._requested, False
        return requested


def reload_symbols(config: Config, current: Universe) -> Universe | None:
    """The universe the symbols file holds now, or None to keep ``current`` (logged either way)."""
    path = config.symbols.file
    try:
        universe = load_configured(config.symbols)
    except SymbolsError as exc:
        log.error(
            "symbols_reload_rejected",
            extra={
                "file": path,
                "error_kind": type(exc).__name__,
                "error": str(exc)[:2000],
                "kept": len(current.symbols),
            },
        )
        return None
    if universe.digest == current.digest:
        log.info("symbols_unchanged", extra={"file": path})
        return None
    log_notes(universe)
    log.info(
        "symbols_reloaded",
        extra={"file": path, "before": len(current.symbols), "after": len(universe.symbols)},
    )
    return universe
