"""Frames Yahoo's streamer really sent (base64 ``PricingData``), kept verbatim as golden data.

Provenance (the fact sheets ``yahoo-streamer.md`` 1.2 and ``yahoo-api.md`` 4 cite them):

* ``BTC``: the frame of yfinance's ``tests/test_live.py`` (crypto, 2025-01-10 11:39 UTC).
* ``MSFT_*``: the four MSFT frames of yahoofinancelive/yliveticker ``yliveticker/__init__.py``
  (2020-05-15, regular session); ``MSFT_LOW`` is also in its ``tests/yliveticker_test.py``.
* ``AAPL_1255``/``AAPL_1255B``: two AAPL frames of 2020-05-18 12:55 ET in a third-party
  decoder test (the AAPL frames the fact sheet decodes as sint64 and as int64).
* ``AAPL_PRE``: AAPL at 04:10 ET, found in a third-party decoder test: ``market_hours`` is
  sent explicitly as 0 (PRE).
* ``AAPL_OVERNIGHT``: AAPL at 02:07 ET, ``market_hours`` = 4, a value no proto declares.
"""

from __future__ import annotations

from typing import Final

BTC: Final = (
    "CgdCVEMtVVNEFYoMuUcYwLCVgIplIgNVU0QqA0NDQzApOAFFPWrEP0iAgOrxvANVx/25R12csrRHZYD8skR9/"
    "7i0R7ABgIDq8bwD2AEE4AGAgOrxvAPoAYCA6vG8A/IBA0JUQ4ECAAAAwPrjckGJAgAA2P5ZT3tC"
)
MSFT_A: Final = "CgRNU0ZUFT1KMUMY8MzyjcNcKgNOTVMwCDgBRVe55b9InLTBCmVAXE/A2AEE"
MSFT_LOW: Final = "CgRNU0ZUFYVrMUMY0KLMjcNcKgNOTVMwCDgBRZ+B3L9IuPn8CVU0IjRDXYVrMUNlQApHwNgBBA=="
MSFT_C: Final = "CgRNU0ZUFR9FMUMYgJ7yjcNcKgNOTVMwCDgBRSkk579I2IjBCmXAo1DA2AEE"
MSFT_B: Final = "CgRNU0ZUFT1KMUMY8MzyjcNcKgNOTVMwCDgBRVe55b9IhrLBCmVAXE/A2AEE"
AAPL_1255: Final = "CgRBQVBMFexhnUMYkI6yi8VcKgNOTVMwCDgBRW68EkBItJzfEGXAwuFA2AEE"
AAPL_1255B: Final = "CgRBQVBMFR9lnUMYoNyyi8VcKgNOTVMwCDgBRYJBE0BI5J7fEGWAj+JA2AEE"
AAPL_PRE: Final = "CgRBQVBMFUjhmEMY4Jbi68lnKgNOTVMwCDgARTxEgT5lACBFP9gBBA=="
AAPL_OVERNIGHT: Final = "CgRBQVBMFYUrikMYwJ/jw+FmKgNOTVMwCDgERe0PYL9lACkcwNgBBA=="
