"""PostgreSQL storage of raw quotes: non-blocking submit, COPY batches, outage buffering and spill.

Data path
    ``submit(quotes)`` only appends to an in-memory queue and returns: the publisher's event loop
    never waits for PostgreSQL. A background writer takes up to ``batch_rows`` queued quotes,
    converts them to rows and, in one transaction, ``COPY``s them (binary, asyncpg
    ``copy_records_to_table``) into a per-connection temporary staging table, then
    ``INSERT INTO <table> SELECT ... FROM <stage> ON CONFLICT (symbol, market_time) DO NOTHING``:
    of the ways that de-duplicate it is the fastest (``INSERT ... SELECT unnest($arrays)`` is
    slower). Plain COPY straight into the table is faster still but fails on a single duplicate,
    so the writer uses it while batches bring no duplicates and falls back to staging for a
    while after a conflict (see ``_copy_insert``; figures in bench/store_bench.py).

Exactly once
    The primary key (symbol, market_time) is the de-duplication key, so writing a batch twice
    (a retry after a connection died mid-commit, a spill file replayed after a crash) never makes
    a second row: delivery to PostgreSQL is at-least-once, the table holds each quote once.
    As an optimisation the writer remembers the last market time stored per symbol and skips a
    quote equal to it (overnight and weekend, Yahoo repeats the closing quote every cycle).

Outages
    Any failure that is not a bad row (connection refused/reset, ``pg_terminate_backend``,
    timeouts, read-only standby, dropped table...) keeps the batch, marks the store unavailable
    (one WARNING and one ``outages`` count per outage, not per row or retry), and the writer
    retries with capped exponential backoff; one INFO line when it is back. Rows that PostgreSQL
    refuses as data (class 22/23 errors) are isolated by bisecting the batch and counted as
    ``rows_rejected`` (values are checked before COPY, so this is rare). While the queue holds
    more than ``max_buffered_rows`` quotes, the queue is written to ``spill_dir`` in a worker thread
    (msgpack, written to a temporary name, fsync'd, renamed, directory fsync'd); spill files are
    replayed oldest first when the database is back and deleted once every row is committed.
    Spill files left by a previous run of the same table are replayed at start-up. If spilling
    itself fails the queue may grow to twice the bound; beyond that the oldest quotes are dropped
    and counted (``rows_dropped``) - the one place data can be lost, and it is logged as ERROR.

Start-up
    ``async with QuoteStore.connect(settings)`` tries ``connect_attempts`` times (backoff from
    ``connect_backoff_s``) to connect and migrate; if the database stays unreachable it logs one
    clear ERROR and runs without it, buffering, while the writer keeps trying in the background.
    Configuration mistakes (bad password, unknown database, a schema newer than this engine)
    raise :class:`~engine.errors.StoreConfigError` (not retryable) instead.

Partitions
    In ``native`` mode the store runs partition maintenance at start-up and every
    ``maintenance_interval_s``: the engine's own (:func:`maintain_partitions`, planned by
    :mod:`engine.sinks.partitions`), creating a missing daily partition on demand when a batch needs
    it; or, for a table registered with pg_partman (see :mod:`engine.sinks.migrations`),
    pg_partman's
    ``run_maintenance``. Rows older than the retention cutoff are not written
    (``rows_expired``). In ``timescale`` mode TimescaleDB's policies do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import asyncpg
import msgspec
from asyncpg.exceptions import _base as asyncpg_base

from engine.config import PostgresSettings
from engine.errors import StoreConfigError, StoreError
from engine.quote import Quote
from engine.sinks import partitions as parts
from engine.sinks.migrations import (
    Manager,
    Mode,
    configure_partman,
    create_partitions,
    list_partition_days,
    maintain_partitions,
    migrate,
    partition_manager,
    run_partman_maintenance,
)

logger = logging.getLogger(__name__)

COLUMNS: Final = (
    "market_time",
    "symbol",
    "price",
    "volume",
    "change_percent",
    "currency",
    "exchange",
    "market_state",
    "ingest_time",
    "correlation_id",
)
Row = tuple[Any, ...]
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY: Final = dt.date(1970, 1, 1)
_INT64_MAX: Final = (1 << 63) - 1
_DAY_S: Final = 86_400
_BACKOFF_MAX_S: Final = 30.0
_LAST_WRITTEN_MAX: Final = 1_000_000
_STAGED_AFTER_CONFLICT: Final = 20
_FATAL_CONNECT: Final = (
    asyncpg.InvalidAuthorizationSpecificationError,  # includes bad password (28P01)
    asyncpg.InvalidCatalogNameError,  # database does not exist
    asyncpg_base.ClientConfigurationError,
)
_EXPECTED_FAILURES: Final = (
    asyncpg.PostgresError,
    asyncpg_base.InterfaceError,  # connection closed / released under us
    asyncpg_base.InternalClientError,  # protocol state after a connection died mid-COPY
    OSError,  # refused, reset, unreachable
    TimeoutError,
    StoreError,
)
_DATA_ERRORS: Final = (
    asyncpg.DataError,  # SQLSTATE class 22
    asyncpg.IntegrityConstraintViolationError,  # class 23
    asyncpg_base.DataError,  # client-side encoding of a value...
    ValueError,  # ...which asyncpg's COPY encoder raises as a plain ValueError (bad uuid)
    TypeError,
    OverflowError,
)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store's counters (``rows_*`` are quotes; totals since start)."""

    available: bool  # the last attempt to reach PostgreSQL succeeded
    mode: Mode | None  # None until the first successful migration
    rows_submitted: int
    rows_written: int  # new rows inserted
    rows_duplicate: int  # already stored (ON CONFLICT, or equal to the last stored quote)
    rows_expired: int  # older than the retention cutoff: not stored
    rows_rejected: int  # refused by PostgreSQL or unencodable (bad value): not stored
    rows_dropped: int  # lost: memory bound hit while spilling failed
    rows_buffered: int  # in memory now (queued + being written)
    rows_spilled: int  # on disk now, waiting to be written
    rows_spilled_total: int
    outages: int
    last_error_kind: str | None
    last_batch_rows: int
    last_batch_s: float | None


