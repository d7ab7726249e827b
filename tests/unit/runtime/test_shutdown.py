"""The shutdown budget: one deadline shared by the workers' phase and the publisher's."""

from __future__ import annotations

import pytest

from engine.runtime.shutdown import MARGIN_S, ShutdownBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_workers_then_publisher_never_exceed_the_total() -> None:
    clock = Clock()
    b = ShutdownBudget(20.0, clock)
    workers = b.workers_phase_s()
    assert workers == pytest.approx(10.0 - 1.0)  # half, less the reap slice
    clock.now += workers + b.reap_s()  # the workers used all of it and were killed
    publisher = b.publisher_phase_s()
    assert publisher == pytest.approx(10.0 - 1.0)
    clock.now += publisher + b.reap_s()
    assert clock.now - 100.0 == pytest.approx(20.0)  # the whole shutdown: the total, not 2x
    assert b.remaining_s() == 0.0


def test_the_publisher_gets_what_the_workers_left() -> None:
    clock = Clock()
    b = ShutdownBudget(10.0, clock)
    clock.now += 0.5  # no cycle in flight: the workers stopped at once
    assert b.publisher_phase_s() == pytest.approx(9.5 - b.reap_s())


def test_a_child_is_told_a_grace_shorter_than_its_phase() -> None:
    assert ShutdownBudget.grace_s(8.0) == pytest.approx(8.0 - MARGIN_S)
    assert ShutdownBudget.grace_s(2.0) == pytest.approx(1.5)
    assert ShutdownBudget.grace_s(-1.0) == 0.0


def test_a_zero_budget_stops_at_once() -> None:
    b = ShutdownBudget(0.0, Clock())
    assert b.workers_phase_s() <= 0.0 and b.publisher_phase_s() <= 0.0
    assert ShutdownBudget.grace_s(b.workers_phase_s()) == 0.0
