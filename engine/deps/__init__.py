"""One adapter per external dependency (NATS, PostgreSQL, Redis): how to connect, how to ping,
and how its library's exceptions become :mod:`engine.errors` (one context manager each).

Everything that talks to a dependency - the publisher, the store, the cache, the earnings job,
the CLI commands and the health checks - goes through these, so a connection is made, probed and
translated one way. Yahoo's adapter is :mod:`engine.source.client` with its transports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.configload import redact_url
from engine.errors import IngestionError


def describe(exc: BaseException) -> str:
    """``Kind: message`` of a library error, bounded, credentials masked (a library may quote
    the DSN it was given, e.g. asyncpg on a malformed one)."""
    return f"{type(exc).__name__}: {redact_url(str(exc))[:300]}"


@contextmanager
def translating(
    errors: tuple[type[BaseException], ...], error_for: Callable[[BaseException], IngestionError]
) -> Iterator[None]:
    """Raise ``error_for(exc) from exc`` for a library error in ``errors`` raised inside; the
    engine's own errors pass through untouched. Each adapter's ``translate`` is this."""
    try:
        yield
    except IngestionError:
        raise
    except errors as exc:
        raise error_for(exc) from exc
