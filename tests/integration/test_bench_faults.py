"""Smoke run of bench/faults.py (the fault bench), so the bench cannot rot.

A reduced part A (200 symbols, 3 cycles, the full fault mix) and part B (200 symbols, an
emulator rate limit at half the need, ~20 s) through the bench's own code; then the bench's
lost/duplicate checker is fed doctored copies of what part A really stored, and must notice.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from testkit import load_script

pytestmark = [pytest.mark.integration, pytest.mark.fault]

ROOT = Path(__file__).resolve().parents[2]


bf = load_script(ROOT / "bench" / "faults.py", "bench_faults")


@pytest.fixture(scope="module")
def part_a() -> tuple[dict[str, Any], dict[str, Any]]:
    argv = "--part A --symbols 200 --cycles 3 --interval 1 --cycle-timeout 40"
    args = bf.build_parser().parse_args(argv.split())
    raw: dict[str, Any] = {}
    return bf.run_fault_mix(args, raw), raw


@pytest.mark.xdist_group("bench_faults_part_a")  # one part A run for both (make test)
@pytest.mark.timeout(90)
def test_fault_mix_smoke_accounting_is_clean(
    part_a: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    r, raw = part_a
    assert len(r["per_cycle"]) == 3
    assert all(c["requested"] == 200 for c in r["per_cycle"])
    assert r["crashes"]["crashes"] == 0, r["crashes"]
    m = r["messages"]
    assert m["lost"] == 0 and m["duplicated"] == 0, m
    # every cycle brought new quotes: the market moves between cycles
    assert all(c["new"] > 0 for c in r["per_cycle"])
    assert m["stream_messages"] == m["engine_accepted_new"] == m["pg_rows"] > 200
    # the emulator's own log agrees with the engine's counts
    e = r["emulator"]
    assert e["symbols_in_intact_200_answers"] == e["engine_fetched_plus_missing"]
    for c in r["per_cycle"]:
        assert c["unaccounted"] == 0, c
        assert c["no_valid"] == c["fetch_errors"] + c["data"]
    assert raw["stream"] and raw["rows"]


@pytest.mark.xdist_group("bench_faults_part_a")  # one part A run for both (make test)
@pytest.mark.timeout(30)
def test_checker_catches_a_deleted_and_a_duplicated_message(
    part_a: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, raw = part_a
    cycles, stream, rows = raw["cycles"], raw["stream"], raw["rows"]
    assert bf.account(cycles, stream, rows)["lost"] == 0

    deleted = copy.deepcopy(stream)
    gone = deleted.pop(len(deleted) // 2)
    out = bf.account(cycles, deleted, rows)
    assert out["lost"] == 1 and out["lost_vs_engine_counts"] == 1
    assert out["pg_not_in_stream"] == 1
    assert out["lost_by_cycle"] == {str(gone[0]["cycle"]): 1}
    # also without PostgreSQL to compare with: the per-cycle counts catch it
    assert bf.account(cycles, deleted, None)["lost"] == 1

    doubled = [*copy.deepcopy(stream), copy.deepcopy(stream[0])]
    out = bf.account(cycles, doubled, rows)
    assert out["duplicated"] == 1 and out["lost"] == 0

    # the same quote under a second message id is a duplicate too
    twin_payload, twin_headers = copy.deepcopy(stream[1])
    twin_headers["Nats-Msg-Id"] = "X" + twin_headers["Nats-Msg-Id"]
    assert bf.account(cycles, [*stream, (twin_payload, twin_headers)], rows)["duplicated"] >= 1

    # a row missing from PostgreSQL is a loss
    assert bf.account(cycles, stream, rows[1:])["lost"] == 1


def test_refresh_gaps_counts_leading_inner_and_trailing_gaps() -> None:
    refreshes = {"A": [10.0, 20.0, 30.0], "B": [12.0, 40.0], "C": []}
    starts = [0.0, 10.0, 20.0, 30.0, 40.0]
    g = bf.refresh_gaps(refreshes, ["A", "B", "C"], 0.0, 45.0, starts, 5.0)
    assert g["max_gap_s"] == 28.0 and g["worst_symbol"] == "B"
    assert g["max_gap_intervals"] == 5.6
    assert g["max_gap_engine_cycles"] == 3
    assert g["symbols_never_refreshed"] == 1


@pytest.mark.timeout(90)
def test_rate_limit_smoke() -> None:
    argv = "--part B --symbols 200 --rl-interval 1 --rl-seconds 20 --poll-s 1"
    args = bf.build_parser().parse_args(argv.split())
    r = bf.run_rate_limit(args)
    assert r["config"]["emulator_rate_limit_rps"] == 2.0  # half of 4 requests per 1 s
    assert r["crashes"]["crashes"] == 0, r["crashes"]
    assert r["cycles_completed"] >= 2
    assert sum(r["429_per_10s"]) > 0  # the limit below need does bite
    gaps = r["fairness"]["from_access_log"]
    assert gaps["symbols_never_refreshed"] == 0 and gaps["max_gap_intervals"] > 0
    m = r["messages"]
    assert m["lost"] == 0 and m["duplicated"] == 0, m