class _SpillDoc(msgspec.Struct, frozen=True):
    version: int
    table: str
    quotes: list[Quote]


SPILL_VERSION: Final = 1


def _looks_like_uuid(s: str | None) -> bool:
    """Canonical 8-4-4-4-12 shape (cheap: this runs for every row)."""
    return s is not None and len(s) == 36 and s[8] == s[13] == s[18] == s[23] == "-"


class RowEncoder:
    """Quotes -> table rows, memoising the datetimes (a cycle shares few distinct seconds)."""

    __slots__ = ("_ingest", "_market")

    def __init__(self) -> None:
        self._market: dict[int, dt.datetime] = {}
        self._ingest: dict[int, dt.datetime] = {}

    def row(self, q: Quote) -> Row | None:
        """The table row for a quote, or None when a value cannot be stored (NUL, bad UTF-8,
        non-finite price, volume out of bigint range)."""
        for s in (q.symbol, q.market_state, q.currency, q.exchange):
            if s is not None and not _storable_text(s):
                return None
        if not q.symbol or not math.isfinite(q.price) or not -_INT64_MAX <= q.volume <= _INT64_MAX:
            return None
        cp = q.change_percent
        if cp is not None and not math.isfinite(cp):
            cp = None
        market = self._market.get(q.market_time)
        if market is None:
            market = self._market[q.market_time] = _EPOCH + dt.timedelta(seconds=q.market_time)
        us = q.ingest_time_ns // 1000
        ingest = self._ingest.get(us)
        if ingest is None:
            ingest = self._ingest[us] = _EPOCH + dt.timedelta(microseconds=us)
        cid: str | None = q.correlation_id
        if not _looks_like_uuid(cid):  # a wrong hex digit still fails in asyncpg: bisected out
            cid = None
        return (
            market,
            q.symbol,
            q.price,
            q.volume,
            cp,
            q.currency,
            q.exchange,
            q.market_state,
            ingest,
            cid,  # asyncpg encodes the canonical text form itself
        )


