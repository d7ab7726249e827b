"""The connections of one earnings process (Yahoo, PostgreSQL, Redis, NATS) and the sync
built on them: ``async with open_services(config, settings) as svc``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec

from engine.config import Config, EarningsSettings
from engine.earnings.cache import EarningsCache
from engine.earnings.calendar import EarningsCalendarFetcher
from engine.earnings.models import Clock, utcnow
from engine.earnings.publish import EarningsPublisher
from engine.earnings.quotesummary import QuoteSummarySource
from engine.earnings.schedule import ExchangeCalendar, TradingCalendar
from engine.earnings.store import EarningsStore
from engine.earnings.sync import EarningsSync, universe_loader
from engine.errors import ConfigError
from engine.source.client import YahooClient
from engine.source.guard import Guard


class Services(msgspec.Struct):
    """The connections of one earnings process and the sync built on them."""

    client: YahooClient
    store: EarningsStore
    cache: EarningsCache | None
    publisher: EarningsPublisher
    sync: EarningsSync


@contextlib.asynccontextmanager
async def open_services(
    config: Config,
    settings: EarningsSettings,
    *,
    guard: Guard | None = None,
    calendar: TradingCalendar | None = None,
    clock: Clock = utcnow,
) -> AsyncIterator[Services]:
    """Yahoo client, PostgreSQL, Redis (if enabled) and NATS, and the sync using them."""
    if not config.postgres.enabled:
        raise ConfigError(
            "the earnings sync stores its calendar in PostgreSQL: enable [postgres] or set "
            "earnings.enabled = false",
            key="earnings.enabled",
        )
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            YahooClient.connect(
                config.yahoo, max_clients=settings.fundamentals_concurrency + 1, guard=guard
            )
        )
        store = await stack.enter_async_context(
            EarningsStore.connect(config.postgres, settings.table)
        )
        cache = None
        if config.redis.enabled:
            cache = await stack.enter_async_context(EarningsCache.connect(config.redis, settings))
        publisher = await stack.enter_async_context(
            EarningsPublisher.connect(config.nats, settings)
        )
        sync = EarningsSync(
            settings,
            fetcher=EarningsCalendarFetcher(
                client, page_size=settings.page_size, max_pages=settings.max_pages, clock=clock
            ),
            summaries=QuoteSummarySource(
                client, concurrency=settings.fundamentals_concurrency, clock=clock
            ),
            store=store,
            cache=cache,
            publisher=publisher,
            calendar=calendar or ExchangeCalendar(settings.exchange_calendar),
            universe=universe_loader(config, settings),
            clock=clock,
        )
        yield Services(client, store, cache, publisher, sync)
