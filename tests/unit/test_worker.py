"""YahooPollSource's decisions, with a scripted client and a recording sink (no network).

Fairness (failed first, then least recently fetched), a batch that exhausted its attempts on 429
gets one more try at the end of the cycle (unless a storm), a batch failing for another reason is
split to isolate the symbol that poisons it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from engine.errors import RateLimitedError, UpstreamError, UpstreamServerError
from engine.source.decode import QuoteBatch
from engine.source.poll import Poll, YahooPollSource
from engine.stats import FetchCounts


class Client:
    """Answers each batch with ``script(batch, call_no)``: an exception to raise, or None."""

    def __init__(self, script: Callable[[Sequence[str], int], UpstreamError | None]) -> None:
        self.script = script
        self.calls: list[tuple[str, ...]] = []

    async def fetch_quotes(self, symbols: Sequence[str]) -> QuoteBatch:
        self.calls.append(tuple(symbols))
        err = self.script(symbols, len(self.calls))
        if err is not None:
            raise err
        return QuoteBatch([], [], list(symbols), attempts=1, latency_s=0.0)


class Sink:
    def __init__(self) -> None:
        self.accepted: list[str] = []

    async def accept(self, source: int, cycle: int, got: QuoteBatch, counts: FetchCounts) -> None:
        pass


def _source(client: Client, batch_size: int = 2) -> YahooPollSource:
    src = YahooPollSource(client, batch_size=batch_size, in_flight=1)  # type: ignore[arg-type]
    return src


SYMS = [f"S{i:02d}" for i in range(20)]


async def test_order_is_failed_first_then_least_recently_fetched() -> None:
    src = _source(Client(lambda b, n: None))
    src.failed = {"S05"}
    src.last_fetched = {"S00": 3.0, "S01": 1.0, "S02": 2.0}
    assert src.order(["S00", "S01", "S02", "S05", "S09"])[:2] == ["S05", "S09"]
    assert src.order(["S00", "S01", "S02"]) == ["S01", "S02", "S00"]


async def test_rate_limited_batch_gets_a_second_try_at_the_end_of_the_cycle() -> None:
    throttled = {"S04", "S05"}
    tried: set[str] = set()

    def script(batch: Sequence[str], n: int) -> UpstreamError | None:
        if set(batch) == throttled and "first" not in tried:
            tried.add("first")
            return RateLimitedError()
        return None

    client = Client(script)
    stats = FetchCounts()
    await _source(client).poll(SYMS, Poll(Sink(), 1, stats))
    assert stats.failed == 0
    assert stats.missing == len(SYMS)  # every symbol answered (our fake knows none)
    assert client.calls[-1] == ("S04", "S05")  # the deferred batch went last
    assert len(client.calls) == 11


async def test_a_429_storm_is_left_for_the_next_cycle() -> None:
    client = Client(lambda b, n: RateLimitedError())
    stats = FetchCounts()
    src = _source(client)
    await src.poll(SYMS, Poll(Sink(), 1, stats))
    assert len(client.calls) == 10  # no second round into a storm
    assert stats.failed == len(SYMS)
    assert src.failed == set(SYMS)  # and they go first next cycle
    assert src.order([*SYMS[:3], "X"])[-1] == "X"


@pytest.mark.parametrize("poison", ["S00", "S07", "S19"])
async def test_a_failing_batch_is_split_to_isolate_the_poison(poison: str) -> None:
    def script(batch: Sequence[str], n: int) -> UpstreamError | None:
        if poison in batch:
            return UpstreamServerError("boom", status=500)
        return None

    client = Client(script)
    stats = FetchCounts()
    src = _source(client, batch_size=8)
    await src.poll(SYMS, Poll(Sink(), 1, stats))
    assert stats.failed == 1
    assert src.failed == {poison}
    assert stats.errors == {"UpstreamServerError": 1}


async def test_a_fetch_phase_cut_short_counts_the_unfetched_as_failed_and_puts_them_first() -> None:
    """A stalling Yahoo: the bound ends the phase; what it did not reach fails, goes first."""
    import asyncio
    import time

    from engine.worker import FETCH_TIMEOUT, cut_short

    stalled = {"S06", "S07"}

    class Stalling(Client):
        async def fetch_quotes(self, symbols: Sequence[str]) -> QuoteBatch:
            if set(symbols) & stalled:
                await asyncio.sleep(3600)
            return await super().fetch_quotes(symbols)

    client = Stalling(lambda b, n: UpstreamServerError("x", status=503) if "S00" in b else None)
    src = YahooPollSource(client, batch_size=2, in_flight=8)  # type: ignore[arg-type]
    counts = FetchCounts()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(src.poll(SYMS[:10], Poll(Sink(), 1, counts)), timeout=0.2)
    assert counts.failed == 1  # S00 failed for good (its batch split); S06/S07 hang
    assert cut_short(src, SYMS[:10], started, counts) == 2
    assert counts.requested == 10
    assert counts.failed == 3 and counts.errors[FETCH_TIMEOUT] == 1
    assert src.order(SYMS[:10])[:3] == ["S00", "S06", "S07"]
