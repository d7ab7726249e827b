"""engine.stats: the cycle-statistics types add up and print the summary line."""

from __future__ import annotations

import msgspec
import pytest

from engine.stats import CycleStats, FetchCounts, Outcome, PublishCounts


class TestFetchCounts:
    def test_add_sums_every_counter_and_the_reason_maps(self) -> None:
        """The supervisor's sum of two workers is the field-wise sum."""
        a = FetchCounts(requested=10, fetched=9, valid=8, missing=1, requests=1)
        a.reject("not_traded")
        a.error("UpstreamServerError")
        b = FetchCounts(requested=5, fetched=5, valid=4, failed=0, requests=1, attempts=2)
        b.reject("not_traded")
        b.reject("price_out_of_range", 2)
        a.add(b)
        assert (a.requested, a.fetched, a.valid, a.missing, a.requests, a.attempts) == (
            15, 14, 12, 1, 2, 2,
        )  # fmt: skip
        assert a.rejected == {"not_traded": 2, "price_out_of_range": 2}
        assert a.errors == {"UpstreamServerError": 1}

    def test_round_trips_through_msgpack(self) -> None:
        """The counts travel in the control messages unchanged."""
        a = FetchCounts(requested=3, rejected={"x": 1})
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(a), type=FetchCounts) == a


class TestPublishCounts:
    def test_count_by_outcome(self) -> None:
        """Each final outcome has its counter; FAILED is not final."""
        p = PublishCounts()
        p.count(Outcome.PUBLISHED, 3)
        p.count(Outcome.DUPLICATE)
        p.count(Outcome.REJECTED)
        p.count(Outcome.OUTBOXED, 2)
        assert (p.published, p.deduplicated, p.failed, p.outboxed) == (3, 1, 1, 2)
        with pytest.raises(ValueError, match="not final"):
            p.count(Outcome.FAILED)


class TestCycleStats:
    def test_line_and_ok(self) -> None:
        """The summary line of run --once; ok needs nothing failed or outboxed."""
        s = CycleStats(cycle=1, fetch=FetchCounts(requested=5, fetched=5, valid=4, unchanged=1),
                       publish=PublishCounts(published=3), seconds=0.5)  # fmt: skip
        s.fetch.reject("not_traded")
        assert s.ok
        assert s.line() == (
            "cycle=1 requested=5 fetched=5 valid=4 rejected=1 (not_traded=1) published=3 "
            "deduplicated=1 failed=0 outboxed=0 missing=0 seconds=0.500"
        )
        s.publish.outboxed = 1
        assert not s.ok
        assert not CycleStats(cycle=2).ok  # nothing requested
