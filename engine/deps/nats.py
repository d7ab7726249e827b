"""NATS (nats-py): connect, ping, the stream declaration, and error translation into
:class:`PublishError`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from engine.config import NatsSettings
from engine.deps import describe, translating
from engine.errors import ConfigError, PublishError
from engine.retry import RetryPolicy, retry

log = logging.getLogger(__name__)

CONNECT_ATTEMPT_FACTOR: Final = 2.0
"""One connect attempt may take this many ``nats.connect_timeout_s`` (TCP connect + handshake)."""

_CONNECT_RETRY: Final = RetryPolicy(attempts=None, base_s=0.5, cap_s=5.0, jitter=0.0)
"""First-connect attempts: 0.5, 1, 2, 4, then every 5 s (``attempts`` None = until it works)."""

ERRORS: Final = (nats.errors.Error, OSError, TimeoutError)
"""Everything nats-py raises for a failed connection, request or publish."""


def translate(what: str) -> AbstractContextManager[None]:
    """Turn nats-py and socket errors raised inside into :class:`PublishError` (``from`` them)."""
    return translating(ERRORS, lambda exc: PublishError(f"{what}: {describe(exc)}"))


NO_JETSTREAM: Final = (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError)
"""What a JetStream request gets from a server that runs without JetStream."""


def no_jetstream(settings: NatsSettings) -> ConfigError:
    """The error for a server that answers without JetStream: nothing will work until it has it."""
    return ConfigError(
        f"NATS at {settings.url.redacted()} answers but has no JetStream: start nats-server "
        "with JetStream (-js, or jetstream {} in its config) or point nats.url at one that has it",
        key="nats.url",
    )


@contextmanager
def jetstream_required(settings: NatsSettings) -> Iterator[None]:
    """Raise :func:`no_jetstream` for a JetStream request the server has no responder for."""
    try:
        yield
    except NO_JETSTREAM as exc:
        raise no_jetstream(settings) from exc


async def ping(nc: Any, timeout_s: float, settings: NatsSettings | None = None) -> None:
    """One round trip and JetStream's account info: the server and JetStream both answer.
    With ``settings``, a server without JetStream is a :class:`ConfigError` naming it."""
    with translate("NATS did not answer"):
        await nc.flush(timeout=max(1, math.ceil(timeout_s)))
        js = nc.jetstream(timeout=timeout_s)
        if settings is None:
            await js.account_info()
            return
        with jetstream_required(settings):
            await js.account_info()


async def probe(settings: NatsSettings, timeout_s: float) -> None:
    """Connect once (no reconnects), :func:`ping`, close: for health checks and pre-flight."""
    nc = await probe_connection(settings, timeout_s)
    try:
        await ping(nc, timeout_s, settings)
    finally:
        await nc.close()


async def connect(
    settings: NatsSettings,
    *,
    attempts: int | None = None,
    closing: asyncio.Event | None = None,
    reconnected: asyncio.Event | None = None,
) -> Any:
    """Connect with reconnects enabled; retry the first connect (``attempts`` None = forever).

    ``closing`` set by the owner before it drains keeps the normal close out of the warnings;
    ``reconnected`` is set after every reconnect (the server may have lost its streams).
    """
    closing = closing or asyncio.Event()
    seen: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        seen.append(exc)
        log.debug("nats_error", extra={"error_kind": type(exc).__name__})

    async def on_disconnect() -> None:
        if not closing.is_set():
            log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")
        if reconnected is not None:
            reconnected.set()

    async def attempt() -> Any:
        seen.clear()
        try:
            # nats-py retries a first connect forever when reconnects are allowed: bound it, so
            # an attempt that cannot reach the server fails (and is logged) like any other
            return await asyncio.wait_for(
                nats.connect(
                    servers=settings.servers(),
                    name=f"ingestion-agent-{os.getpid()}",
                    connect_timeout=settings.connect_timeout_s,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                ),
                timeout=CONNECT_ATTEMPT_FACTOR * settings.connect_timeout_s,
            )
        except ERRORS as exc:
            cause = seen[-1] if isinstance(exc, TimeoutError) and seen else exc
            raise PublishError(type(cause).__name__) from exc

    def failed(n: int, exc: BaseException) -> None:
        log.warning(
            "nats_connect_failed",
            extra={"url": settings.url.redacted(), "attempt": n, "error_kind": str(exc)},
        )

    tries = 0

    async def counted() -> Any:
        nonlocal tries
        tries += 1
        return await attempt()

    try:
        return await retry(counted, _CONNECT_RETRY if attempts is None else
                           replace(_CONNECT_RETRY, attempts=attempts),
                           on_retry=lambda n, exc, _delay: failed(n, exc))  # fmt: skip
    except PublishError as exc:
        failed(tries, exc)
        raise PublishError(
            f"cannot connect to NATS at {settings.url.redacted()} after {tries} attempts: "
            "is nats-server running with JetStream (-js)? check nats.url"
        ) from exc


async def ensure_stream(js: Any, name: str, subject: str, s: NatsSettings) -> None:
    """Create the stream, or widen an existing one to include ``subject``."""
    cfg = StreamConfig(
        name=name,
        subjects=[subject],
        storage=StorageType.FILE,
        duplicate_window=s.duplicate_window_s,
        max_age=s.max_age_s,
    )
    try:
        with jetstream_required(s):
            info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError as exc:
            raise PublishError(
                f"cannot create stream {name} on {subject}: {exc.description}; "
                "another stream may already own the subject"
            ) from exc
        log.info("stream_created", extra={"stream": name, "subject": subject})
        return
    current = info.config
    if subject not in (current.subjects or []) or current.duplicate_window != s.duplicate_window_s:
        current.subjects = sorted({*(current.subjects or []), subject})
        current.duplicate_window = s.duplicate_window_s
        await js.update_stream(current)
        log.info("stream_updated", extra={"stream": name, "subject": subject})


async def close(nc: Any, closing: asyncio.Event | None = None, timeout_s: float = 5.0) -> None:
    """Drain ``nc`` (pending publishes flushed) within ``timeout_s``, else close it; idempotent.

    ``closing`` (the event given to :func:`connect`) is set first, so the disconnect that the
    drain causes is not logged as a warning. Never raises (but for cancellation): while NATS is
    down or the client is reconnecting, the drain refuses and nats-py's close can fail on the
    dead transport - the connection is then logged (``nats_close_failed``) and left closed;
    whatever it had not flushed was never acknowledged, so its owner still holds it.
    """
    if nc.is_closed:
        return
    if closing is not None:
        closing.set()
    try:
        await asyncio.wait_for(nc.drain(), timeout=timeout_s)
        return
    except Exception:  # noqa: S110 - any failure of the drain falls back to a plain close
        pass
    try:
        await asyncio.wait_for(nc.close(), timeout=timeout_s)
    except Exception as exc:
        log.warning(
            "nats_close_failed", extra={"error_kind": type(exc).__name__, "error": str(exc)[:200]}
        )


@asynccontextmanager
async def connection(
    settings: NatsSettings, *, attempts: int | None = None, closing: asyncio.Event | None = None
) -> AsyncIterator[Any]:
    """``async with connection(settings) as nc``: :func:`connect`, then :func:`close` on exit."""
    closing = closing or asyncio.Event()
    nc = await connect(settings, attempts=attempts, closing=closing)
    try:
        yield nc
    finally:
        await close(nc, closing)


async def probe_connection(settings: NatsSettings, timeout_s: float) -> Any:
    """A connection without reconnects (a lost server shows as ``is_connected`` False at once),
    for probes, commands and the readiness check that keeps one open. A refused or failed
    connect fails at once (nats-py would try the servers again until ``timeout_s``)."""
    failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
    servers = settings.servers()
    errors: list[Exception] = []

    async def first_error(exc: Exception) -> None:
        errors.append(exc)  # every server refused once: it will not get better by trying again
        if len(errors) >= len(servers) and not failed.done():
            failed.set_result(exc)

    connecting = asyncio.ensure_future(
        nats.connect(
            servers=servers,
            connect_timeout=timeout_s,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=first_error,
            name=f"ingestion-probe-{os.getpid()}",
        )
    )
    with translate(f"cannot connect to NATS at {settings.url.redacted()}"):
        try:
            racing: set[asyncio.Future[Any]] = {connecting, failed}
            await asyncio.wait(racing, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
        if connecting.done() and not connecting.cancelled():
            return connecting.result()
        if failed.done():
            raise failed.result()
        raise TimeoutError(f"no answer within {timeout_s:g} s")


@asynccontextmanager
async def command_connection(settings: NatsSettings, timeout_s: float) -> AsyncIterator[Any]:
    """A connection for a one-shot command: no reconnects (so no reconnect warnings either),
    the connect bounded by ``timeout_s``; nats-py and socket errors inside become
    :class:`PublishError`, a server without JetStream a :class:`ConfigError`; closed on exit."""
    nc = await probe_connection(settings, timeout_s)
    try:
        with translate(f"NATS at {settings.url.redacted()}"), jetstream_required(settings):
            yield nc
    finally:
        await close(nc, timeout_s=timeout_s)


async def stream_exists(js: Any, name: str) -> bool:
    """Whether JetStream has the stream ``name``; any other failure is a :class:`PublishError`."""
    with translate(f"NATS did not answer stream info for {name}"):
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return False
    return True
