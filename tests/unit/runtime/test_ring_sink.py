"""RingSink: validation, counting, dedup against the last-seen table, and the ring write."""

from __future__ import annotations

import os

from engine.quote import Rules, YahooQuote
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime.ring_sink import RingSink
from engine.source.decode import MalformedQuote, QuoteBatch
from engine.stats import FetchCounts

NOW = 1_764_000_000.0


def yq(symbol: str, price: float = 190.5, t: int = int(NOW) - 5) -> YahooQuote:
    return YahooQuote(symbol=symbol, quote_type="EQUITY", market_state="REGULAR",
                      regular_market_price=price, regular_market_time=t,
                      regular_market_volume=1000, currency="USD", exchange="NMS")  # fmt: skip


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
