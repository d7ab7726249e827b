"""The engine's one error tree.

Every failure the engine reports is an :class:`IngestionError`; third-party exceptions are
translated into it at one boundary per adapter (``raise OurError(...) from exc``), so code above
the adapters only ever sees these types. Whether an error is worth retrying is decided by its
class (the ``retryable`` class attribute), never by matching message text::

    IngestionError
    ├── ConfigError                 bad config.toml / environment / CLI value (fatal at start-up)
    ├── SymbolsError                bad symbols file (start-up: fatal; SIGHUP reload: old list kept)
    ├── UpstreamError               anything from Yahoo
    │   ├── UpstreamTransportError  connection refused/reset, timeout, DNS       (retryable)
    │   ├── UpstreamStatusError     unexpected 4xx HTTP status                     (not retryable)
    │   │   ├── UpstreamServerError 5xx                                            (retryable)
    │   │   ├── RateLimitedError    429, or "Too Many Requests" text               (retryable)
    │   │   └── UpstreamAuthError   401 / bad cookie or crumb -> refresh crumb once (retryable)
    │   ├── UpstreamPayloadError    HTML page, truncated or malformed JSON          (retryable)
    │   │   └── StreamFrameError    one streamer frame that does not decode: skipped (not retryable)
    │   └── CircuitOpenError        the breaker refuses calls for a while
    ├── ServiceUnavailableError     a command's NATS/PostgreSQL/Redis did not answer in time
    ├── QuoteRejectedError          a single quote failed validation (carries the reason)
    ├── RingError                   shared-memory ring misuse (closed, record too large)
    ├── PublishError                NATS JetStream publish/ack failure             (retryable)
    ├── StoreError                  PostgreSQL failure                             (retryable)
    │   └── StoreConfigError        credentials, unknown database, newer schema    (not retryable)
    └── CacheError                  Redis failure                                  (retryable)
"""

from __future__ import annotations


class IngestionError(Exception):
    """Base of every error the engine raises on purpose."""

    retryable: bool = False

    @property
    def kind(self) -> str:
        """Stable, low-cardinality name used as a metric label and log field."""
        return type(self).__name__


class ConfigError(IngestionError):
    """Invalid configuration. The message names the key, the value and what is allowed."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SymbolsError(IngestionError):
    """A symbols file was rejected. ``problems`` lists ``(line, symbol, reason)`` tuples."""

    def __init__(self, message: str, problems: list[tuple[int, str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class UpstreamError(IngestionError):
    """A Yahoo call failed."""

    retryable = True

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class UpstreamTransportError(UpstreamError):
    """Network-level failure: reset, refused, timeout, DNS."""


class UpstreamStatusError(UpstreamError):
    """An HTTP status the client does not expect (a 4xx): not retryable.

    Use :func:`status_error` to pick the class that fits a status.
    """

    retryable = False

    def __init__(self, message: str, *, status: int, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.status = status


class UpstreamServerError(UpstreamStatusError):
    """Yahoo answered a 5xx: its trouble, retryable."""

    retryable = True


def status_error(message: str, *, status: int, url: str | None = None) -> UpstreamStatusError:
    """The :class:`UpstreamStatusError` subclass for an unexpected HTTP ``status``."""
    cls = UpstreamServerError if status >= 500 else UpstreamStatusError
    return cls(message, status=status, url=url)


class RateLimitedError(UpstreamStatusError):
    """Yahoo answered 429 (plain text, usually without Retry-After)."""

    retryable = True

    def __init__(
        self,
        message: str = "Yahoo rate limit (HTTP 429): slow down",
        *,
        retry_after_s: float | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, status=429, url=url)
        self.retry_after_s = retry_after_s


class UpstreamAuthError(UpstreamStatusError):
    """401 with the finance.error envelope (Invalid Crumb / Invalid Cookie): refresh the crumb."""

    retryable = True

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message, status=401, url=url)


class UpstreamPayloadError(UpstreamError):
    """The body is not what the endpoint should return (HTML outage page, truncated JSON, ...)."""


class StreamFrameError(UpstreamPayloadError):
    """One frame of Yahoo's websocket streamer does not decode (not JSON, no base64 ``message``,
    a protobuf that does not parse, no symbol). The frame is skipped and counted; the connection
    stays up. ``reason`` is a short stable label, ``excerpt`` the frame's first characters."""

    retryable = False

    def __init__(self, message: str, *, reason: str, excerpt: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.excerpt = excerpt


class CircuitOpenError(UpstreamError):
    """The circuit breaker is open; the call was not attempted."""

    retryable = False


class ServiceUnavailableError(IngestionError):
    """A service a command needs did not answer within ``cli.service_timeout_s``. The message
    is one line naming the service, its URL (credentials redacted) and what went wrong."""

    def __init__(self, service: str, url: str, reason: str) -> None:
        super().__init__(f"{service} at {url} {reason}")
        self.service = service
        self.url = url
        self.reason = reason


class QuoteRejectedError(IngestionError):
    """One quote failed validation."""

    def __init__(self, symbol: str, reason: str, detail: str = "") -> None:
        super().__init__(f"quote for {symbol!r} rejected: {reason} {detail}".rstrip())
        self.symbol = symbol
        self.reason = reason
        self.detail = detail


class RingError(IngestionError):
    """Misuse of the shared-memory ring (closed segment, oversized write)."""


class PublishError(IngestionError):
    """A JetStream publish was not acknowledged."""

    retryable = True


class StoreError(IngestionError):
    """PostgreSQL write or query failed."""

    retryable = True


class StoreConfigError(StoreError):
    """PostgreSQL refused for a reason waiting cannot fix: wrong credentials, no such database,
    a schema newer than this engine, bad schema files."""

    retryable = False


class CacheError(IngestionError):
    """Redis write or query failed."""

    retryable = True
