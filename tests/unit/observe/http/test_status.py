"""engine.observe.http.status: error rates and the status document."""

from __future__ import annotations

from engine.observe.http.status import ErrorRates, StatusView, error_rates, status_doc
from engine.stats import CycleStats, FetchCounts


def test_error_rates_are_typed() -> None:
    c = CycleStats(
        cycle=1, fetch=FetchCounts(requested=100, requests=4, failed_requests=1, missing=5)
    )
    rates = error_rates([c])
    assert rates == ErrorRates(request=0.25, symbol_loss=0.05)
    assert error_rates([]) == ErrorRates(None, None)


def test_status_doc_without_quality() -> None:
    c = CycleStats(cycle=3, fetch=FetchCounts(requested=10, requests=1))
    view = StatusView(
        now=12.5,
        started_at=2.0,
        version="9",
        cycles=[c],
        breaker="half_open",
        rate=None,
        quality=None,
    )
    doc = status_doc(view)
    assert doc["uptime_s"] == 10.5
    assert doc["breaker"] == "half_open"
    assert doc["rate_limit"] is None and doc["quality"] is None
    assert [x["cycle"] for x in doc["cycles"]] == [3]
    assert doc["request_error_rate"] == 0.0
