"""PostgreSQL storage of raw quotes (:class:`QuoteStore`) and its parts.

``quote_store`` (the owner and its public API), ``table`` (pool and migration), ``copy_writer``
(one batch by COPY), ``backlog`` and ``spill`` (buffering in memory and on disk), ``sink`` (what
the background batch writer drains, outage bookkeeping), ``maintenance`` (partitions),
``rows`` (quotes as table rows), ``stats`` (counters).
"""

from engine.sinks.store.quote_store import Durability, QuoteStore
from engine.sinks.store.rows import COLUMNS, Row, RowEncoder, is_data_error, quote_row
from engine.sinks.store.spill import (
    read_spill_file,
    remove_spill_file,
    spill_paths,
    spill_rows,
    write_spill_file,
)
from engine.stats import StoreStats

__all__ = [
    "COLUMNS",
    "Durability",
    "QuoteStore",
    "Row",
    "RowEncoder",
    "StoreStats",
    "is_data_error",
    "quote_row",
    "read_spill_file",
    "remove_spill_file",
    "spill_paths",
    "spill_rows",
    "write_spill_file",
]
