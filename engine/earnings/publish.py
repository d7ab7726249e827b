"""``data.earnings.reported`` on NATS JetStream: one message per report and per reported EPS.

Messages (:class:`EarningsMessage`, JSON; schema ``schemas/earnings_reported.v1.schema.json``):

* ``kind = "reporting_today"`` - once per (symbol, date) when a sync on that New York date
  finds the symbol reporting that day;
* ``kind = "eps_reported"`` - once per (symbol, date) when the reported EPS first appears.

Exactly once, twice over: each message carries ``Nats-Msg-Id: earnings:{kind}:{SYMBOL}:{date}``
so JetStream drops a re-publish within the stream's duplicate window (``earnings.
duplicate_window_s``, 2 days by default, set on the stream this module creates), and the sync
records each acknowledged announcement in the calendar table, so a re-run after the window does
not publish again either. A message counts as sent only once JetStream acknowledged it
(published or duplicate); unacknowledged ones raise :class:`~engine.errors.PublishError` after a
few attempts and the sync is retried later.

The stream (``earnings.stream``, subject ``earnings.subject``) is created if missing, with file
storage and ``earnings.max_age_s`` retention, through :func:`engine.deps.nats.ensure_stream`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import msgspec

from engine.config import EarningsSettings, NatsSettings
from engine.deps import nats as nats_dep
from engine.earnings.models import EarningsEvent, project
from engine.errors import PublishError
from engine.retry import RetryPolicy, retry

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
Kind = Literal["reporting_today", "eps_reported"]
_PUBLISH_RETRY: Final = RetryPolicy(attempts=4, base_s=0.1, cap_s=2.0, jitter=0.0)


class EarningsMessage(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    kind: Kind
    symbol: str
    event_date: dt.date
    event_time: dt.datetime
    timing: str
    company_name: str | None
    event_name: str | None
    eps_estimate: float | None
    eps_reported: float | None
    surprise_pct: float | None
    source: str
    sync_date: dt.date
    emitted_at: dt.datetime


def message_id(kind: Kind, e: EarningsEvent) -> str:
    return f"earnings:{kind}:{e.symbol}:{e.event_date.isoformat()}"


def build_message(
    kind: Kind, e: EarningsEvent, sync_date: dt.date, now: dt.datetime
) -> EarningsMessage:
    return project(e, EarningsMessage, kind=kind, sync_date=sync_date, emitted_at=now)


class PublishOutcome(msgspec.Struct):
    published: int = 0
    duplicates: int = 0


_encoder: Final = msgspec.json.Encoder()


def _not_acknowledged(exc: BaseException) -> bool:
    return isinstance(exc, nats_dep.ERRORS)


class EarningsPublisher:
    """JetStream publishing of earnings messages; ``async with EarningsPublisher.connect(...)``."""

    def __init__(self, nc: Any, settings: EarningsSettings, timeout_s: float) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings
        self.timeout_s = timeout_s

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, nats_settings: NatsSettings, settings: EarningsSettings, *, attempts: int = 3
    ) -> AsyncIterator[EarningsPublisher]:
        """Connect, make sure the earnings stream exists, and publish until the block ends."""
        async with nats_dep.connection(nats_settings, attempts=attempts) as nc:
            pub = cls(nc, settings, nats_settings.ack_timeout_s)
            stream_settings = msgspec.structs.replace(
                nats_settings,
                duplicate_window_s=settings.duplicate_window_s,
                max_age_s=settings.max_age_s,
            )
            await nats_dep.ensure_stream(pub.js, settings.stream, settings.subject, stream_settings)
            yield pub

    async def publish(self, items: Sequence[tuple[str, EarningsMessage]]) -> PublishOutcome:
        """Publish ``(msg_id, message)`` pairs, each until acknowledged (or PublishError)."""
        out = PublishOutcome()
        for msg_id, msg in items:
            ack = await self._publish_one(msg_id, _encoder.encode(msg))
            if getattr(ack, "duplicate", False):
                out.duplicates += 1
            else:
                out.published += 1
        return out

    async def _publish_one(self, msg_id: str, payload: bytes) -> Any:
        async def publish() -> Any:
            return await self.js.publish(
                self.settings.subject,
                payload,
                timeout=self.timeout_s,
                headers={"Nats-Msg-Id": msg_id},
            )

        def on_retry(attempt: int, exc: BaseException, delay_s: float) -> None:
            log.warning(
                "earnings_publish_retrying",
                extra={"msg_id": msg_id, "attempt": attempt, "error_kind": type(exc).__name__},
            )

        try:
            return await retry(
                publish, _PUBLISH_RETRY, retryable=_not_acknowledged, on_retry=on_retry
            )
        except nats_dep.ERRORS as exc:
            raise PublishError(
                f"earnings message {msg_id} not acknowledged after {_PUBLISH_RETRY.attempts} "
                f"attempts: {type(exc).__name__}"
            ) from exc
