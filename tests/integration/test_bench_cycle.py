"""Smoke run of bench/cycle.py (the efficiency bench), so the bench cannot rot.

Tiny sizes (200 symbols, 2 and 8 requests in flight, two steady cycles of 1 s with and without
PostgreSQL and Redis, one round of the per-stage profile): it only checks that every part runs
and that its accounting is exact - every symbol the emulator answered is in the quote stream or
the dead-letter stream exactly once per answer, no message twice, PostgreSQL holds what the
stream holds. The timings are not checked (a shared CI machine says nothing about them). Then
the bench's emulator check is fed doctored streams, and must notice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from testkit import load_script

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


bc = load_script(ROOT / "bench" / "cycle.py", "bench_cycle")


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    argv = ("--symbols 200 --in-flight 2,8 --sizes 400 --floor-repeats 1 --steady-cycles 2 "
            "--steady-warmup 1 --steady-interval-s 1 --stage-rounds 1 --latency-ms 5")  # fmt: skip
    out: dict[str, Any] = bc.run(bc.build_parser().parse_args(argv.split()))
    return out


@pytest.mark.timeout(120)
def test_once_runs_beside_the_floor_and_account_exactly(results: dict[str, Any]) -> None:
    once = results["once"]
    assert [(r["symbols"], r["in_flight"]) for r in once] == [(200, 2), (200, 8), (400, 8)]
    for r in once:
        assert r["exit_code"] == 0, r["summary"]
        assert r["floor"]["quotes"] == r["symbols"]  # the floor fetched them all
        assert r["floor_s"] > 0 and r["latency_s"] > 0 and r["latency_over_floor"] > 0
        acc = r["accounting"]
        assert acc["exact"], acc
        assert acc["lost"] == 0 and acc["duplicated"] == 0
        assert acc["emulator_answers"] == r["symbols"]
        assert acc["stream_messages"] + acc["dlq_messages"] == r["symbols"]
        phases = r["startup"]
        assert {"imports_s", "config_s", "fork_s", "children_ready_s", "worker_crumb_s"} <= set(
            phases
        )
        assert phases["total_s"] >= phases["imports_s"] > 0


@pytest.mark.timeout(120)
def test_steady_state_counts_cpu_per_published_quote_and_accounts_exactly(
    results: dict[str, Any],
) -> None:
    for key in ("steady", "steady_sinks"):
        st = results[key]
        assert st["cycles"] == 2 and len(st["published_per_cycle"]) == 2
        # full change: every price moves every second, so nothing is unchanged
        assert st["unchanged_per_cycle"] == [0, 0]
        assert all(p >= 190 for p in st["published_per_cycle"])
        assert st["cpu_s_per_cycle"] > 0 and st["cpu_s_per_1000_published"] > 0
        acc = st["accounting"]
        assert acc["exact"], acc
        assert acc["lost"] == 0 and acc["duplicated"] == 0
    pg = results["steady_sinks"]["accounting"]["pg"]
    assert pg["pg_rows"] == results["steady_sinks"]["accounting"]["stream_messages"]
    assert pg["stream_not_in_pg"] == 0 and pg["pg_duplicate_rows"] == 0


@pytest.mark.timeout(120)
def test_stage_profile_covers_every_stage(results: dict[str, Any]) -> None:
    st = results["stages"]
    assert st["quotes"] >= 190
    assert set(st["us_cpu_per_quote"]) == set(bc_stages().STAGES)
    assert all(v >= 0 for v in st["us_cpu_per_quote"].values())
    assert "| HTTP read |" in bc_stages().table(st)


def bc_stages() -> ModuleType:
    from bench import stages

    return stages


def _msg(sym: str, t: int, v: int = 10) -> tuple[dict[str, Any], dict[str, str]]:
    return {"symbol": sym, "market_time": t, "volume": v}, {"Nats-Msg-Id": f"{sym}:{t}:{v}"}


def test_the_emulator_check_notices_lost_extra_and_published_rejections() -> None:
    served = Counter({"A": 2, "B": 2, "C": 2})
    good = [_msg("A", 1), _msg("A", 2), _msg("B", 1), _msg("B", 2)]
    dlq = [_msg("C", 1)]
    assert bc.against_emulator(good, dlq, served, unchanged=0)["exact"] is True
    lost = bc.against_emulator(good[:-1], dlq, served, unchanged=0)
    assert lost["lost_vs_emulator"] == 1 and lost["exact"] is False
    extra = bc.against_emulator([*good, _msg("A", 3)], dlq, served, unchanged=0)
    assert extra["extra_vs_emulator"] == 1 and extra["exact"] is False
    once = bc.against_emulator([*good, _msg("C", 2)], dlq, served, unchanged=0)
    assert once["exact"] is True  # rejected in one cycle, published in the other: fine
    both = bc.against_emulator([*good, _msg("C", 1), _msg("C", 2)], dlq, served, unchanged=0)
    assert both["rejected_yet_every_answer_published"] == 1 and both["exact"] is False
    stray = bc.against_emulator([*good, _msg("Z", 1)], dlq, served, unchanged=0)
    assert stray["not_requested"] == 1 and stray["exact"] is False
    # unchanged quotes are rightly not re-published: no per-symbol verdict then
    assert bc.against_emulator(good[:-1], dlq, served, unchanged=1)["exact"] is None
