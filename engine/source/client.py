"""The Yahoo quote client: batched ``/v7/finance/quote`` requests on a :class:`YahooSession`.

Request shape: ``GET /v7/finance/quote?symbols=A,B&fields=...&formatted=false&lang=en-US&region=US
&crumb=...``. ``fields`` lists every field the validator reads, because ``currency``,
``regularMarketVolume`` and ``regularMarketChangePercent`` are not in Yahoo's always-returned
base set. Decoding is :func:`engine.source.decode.decode_quotes`; the cookie, crumb, guard and
retries are the session's (:mod:`engine.source.session`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from engine.source.decode import QuoteBatch, decode_quotes
from engine.source.session import YahooSession

QUOTE_PATH: Final = "/v7/finance/quote"

# Every field validate() reads; the base set would omit currency/volume/change percent. The
# last five are the price's own references (engine/plausibility.py).
QUOTE_FIELDS: Final = ",".join(
    (
        "symbol",
        "quoteType",
        "marketState",
        "regularMarketPrice",
        "regularMarketTime",
        "regularMarketVolume",
        "regularMarketChangePercent",
        "currency",
        "exchange",
        "regularMarketPreviousClose",
        "regularMarketDayLow",
        "regularMarketDayHigh",
        "fiftyTwoWeekLow",
        "fiftyTwoWeekHigh",
    )
)


def quote_params(symbols: Sequence[str]) -> dict[str, str]:
    """The query of one v7 batch, without the crumb (the session adds it)."""
    return {
        "symbols": ",".join(symbols),
        "fields": QUOTE_FIELDS,
        "formatted": "false",
        "lang": "en-US",
        "region": "US",
    }


class YahooClient(YahooSession):
    """A Yahoo session that also fetches v7 quote batches (:meth:`fetch_quotes`)."""

    async def fetch_quotes(self, symbols: Sequence[str]) -> QuoteBatch:
        """One v7 batch (with retries). Raises :class:`UpstreamError` when it finally fails."""
        t0 = time.perf_counter()
        params = quote_params(symbols)
        batch, attempts = await self.get_with_retries(
            self.endpoints.query1 + QUOTE_PATH,
            params,
            lambda r: decode_quotes(r.body, symbols, r.url),
        )
        batch.attempts = attempts
        batch.latency_s = time.perf_counter() - t0
        return batch