def quote_row(q: Quote) -> Row | None:
    """The table row of one quote (see :meth:`RowEncoder.row`)."""
    return RowEncoder().row(q)


def _storable_text(s: str) -> bool:
    if "\x00" in s:
        return False
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def is_data_error(exc: BaseException) -> bool:
    """A failure caused by the rows themselves (retrying the same rows cannot succeed)."""
    return isinstance(exc, _DATA_ERRORS)


def _backoff(base_s: float, attempt: int) -> float:
    return float(min(_BACKOFF_MAX_S, base_s * (2 ** min(attempt, 16))))


def _translate(exc: BaseException, what: str) -> StoreError:
    cls = StoreConfigError if isinstance(exc, _FATAL_CONNECT) else StoreError
    return cls(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")


# -- spill files ---------------------------------------------------------------------------------


def spill_paths(spill_dir: Path, table: str) -> list[Path]:
    """Spill files of ``table``, oldest first (names sort by creation time)."""
    if not spill_dir.is_dir():
        return []
    return sorted(spill_dir.glob(f"{table}.*.spill"))


def spill_rows(path: Path) -> int:
    """Row count encoded in a spill file's name (``<table>.<ns>.<seq>.<rows>.spill``)."""
    try:
        return int(path.name.rsplit(".", 2)[-2])
    except (IndexError, ValueError):
        return 0


def write_spill_file(spill_dir: Path, table: str, quotes: Sequence[Quote], seq: int) -> Path:
    """Durably write ``quotes`` (blocking: call it in a worker thread)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    final = spill_dir / f"{table}.{time.time_ns():020d}.{seq:06d}.{len(quotes)}.spill"
    tmp = final.with_suffix(".tmp")
    data = msgspec.msgpack.encode(_SpillDoc(SPILL_VERSION, table, list(quotes)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.rename(final)
    _fsync_dir(spill_dir)
    return final


def read_spill_file(path: Path) -> list[Quote]:
    doc = msgspec.msgpack.decode(path.read_bytes(), type=_SpillDoc)
    return doc.quotes


def remove_spill_file(path: Path) -> None:
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the store ---------------------------------------------------------------------------------


class QuoteStore:
    """Owner of the PostgreSQL pool; ``async with QuoteStore.connect(settings) as store``."""

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        clock: Callable[[], float] = time.time,
        batch_rows: int = 10_000,
        maintenance_interval_s: float = 3600.0,
        allow_timescale: bool = True,
        allow_partman: bool = True,
    ) -> None:
        self._settings = settings
        self._table = parts.check_table_name(settings.table)
        self._clock = clock
        self._batch_rows = batch_rows
        self._maintenance_interval_s = maintenance_interval_s
        self._allow_timescale = allow_timescale
        self._allow_partman = allow_partman
        self._spill_dir = Path(settings.spill_dir)
        self._stage = f"_ingest_stage_{self._table}"
        cols = ", ".join(COLUMNS)
        tbl, stage = parts.quote_ident(self._table), parts.quote_ident(self._stage)
        self._sql_stage = (
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {tbl} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        self._sql_insert = (
            f"INSERT INTO {tbl} ({cols}) SELECT {cols} FROM pg_temp.{stage} "  # noqa: S608
            "ON CONFLICT (symbol, market_time) DO NOTHING"
        )
        self._pool: Any = None
        self._mode: Mode | None = None
        self._manager: Manager | None = None  # native mode: who creates/drops partitions
        self._partman: str | None = None  # pg_partman's schema when it manages the table
        self._ready = False
        self._started = False
        self._closed = False
        self._pending: deque[list[Quote]] = deque()
        self._pending_rows = 0
        self._inflight: list[Quote] = []
        self._spill_files: list[Path] = []
        self._spill_cursor: tuple[Path, list[Quote], int] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._spill_retry_at = 0.0
        self._spill_seq = 0
        self._known_days: set[dt.date] = set()
        self._staged_left = 0  # batches to stage before plain COPY is tried again
        self._last_written: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._available = True
        self._down_since = 0.0
        self._attempt = 0
        self._dropping = False
        self._c: dict[str, int] = dict.fromkeys(
            (
                "submitted",
                "written",
                "duplicate",
                "expired",
                "rejected",
                "dropped",
                "spilled_total",
                "outages",
            ),
            0,
        )
        self._last_error_kind: str | None = None
        self._last_batch_rows = 0
        self._last_batch_s: float | None = None

    @classmethod
    def connect(cls, settings: PostgresSettings, **kwargs: Any) -> QuoteStore:
        """The store, to be entered with ``async with`` (which connects and migrates)."""
        return cls(settings, **kwargs)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- public API ----------------------------------------------------------------------------

    @property
    def table(self) -> str:
        return self._table

    @property
    def mode(self) -> Mode | None:
        return self._mode

    @property
    def partition_manager(self) -> Manager | None:
        """``engine`` or ``pg_partman`` in native mode; None otherwise or before migration."""
        return self._manager

    @property
    def stats(self) -> StoreStats:
        c = self._c
        return StoreStats(
            available=self._available and self._ready,
            mode=self._mode,
            rows_submitted=c["submitted"],
            rows_written=c["written"],
            rows_duplicate=c["duplicate"],
            rows_expired=c["expired"],
            rows_rejected=c["rejected"],
            rows_dropped=c["dropped"],
            rows_buffered=self._pending_rows + len(self._inflight),
            rows_spilled=sum(spill_rows(p) for p in self._spill_files),
            rows_spilled_total=c["spilled_total"],
            outages=c["outages"],
            last_error_kind=self._last_error_kind,
            last_batch_rows=self._last_batch_rows,
            last_batch_s=self._last_batch_s,
        )

    def submit(self, quotes: Sequence[Quote]) -> None:
        """Queue quotes for storage. Never blocks and never raises on an outage."""
        if not self._settings.enabled or not quotes:
            return
        if self._closed:
            raise StoreError("QuoteStore.submit() after aclose()")
        batch = list(quotes)
        self._pending.append(batch)
        self._pending_rows += len(batch)
        self._c["submitted"] += len(batch)
        self._wake.set()
        if self._pending_rows > self._settings.max_buffered_rows:
            self._over_bound()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued or spilled is in PostgreSQL (True).

        On timeout, whatever is still in memory is spilled to disk (fsync'd) and False is
        returned: nothing is lost, it is written by this or the next run.
        """
        if not self._settings.enabled or not self._started:
            return True
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        while not self._idle():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        if self._idle():
            return True
        await self._spill_pending()
        return False

    async def run_maintenance(self, today: dt.date | None = None) -> parts.PartitionPlan | None:
        """Partition maintenance now (native mode); returns the engine's plan.

        ``today`` defaults to the store's clock. With pg_partman, its ``run_maintenance`` runs
        instead (on the database's clock) and None is returned.
        """
        if self._mode != "native" or self._pool is None:
            return None
        day = today or parts.day_of(self._clock())
        async with self._pool.acquire() as conn:
            if self._partman is not None:
                await run_partman_maintenance(conn, self._table, self._partman)
                return None
            plan = await maintain_partitions(
                conn,
                self._table,
                day,
                retention_days=self._settings.retention_days,
                ahead_days=self._settings.partitions_ahead_days,
            )
            self._known_days = await list_partition_days(conn, self._table)
        return plan

    async def start(self) -> None:
        """Connect and migrate (bounded retries), then start the background tasks."""
        if self._started or not self._settings.enabled:
            return
        self._spill_files = spill_paths(self._spill_dir, self._table)
        if self._spill_files:
            logger.info(
                "replaying spill files from a previous run",
                extra={
                    "event": "spill_files_found",
                    "files": len(self._spill_files),
                    "rows": sum(spill_rows(p) for p in self._spill_files),
                },
            )
        await self._startup_connect()
        self._started = True
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"store-writer:{self._table}"),
            asyncio.create_task(self._maintainer(), name=f"store-maintenance:{self._table}"),
        ]
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the background tasks, spill what is still in memory, close the pool."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._spill_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._spill_task
        await self._spill_pending()
        await self._close_pool()

    # -- start-up ----------------------------------------------------------------------------

    async def _startup_connect(self) -> None:
        attempts = self._settings.connect_attempts
        for attempt in range(attempts):
            try:
                await self._prepare()
                return
            except StoreError as exc:
                if not exc.retryable:
                    await self._close_pool()
                    raise
                self._note_error(exc)
                if attempt + 1 < attempts:
                    delay = _backoff(self._settings.connect_backoff_s, attempt)
                    logger.warning(
                        "PostgreSQL not reachable at start-up; retrying",
                        extra={
                            "event": "pg_connect_retried",
                            "attempt": attempt + 1,
                            "attempts": attempts,
                            "retry_in_s": delay,
                            "dsn": self._settings.dsn.redacted(),
                            "error": str(exc),
                        },
                    )
                    await asyncio.sleep(delay)
        logger.error(
            "PostgreSQL unreachable at start-up; running without it: quotes are buffered "
            "(then spilled to spill_dir) and written when it is back",
            extra={
                "event": "pg_unreachable_at_startup",
                "attempts": attempts,
                "dsn": self._settings.dsn.redacted(),
                "spill_dir": str(self._spill_dir),
                "error_kind": self._last_error_kind,
            },
        )
        self._mark_down(None)

    async def _prepare(self) -> None:
        """Create the pool if needed, migrate, and (native) maintain partitions."""
        try:
            if self._pool is None:
                s = self._settings
                self._pool = await asyncpg.create_pool(
                    s.dsn.reveal(),
                    min_size=1,
                    max_size=s.pool_size,
                    timeout=s.command_timeout_s,
                    command_timeout=s.command_timeout_s,
                    server_settings={
                        "application_name": f"ingestion-agent:{self._table}",
                        "client_min_messages": "warning",
                    },
                )
            s = self._settings
            async with self._pool.acquire() as conn:
                result = await migrate(
                    conn,
                    self._table,
                    retention_days=s.retention_days,
                    ahead_days=s.partitions_ahead_days,
                    allow_timescale=self._allow_timescale,
                    allow_partman=self._allow_partman,
                )
                self._mode = result.mode
                if self._mode == "native":
                    self._manager, self._partman = await partition_manager(conn, self._table)
                if self._partman is not None:  # follow retention_days / ahead_days changes
                    await configure_partman(
                        conn,
                        self._table,
                        self._partman,
                        retention_days=s.retention_days,
                        ahead_days=s.partitions_ahead_days,
                    )
            self._ready = True
            if self._mode == "native":
                await self.run_maintenance()
        except StoreError:
            raise
        except Exception as exc:
            raise _translate(exc, "PostgreSQL start-up") from exc

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except Exception:  # a pool that will not close gracefully is terminated
            pool.terminate()

    # -- background tasks ----------------------------------------------------------------------

    async def _maintainer(self) -> None:
        while not self._closing.is_set():
            await asyncio.sleep(self._maintenance_interval_s)
            if not self._ready or self._mode != "native":
                continue
            try:
                await self.run_maintenance()
            except Exception as exc:  # retried at the next interval
                logger.warning(
                    "partition maintenance failed; will retry",
                    extra={"event": "partition_maintenance_failed", "error": str(exc)[:300]},
                )

    async def _writer(self) -> None:
        # wait_for() may swallow a cancel that races with its inner wait (3.11), so the loop
        # also stops by itself once closing is signalled.
        while not self._closing.is_set():
            if self._ready and not self._has_work():
                self._progress.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if not self._ready:
                    await self._prepare()  # keeps trying in the background, work or not
                elif self._spill_files:
                    await self._write_spill_file()
                else:
                    await self._write_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure keeps the rows and retries
                self._mark_down(exc)
                self._progress.set()
                await self._sleep_backoff()
                continue
            self._mark_up()
            self._progress.set()

    async def _sleep_backoff(self) -> None:
        delay = _backoff(self._settings.connect_backoff_s, self._attempt)
        self._attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=delay)

    def _has_work(self) -> bool:
        return bool(self._pending or self._spill_files)

    def _idle(self) -> bool:
        return not (
            self._pending or self._inflight or self._spill_files or self._spill_task is not None
        )

    async def _write_pending(self) -> None:
        batch: list[Quote] = []
        while self._pending and len(batch) < self._batch_rows:
            part = self._pending.popleft()
            self._pending_rows -= len(part)
            batch.extend(part)
        self._inflight = batch
        try:
            await self._store(batch)
        except BaseException:
            self._pending.appendleft(batch)
            self._pending_rows += len(batch)
            raise
        finally:
            self._inflight = []

    async def _write_spill_file(self) -> None:
        path = self._spill_files[0]
        if self._spill_cursor is None or self._spill_cursor[0] != path:
            try:
                quotes = await asyncio.to_thread(read_spill_file, path)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._quarantine(path, exc)
                return
            self._spill_cursor = (path, quotes, 0)
        _, quotes, offset = self._spill_cursor
        while offset < len(quotes):
            chunk = quotes[offset : offset + self._batch_rows]
            await self._store(chunk)
            offset += len(chunk)
            self._spill_cursor = (path, quotes, offset)
        await asyncio.to_thread(remove_spill_file, path)
        self._spill_files.pop(0)
        self._spill_cursor = None

    def _quarantine(self, path: Path, exc: BaseException) -> None:
        logger.error(
            "unreadable spill file set aside",
            extra={"event": "spill_file_quarantined", "path": str(path), "error": str(exc)[:300]},
        )
        with contextlib.suppress(OSError):
            path.rename(path.with_suffix(".bad"))
        self._spill_files.remove(path)

    # -- writing one batch ---------------------------------------------------------------------

    async def _store(self, quotes: Sequence[Quote]) -> None:
        started = time.perf_counter()
        rows, kept = self._rows_to_write(quotes)
        if rows:
            if self._pool is None:
                raise StoreError("no connection pool")
            async with self._pool.acquire() as conn:
                if self._manager == "engine":
                    await self._ensure_partitions(conn, {q.market_time // _DAY_S for q in kept})
                inserted, rejected = await self._insert(conn, rows, retry_partitions=True)
            self._c["written"] += inserted
            self._c["duplicate"] += len(rows) - inserted - rejected
            self._remember(kept)
        self._last_batch_rows = len(quotes)
        self._last_batch_s = time.perf_counter() - started

    def _rows_to_write(self, quotes: Sequence[Quote]) -> tuple[list[Row], list[Quote]]:
        """Rows to COPY and their quotes; counts what is skipped (repeat, expired, bad)."""
        today = parts.day_of(self._clock())
        first, last = parts.storable_days(
            today,
            retention_days=self._settings.retention_days,
            ahead_days=self._settings.partitions_ahead_days,
        )
        lo = (first - dt.date(1970, 1, 1)).days * _DAY_S
        hi = ((last - dt.date(1970, 1, 1)).days + 1) * _DAY_S
        rows: list[Row] = []
        kept: list[Quote] = []
        encode = RowEncoder().row
        lw = self._last_written
        bad = expired = dup = 0
        for q in quotes:
            if lw.get(q.symbol) == q.market_time:
                dup += 1
            elif not lo <= q.market_time < hi:
                expired += q.market_time < lo
                bad += q.market_time >= hi
            elif (row := encode(q)) is None:
                bad += 1
            else:
                rows.append(row)
                kept.append(q)
        self._c["duplicate"] += dup
        self._c["expired"] += expired
        if bad:
            self._reject(bad, "value cannot be stored (NUL/invalid text, non-finite, range)")
        return rows, kept

    def _reject(self, n: int, reason: str) -> None:
        self._c["rejected"] += n
        logger.warning(
            "quotes not stored",
            extra={"event": "quotes_rejected", "rows": n, "reason": reason[:300]},
        )

    def _remember(self, quotes: list[Quote]) -> None:
        lw = self._last_written
        if len(lw) > _LAST_WRITTEN_MAX:
            lw.clear()
        for q in quotes:
            if q.market_time > lw.get(q.symbol, -1):
                lw[q.symbol] = q.market_time

    async def _ensure_partitions(self, conn: Any, day_numbers: set[int]) -> None:
        """Create the partitions of these days (days since the epoch) not known to exist."""
        days = {_EPOCH_DAY + dt.timedelta(days=n) for n in day_numbers}
        missing = days - self._known_days
        if missing:
            await create_partitions(conn, self._table, missing)
            self._known_days |= missing

    async def _insert(
        self, conn: Any, rows: list[Row], *, retry_partitions: bool
    ) -> tuple[int, int]:
        """(inserted, rejected); bad rows are isolated by bisection."""
        try:
            return await self._copy_insert(conn, rows), 0
        except asyncpg.CheckViolationError:
            # our tables have no CHECK constraint: 23514 means "no partition for this row"
            if not retry_partitions or self._manager != "engine":
                return await self._bisect(conn, rows)
            self._known_days = await list_partition_days(conn, self._table)
            epoch_days = {(row[0] - _EPOCH).days for row in rows}
            await self._ensure_partitions(conn, epoch_days)
            return await self._insert(conn, rows, retry_partitions=False)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            return await self._bisect(conn, rows, exc)

    async def _bisect(
        self, conn: Any, rows: list[Row], exc: BaseException | None = None
    ) -> tuple[int, int]:
        if len(rows) == 1:
            self._reject(1, f"{type(exc).__name__}: {exc}" if exc else "no partition for row")
            return 0, 1
        mid = len(rows) // 2
        a = await self._insert(conn, rows[:mid], retry_partitions=False)
        b = await self._insert(conn, rows[mid:], retry_partitions=False)
        return a[0] + b[0], a[1] + b[1]

    async def _copy_insert(self, conn: Any, rows: list[Row]) -> int:
        """Insert ``rows``, skipping those already stored; returns how many were new.

        Plain COPY into the table is ~1.7x faster than staging, but fails as a whole on one
        duplicate; so it is tried only while recent batches had no duplicate, and after a
        conflict the next :data:`_STAGED_AFTER_CONFLICT` batches go through the staging table.
        """
        if self._staged_left <= 0:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(self._table, records=rows, columns=COLUMNS)
                return len(rows)
            except asyncpg.UniqueViolationError:
                self._staged_left = _STAGED_AFTER_CONFLICT
        self._staged_left -= 1
        async with conn.transaction():
            await conn.execute(self._sql_stage)
            await conn.copy_records_to_table(self._stage, records=rows, columns=COLUMNS)
            status: str = await conn.execute(self._sql_insert)
        return int(status.rsplit(" ", 1)[-1])

    # -- outage bookkeeping ----------------------------------------------------------------------

    def _note_error(self, exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
        self._last_error_kind = type(cause).__name__
        if isinstance(cause, asyncpg.UndefinedTableError):
            self._ready = False  # the table vanished: migrate again before the next write

    def _mark_down(self, exc: BaseException | None) -> None:
        if exc is not None:
            self._note_error(exc)
            if not isinstance(exc, _EXPECTED_FAILURES):
                logger.error(  # a bug rather than an outage: say so, with the traceback
                    "unexpected error while writing quotes; keeping them and retrying",
                    exc_info=exc,
                    extra={"event": "store_write_failed", "table": self._table},
                )
        if not self._available:
            logger.debug("PostgreSQL still unavailable", extra={"event": "pg_retry_failed"})
            return
        self._available = False
        self._down_since = time.monotonic()
        self._c["outages"] += 1
        if exc is not None:
            logger.warning(
                "PostgreSQL unavailable; buffering quotes and retrying",
                extra={
                    "event": "pg_unavailable",
                    "table": self._table,
                    "error_kind": self._last_error_kind,
                    "error": str(exc)[:300],
                    "rows_buffered": self._pending_rows + len(self._inflight),
                },
            )

    def _mark_up(self) -> None:
        self._attempt = 0
        if self._available:
            return
        self._available = True
        self._last_written.clear()  # the database may have been restored: do not trust it
        logger.info(
            "PostgreSQL available again; writing the backlog",
            extra={
                "event": "pg_recovered",
                "table": self._table,
                "outage_s": round(time.monotonic() - self._down_since, 3),
                "rows_buffered": self._pending_rows,
                "rows_spilled": sum(spill_rows(p) for p in self._spill_files),
            },
        )

    # -- memory bound and spilling -------------------------------------------------------------

    def _over_bound(self) -> None:
        if self._spill_task is None and time.monotonic() >= self._spill_retry_at:
            batches = list(self._pending)
            self._pending.clear()
            self._pending_rows = 0
            self._spill_task = asyncio.create_task(self._spill(batches))
            return
        hard = 2 * self._settings.max_buffered_rows
        dropped = 0
        while self._pending_rows > hard and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_rows -= len(old)
            dropped += len(old)
        if dropped:
            self._c["dropped"] += dropped
            if not self._dropping:
                logger.error(
                    "quote buffer full and spilling failed: dropping the oldest quotes",
                    extra={"event": "quotes_dropped", "rows": dropped, "bound": hard},
                )
            self._dropping = True

    async def _spill(self, batches: list[list[Quote]]) -> None:
        quotes = [q for b in batches for q in b]
        self._spill_seq += 1
        try:
            path = await asyncio.to_thread(
                write_spill_file, self._spill_dir, self._table, quotes, self._spill_seq
            )
        except OSError as exc:
            for b in reversed(batches):  # older than anything queued meanwhile: back in front
                self._pending.appendleft(b)
                self._pending_rows += len(b)
            self._spill_retry_at = time.monotonic() + 5.0
            logger.error(
                "cannot spill quotes to disk; keeping them in memory",
                extra={"event": "spill_failed", "dir": str(self._spill_dir), "error": str(exc)},
            )
        else:
            self._dropping = False
            self._spill_files.append(path)
            self._c["spilled_total"] += len(quotes)
            logger.info(
                "quotes spilled to disk",
                extra={"event": "quotes_spilled", "rows": len(quotes), "path": str(path)},
            )
        finally:
            self._spill_task = None
            self._wake.set()
            self._progress.set()

    async def _spill_pending(self) -> None:
        """Spill everything still in memory (shutdown / flush timeout)."""
        if self._spill_task is not None:
            await self._spill_task
        if not self._pending:
            return
        batches = list(self._pending)
        self._pending.clear()
        self._pending_rows = 0
        self._spill_retry_at = 0.0
        self._spill_task = asyncio.create_task(self._spill(batches))
        await self._spill_task
        if self._pending:
            logger.error(
                "quotes could not be written nor spilled and are lost",
                extra={"event": "quotes_lost", "rows": self._pending_rows},
            )
