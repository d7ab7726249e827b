"""Pre-flight: do the services a command needs answer, within a bound?

Each service is probed once (connect, ping, close: :func:`engine.deps.nats.probe`,
:func:`engine.deps.postgres.probe`, :func:`engine.deps.redis.probe`) under
``cli.service_timeout_s``, all at once. :func:`require` raises one
:class:`~engine.errors.ServiceUnavailableError` (one line: the service, its URL with credentials
redacted, what went wrong and what to check); :func:`unavailable` returns them, for ``run``,
which only warns (its quotes wait in the outbox and the spill). A NATS server without JetStream
and PostgreSQL refusing the credentials or the database are a :class:`~engine.errors.ConfigError`:
waiting does not fix them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from engine.config import Config
from engine.deps import describe
from engine.deps import nats as nats_dep
from engine.deps import postgres as pg_dep
from engine.deps import redis as redis_dep
from engine.errors import (
    ConfigError,
    IngestionError,
    ServiceUnavailableError,
    StoreConfigError,
)

Name = Literal["nats", "postgres", "redis"]
ALL: Final[tuple[Name, ...]] = ("nats", "postgres", "redis")


@dataclass(frozen=True, slots=True)
class Service:
    """One service to probe: its display name, redacted URL, hint and probe."""

    name: str
    url: str
    hint: str
    probe: Callable[[float], Awaitable[None]]


def services(config: Config, names: Iterable[Name]) -> list[Service]:
    """The enabled services among ``names`` (a disabled PostgreSQL or Redis is not needed)."""
    n, p, r = config.nats, config.postgres, config.redis

    async def nats_probe(t: float) -> None:
        await nats_dep.probe(n, t)

    async def pg_probe(t: float) -> None:
        await pg_dep.probe(p, t)

    async def redis_probe(t: float) -> None:
        await redis_dep.probe(r, t)

    known = {
        "nats": Service("NATS", n.url.redacted(), "is nats-server running? check nats.url",
                        nats_probe),
        "postgres": Service("PostgreSQL", p.dsn.redacted(),
                            "is PostgreSQL running? check postgres.dsn", pg_probe),
        "redis": Service("Redis", r.url.redacted(), "is Redis running? check redis.url",
                         redis_probe),
    }  # fmt: skip
    enabled = {"nats": True, "postgres": p.enabled, "redis": r.enabled}
    return [known[name] for name in names if enabled[name]]


def _timed_out(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__
    return False


async def check(service: Service, timeout_s: float) -> ServiceUnavailableError | None:
    """Probe ``service`` within ``timeout_s``: None if it answered, else the error to report.
    A :class:`ConfigError` (NATS without JetStream) is raised: it is not a matter of time."""
    try:
        await asyncio.wait_for(service.probe(timeout_s), timeout=timeout_s)
    except ConfigError:
        raise
    except StoreConfigError as exc:  # wrong password, no such database: not a matter of time
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise ConfigError(
            f"{service.name} at {service.url} refused the connection ({describe(cause)}); "
            "check postgres.dsn",
            key="postgres.dsn",
        ) from exc
    except (IngestionError, TimeoutError, OSError) as exc:
        if _timed_out(exc):
            why = f"did not answer within {timeout_s:g} s (cli.service_timeout_s)"
        else:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            why = f"is unreachable ({describe(cause)})"
        return ServiceUnavailableError(service.name, service.url, f"{why}; {service.hint}")
    return None


async def unavailable(
    config: Config, names: Iterable[Name], timeout_s: float | None = None
) -> list[ServiceUnavailableError]:
    """Probe the enabled services among ``names`` at once; those that did not answer."""
    t = config.cli.service_timeout_s if timeout_s is None else timeout_s
    found = await asyncio.gather(*(check(s, t) for s in services(config, names)))
    return [e for e in found if e is not None]


async def require(config: Config, names: Iterable[Name], timeout_s: float | None = None) -> None:
    """Raise :class:`ServiceUnavailableError` for the first service of ``names`` that does not
    answer (its message adds the others that did not either)."""
    down = await unavailable(config, names, timeout_s)
    if not down:
        return
    first = down[0]
    if len(down) > 1:
        also = ", ".join(f"{e.service} at {e.url}" for e in down[1:])
        raise ServiceUnavailableError(first.service, first.url, f"{first.reason} (also: {also})")
    raise first
