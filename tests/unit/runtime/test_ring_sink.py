"""RingSink: validation, counting, dedup against the last-seen table, and the ring write."""

from __future__ import annotations

import os

import msgspec

from engine.quote import Rules, YahooQuote
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime.ring_sink import RingSink
from engine.source.decode import MalformedQuote, QuoteBatch
from engine.stats import FetchCounts

NOW = 1_764_000_000.0


def yq(symbol: str, price: float = 190.5, t: int = int(NOW) - 5, volume: int = 1000) -> YahooQuote:
    return YahooQuote(symbol=symbol, quote_type="EQUITY", market_state="REGULAR",
                      regular_market_price=price, regular_market_time=t,
                      regular_market_volume=volume, currency="USD", exchange="NMS")  # fmt: skip


async def test_accept_counts_dedups_and_writes() -> None:
    ring = Ring.create(64)
    table = LastSeenTable.create(3)
    r, w = os.pipe()
    try:
        sink = RingSink(ring, w, Rules(), skip_unchanged=True, clock=lambda: NOW)
        sink.last_seen = table
        sink.index_of = {"AAPL": 0, "MSFT": 1, "BAD": 2}
        got = QuoteBatch(
            [yq("AAPL"), yq("MSFT"), yq("BAD", price=0.0)],
            [MalformedQuote("ZZZ", "no price")],
            [],
            attempts=1,
            latency_s=0.0,
        )
        counts = FetchCounts()
        await sink.accept(0, 1, got, counts)
        assert (counts.valid, counts.unchanged, counts.regular) == (2, 0, 2)
        assert sum(counts.rejected.values()) == 2
        assert ring.head == 4  # two quotes, two rejections (bound for the dead-letter queue)
        assert table.times[0] == int(NOW) - 5 and table.ok_cycle[1] == 1
        assert os.read(r, 16) == b"\x01"

        again = FetchCounts()
        await sink.accept(0, 2, QuoteBatch([yq("AAPL")], [], [], 1, 0.0), again)
        assert (again.valid, again.unchanged) == (1, 1)
        assert table.ok_cycle[0] == 2
    finally:
        for fd in (r, w):
            os.close(fd)
        table.close()
        ring.close()


async def test_poison_quotes_are_dead_lettered_and_the_batch_is_written() -> None:
    """An integer >= 2**63, an unrequested symbol and a symbol too long for a record never
    cancel the cycle: each becomes a rejection row, the good quotes are written."""
    from engine.quote import RejectReason
    from engine.records import to_messages

    ring = Ring.create(64)
    r, w = os.pipe()
    try:
        sink = RingSink(ring, w, Rules(), skip_unchanged=False, clock=lambda: NOW)
        huge = YahooQuote(symbol="HUGE", quote_type="EQUITY", market_state="CLOSED",
                          regular_market_price=10.0, regular_market_time=int(NOW) - 5,
                          regular_market_volume=2**63)  # fmt: skip
        long = "L" * 30  # requested, but longer than the record's symbol field
        got = QuoteBatch(
            [yq("AAPL"), huge, yq(long), yq("MSFT")],
            [MalformedQuote("T" * 300, "not asked for", RejectReason.UNREQUESTED_SYMBOL)],
            [],
            attempts=1,
            latency_s=0.0,
        )
        counts = FetchCounts()
        await sink.accept(0, 1, got, counts)
        assert counts.valid == 2  # the long symbol passed validation, then was quarantined
        assert counts.rejected == {
            "volume_out_of_range": 1,
            "unrequested_symbol": 1,
            "encoding_failed": 1,
        }
        d = to_messages(ring.read(ring.tail, 64))
        assert sorted(q.symbol for q in d.quotes) == ["AAPL", "MSFT"]
        assert sum(m.dlq for m in d.messages) == 3
    finally:
        for fd in (r, w):
            os.close(fd)
        ring.close()


async def test_same_market_time_with_a_higher_volume_is_not_unchanged() -> None:
    """Unchanged means same market time AND same volume: a volume that grew at the same market
    time is a new observation, written to the ring and remembered."""
    ring = Ring.create(64)
    table = LastSeenTable.create(1)
    r, w = os.pipe()
    try:
        sink = RingSink(ring, w, Rules(), skip_unchanged=True, clock=lambda: NOW)
        sink.last_seen = table
        sink.index_of = {"AAPL": 0}
        await sink.accept(0, 1, QuoteBatch([yq("AAPL")], [], [], 1, 0.0), FetchCounts())
        more = FetchCounts()
        await sink.accept(0, 2, QuoteBatch([yq("AAPL", volume=1500)], [], [], 1, 0.0), more)
        assert (more.valid, more.unchanged) == (1, 0)
        assert ring.head == 2
        assert (table.times[0], table.volumes[0]) == (int(NOW) - 5, 1500)
        same = FetchCounts()
        await sink.accept(0, 3, QuoteBatch([yq("AAPL", volume=1500)], [], [], 1, 0.0), same)
        assert (same.valid, same.unchanged) == (1, 1)
    finally:
        for fd in (r, w):
            os.close(fd)
        table.close()
        ring.close()


async def test_a_big_move_is_published_when_the_next_cycle_confirms_it() -> None:
    """Cycle 1 holds 300 for a $50 stock (price_unconfirmed); the same cycle cannot confirm
    it, cycle 2 reading ~300 again publishes it and forgets it; a one-off glitch is forgotten
    when the next read is back in its band."""
    from engine.quote import RejectReason

    def moved(symbol: str, price: float) -> YahooQuote:
        return msgspec.structs.replace(yq(symbol, price=price), regular_market_previous_close=50.0)

    ring = Ring.create(64)
    r, w = os.pipe()
    try:
        sink = RingSink(ring, w, Rules(), skip_unchanged=False, clock=lambda: NOW)

        async def cycle(n: int, *quotes: YahooQuote) -> FetchCounts:
            counts = FetchCounts()
            await sink.accept(0, n, QuoteBatch(list(quotes), [], [], 1, 0.0), counts)
            return counts

        c1 = await cycle(1, moved("JUMP", 300.0), moved("GLITCH", 400.0), moved("OK", 51.0))
        assert c1.valid == 1 and c1.rejected == {RejectReason.PRICE_UNCONFIRMED.label: 2}
        assert len(sink.held) == 2
        again = await cycle(1, moved("JUMP", 300.0))  # a retry within the same cycle
        assert again.rejected == {RejectReason.PRICE_UNCONFIRMED.label: 1}
        c2 = await cycle(2, moved("JUMP", 305.0), moved("GLITCH", 50.5))
        assert c2.valid == 2 and not c2.rejected
        assert len(sink.held) == 0
    finally:
        for fd in (r, w):
            os.close(fd)
        ring.close()
