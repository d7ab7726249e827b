"""LivenessMonitor: a stage is stalled only while it has work and its marker does not move."""

from __future__ import annotations

from engine.observe import metrics
from engine.observe.http.liveness import LivenessMonitor, Progress


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def progress(
    *, cycles: int = 1, fetching: bool = False, heads: tuple[int, ...] = (0,),
    pending: int = 0, tails: tuple[int, ...] = (0,), unreleased: int = 0,
) -> Progress:  # fmt: skip
    return Progress(cycles, fetching, heads, pending, tails, unreleased)


def test_publisher_with_records_and_no_tail_moving_is_stalled_then_recovers() -> None:
    metrics.reset()
    clock = Clock()
    mon = LivenessMonitor(5.0, 1.0, clock)
    assert mon.observe(progress(heads=(10,), tails=(0,), unreleased=10)).alive
    clock.t += 5.5
    r = mon.observe(progress(cycles=4, heads=(40,), tails=(0,), unreleased=40))
    assert r.stalled == ["publisher"] and r.doc()["stages"]["publisher"]["status"] == "stalled"
    reg = metrics.registry()
    assert reg.get_sample_value("ingestion_stage_stalled", {"stage": "publisher"}) == 1
    clock.t += 1
    assert mon.observe(progress(cycles=5, heads=(40,), tails=(30,), unreleased=10)).alive
    assert (
        metrics.registry().get_sample_value("ingestion_stage_stalled", {"stage": "publisher"}) == 0
    )
    metrics.reset()


def test_idle_stages_are_never_stalled() -> None:
    clock = Clock()
    mon = LivenessMonitor(5.0, 1.0, clock)
    mon.observe(progress(cycles=0))
    clock.t += 100
    assert mon.observe(progress(cycles=0)).alive  # no cycle yet, empty rings, no fetch phase


def test_fetch_phase_without_heads_or_answers_moving_is_stalled() -> None:
    clock = Clock()
    mon = LivenessMonitor(5.0, 1.0, clock)
    mon.observe(progress(fetching=True, pending=2, heads=(5,), tails=(5,)))
    clock.t += 4
    assert mon.observe(progress(fetching=True, pending=2, heads=(6,), tails=(6,))).alive
    clock.t += 5.1
    r = mon.observe(progress(fetching=True, pending=2, heads=(6,), tails=(6,)))
    assert r.stalled == ["fetch"]


def test_scheduler_waits_k_intervals_and_not_while_a_fetch_is_open() -> None:
    clock = Clock()
    mon = LivenessMonitor(2.0, 10.0, clock)  # threshold: max(2, 3 x 10 s)
    mon.observe(progress(cycles=3))
    clock.t += 29
    assert mon.observe(progress(cycles=3)).alive
    clock.t += 2
    assert mon.observe(progress(cycles=3)).stalled == ["scheduler"]
    assert mon.observe(progress(cycles=3, fetching=True, pending=1)).alive
