"""``yahoo-emulator --fault-mix``: a named set of fault knobs under the explicit flags."""

from __future__ import annotations

import pytest

from yahoo_emulator.cli import build_parser, config_from_args
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.presets import FAULT_MIXES, fault_mix


def test_default_mix_sets_the_fault_bench_faults() -> None:
    cfg = config_from_args(build_parser().parse_args(["--fault-mix", "default"]))
    assert (cfg.fault_429, cfg.fault_5xx, cfg.fault_reset, cfg.fault_truncate) == (
        0.05, 0.05, 0.02, 0.01,
    )  # fmt: skip
    # the knobs it does not name keep their defaults
    assert cfg.fault_html == 0.0 and cfg.fault_stall == 0.0 and cfg.fault_invalid_quote == 0.0


def test_explicit_flags_win_over_the_mix() -> None:
    ns = build_parser().parse_args(["--fault-mix", "default", "--fault-5xx", "0.2"])
    cfg = config_from_args(ns)
    assert cfg.fault_5xx == 0.2 and cfg.fault_429 == 0.05


def test_no_mix_and_none_keep_every_default() -> None:
    assert config_from_args(build_parser().parse_args([])) == EmulatorConfig()
    assert config_from_args(build_parser().parse_args(["--fault-mix", "none"])) == EmulatorConfig()


def test_every_mix_is_a_valid_config_and_unknown_names_are_refused() -> None:
    for name in FAULT_MIXES:
        EmulatorConfig(**fault_mix(name))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known: none, default"):
        fault_mix("chaos")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fault-mix", "chaos"])
