"""Poison records: quarantined records (worker and publisher) and suppressed dead letters."""

from __future__ import annotations

from typing import Literal

from engine.observe.metrics.multiprocess import families as _m


def record_quarantined(stage: Literal["ring", "publish"], records: int = 1) -> None:
    """Worker (``stage="ring"``) or publisher (``"publish"``): records that passed validation
    but could not be encoded into the ring / built into a message, dead-lettered instead."""
    if records > 0:
        _m().records_quarantined.labels(stage=stage).inc(records)


def record_dlq_suppressed(reason: str, letters: int = 1) -> None:
    """Publisher: dead letters dropped by the per-(symbol, reason) de-duplication window."""
    if letters > 0:
        _m().dlq_suppressed.labels(reason=reason).inc(letters)
