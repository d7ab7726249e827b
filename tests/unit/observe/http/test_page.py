"""engine.observe.http.page: the HTML tables and their empty state."""

from __future__ import annotations

from engine.observe.http.page import render_status
from engine.observe.http.status import StatusView
from engine.stats import CycleStats, FetchCounts


def _view(cycles: list[CycleStats]) -> StatusView:
    return StatusView(
        now=100.0,
        started_at=0.0,
        version="1",
        cycles=cycles,
        breaker="closed",
        rate=None,
        quality=None,
    )


def test_empty_tables_span_every_column() -> None:
    page = render_status(_view([]))
    assert '<td class="l" colspan="10">no cycle completed yet</td>' in page
    assert '<td class="l" colspan="6">no failing symbol</td>' in page
    assert "<th>cycle</th><th>ok</th><th>requested</th>" in page
    assert "<th>missed cycles</th><th>current streak</th><th>last quote</th>" in page


def test_cycles_newest_first_and_degraded_marked() -> None:
    cycles = [
        CycleStats(cycle=1, fetch=FetchCounts(requested=10)),
        CycleStats(cycle=2, fetch=FetchCounts(requested=10, failed=3)),
    ]
    page = render_status(_view(cycles))
    assert page.index("<td>2</td>") < page.index("<td>1</td>")
    assert '<tr class="bad"><td>2</td><td>no</td>' in page
    assert "<tr><td>1</td><td>yes</td>" in page
