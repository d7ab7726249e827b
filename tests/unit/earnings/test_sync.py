"""When the sync falls back to quoteSummary: only when the calendar endpoint looks broken."""

from __future__ import annotations

import pytest

from engine.earnings.sync import fallback_worthy
from engine.errors import (
    CircuitOpenError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamPayloadError,
    UpstreamServerError,
    UpstreamStatusError,
    UpstreamTransportError,
)


@pytest.mark.parametrize(
    ("exc", "worthy"),
    [
        (UpstreamPayloadError("bad body"), True),
        (UpstreamStatusError("404", status=404), True),
        (UpstreamServerError("502", status=502), True),
        (RateLimitedError(), False),
        (UpstreamAuthError("401"), False),
        (UpstreamTransportError("reset"), False),
        (CircuitOpenError("open"), False),
    ],
)
def test_fallback_only_for_a_broken_endpoint(exc: UpstreamError, worthy: bool) -> None:
    assert fallback_worthy(exc) is worthy
