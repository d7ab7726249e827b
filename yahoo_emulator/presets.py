"""Named fault mixes: a set of knob values to start from (``yahoo-emulator --fault-mix NAME``).

A preset only sets the knobs it names; knobs given on the command line win over it, and with no
``--fault-mix`` every knob keeps its default (a well-behaved Yahoo).

* ``none`` - no faults (the defaults);
* ``default`` - the everyday misbehaviour of Yahoo's v7 endpoint that the engine must ride out
  without losing a symbol: 5 % 429s, 5 % 5xx answers, 2 % connection resets and 1 % JSON
  bodies cut short. The fault bench (``bench/faults.py``) and the soak (``bench/soak.py``) run
  against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

FAULT_MIXES: Final[Mapping[str, Mapping[str, float]]] = {
    "none": {},
    "default": {
        "fault_429": 0.05,
        "fault_5xx": 0.05,
        "fault_reset": 0.02,
        "fault_truncate": 0.01,
    },
}


def fault_mix(name: str) -> dict[str, float]:
    """The knob values of the named mix (KeyError names the known mixes)."""
    try:
        return dict(FAULT_MIXES[name])
    except KeyError:
        raise KeyError(f"unknown fault mix {name!r}; known: {', '.join(FAULT_MIXES)}") from None
