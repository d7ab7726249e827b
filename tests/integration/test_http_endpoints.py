"""engine.observe.http: /healthz, /metrics, /readyz (injected checks), /status, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.config import Config, HttpSettings, PostgresSettings, RedisSettings
from engine.errors import ConfigError
from engine.observe import metrics
from engine.observe.http import Check, HttpServer, default_checks, error_rates, render_status
from engine.source.breaker import BreakerState
from engine.stats import CycleStats, FetchCounts
from tests.integration.test_http_support import FakeSource, record_representative

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


@pytest.fixture(scope="module")
def source() -> FakeSource:
    return FakeSource()


async def ok(timeout_s: float) -> None:
    return None


async def refused(timeout_s: float) -> None:
    raise ConnectionRefusedError("connect to postgresql://app:hunter2@db:5432/x refused")


async def hangs(timeout_s: float) -> None:
    await asyncio.sleep(30)


@pytest.fixture
async def server(source: FakeSource) -> AsyncIterator[HttpServer]:
    config = Config(http=HttpSettings(port=0))
    async with HttpServer.serve(
        config, source, checks={"nats": ok, "postgres": ok, "redis": ok}, check_timeout_s=0.3
    ) as srv:
        yield srv


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


async def test_healthz(server: HttpServer) -> None:
    status, _, body = await get(server.url + "/healthz")
    assert status == 200 and '"status":"ok"' in body


async def test_binds_loopback_by_default() -> None:
    assert HttpSettings().host == "127.0.0.1"


async def test_metrics_text_and_openmetrics(server: HttpServer, source: FakeSource) -> None:
    record_representative(1)
    status, headers, body = await get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert "ingestion_fetch_requests" in fams  # the parser strips _total
    assert "ingestion_quality_symbols_missing" in fams
    assert "ingestion_quality_failing_symbol_missed_cycles" in fams
    top = fams["ingestion_quality_failing_symbol_missed_cycles"].samples
    assert 0 < len(top) <= 10
    assert source.refreshes >= 1  # the gauges read from shared state were refreshed
    assert "ingestion_breaker_state 0.0" in body
    status, headers, body = await get(
        server.url + "/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "# TYPE ingestion_quality_symbol_age_seconds gaugehistogram" in body


async def test_metrics_survive_a_failing_refresh(source: FakeSource) -> None:
    class Broken(FakeSource):
        def refresh_metrics(self) -> None:
            raise RuntimeError("boom")

    broken = Broken.__new__(Broken)
    broken.__dict__.update(source.__dict__)
    async with HttpServer.serve(Config(http=HttpSettings(port=0)), broken, checks={}) as srv:
        status, _, body = await get(srv.url + "/metrics")
    assert status == 200 and "ingestion_quality_symbols" in body


async def test_readyz_all_ok(server: HttpServer) -> None:
    status, _, body = await get(server.url + "/readyz")
    assert status == 200, body
    assert '"status":"ready"' in body and '"breaker":{"status":"ok","detail":"closed"}' in body


@pytest.mark.parametrize(
    ("checks", "failing", "error"),
    [
        ({"nats": refused, "postgres": ok, "redis": ok}, "nats", "ConnectionRefusedError"),
        ({"nats": ok, "postgres": hangs, "redis": ok}, "postgres", "timeout"),
        ({"nats": ok, "postgres": ok, "redis": refused}, "redis", "ConnectionRefusedError"),
    ],
)
async def test_readyz_names_the_failed_dependency_without_secrets(
    source: FakeSource, checks: dict[str, Check | None], failing: str, error: str
) -> None:
    async with HttpServer.serve(
        Config(http=HttpSettings(port=0)), source, checks=checks, check_timeout_s=0.3
    ) as srv:
        status, _, body = await get(srv.url + "/readyz")
    assert status == 503
    assert f'"{failing}":{{"status":"fail","error":"{error}"}}' in body
    assert "hunter2" not in body and "postgresql://" not in body


async def test_readyz_open_breaker_is_not_ready(source: FakeSource) -> None:
    async with HttpServer.serve(Config(http=HttpSettings(port=0)), source, checks={}) as srv:
        source.breaker = BreakerState.OPEN
        try:
            status, _, body = await get(srv.url + "/readyz")
            assert status == 503 and '"detail":"open"' in body
            source.breaker = BreakerState.HALF_OPEN
            status, _, body = await get(srv.url + "/readyz")
            assert status == 200 and '"detail":"half_open"' in body
        finally:
            source.breaker = BreakerState.CLOSED


async def test_readyz_reports_disabled_dependencies_as_skipped(source: FakeSource) -> None:
    config = Config(
        http=HttpSettings(port=0),
        postgres=PostgresSettings(enabled=False),
        redis=RedisSettings(enabled=False),
    )
    checks = default_checks(config)
    assert checks["postgres"] is None and checks["redis"] is None
    checks["nats"] = ok
    async with HttpServer.serve(config, source, checks=checks) as srv:
        status, _, body = await get(srv.url + "/readyz")
    assert status == 200
    assert '"postgres":{"status":"skipped","detail":"disabled"}' in body


async def test_concurrent_probes_share_one_run(source: FakeSource) -> None:
    calls = 0

    async def slow(timeout_s: float) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)

    async with HttpServer.serve(
        Config(http=HttpSettings(port=0)), source, checks={"nats": slow}
    ) as srv:
        results = await asyncio.gather(*(srv.readiness() for _ in range(5)))
    assert calls == 1 and all(r[0] for r in results)


async def test_status_page_and_json(server: HttpServer) -> None:
    status, headers, body = await get(server.url + "/status")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert 'id="heatmap"' in body and 'id="failing"' in body and 'id="cycles"' in body
    assert body.count('data-sector="') >= 12
    assert body.count("<i class=") >= 5000
    status, _, doc = await get(server.url + "/status.json")
    assert status == 200 and '"top_failing":[{' in doc
    status, _, _ = await get(server.url + "/")
    assert status == 200  # redirected to /status


def test_status_page_escapes_and_handles_no_data(source: FakeSource) -> None:
    from engine.observe.http import StatusView

    page = render_status(
        StatusView(
            now=10.0,
            started_at=0.0,
            version="<b>1</b>",
            cycles=[],
            breaker="open",
            rate=None,
            quality=None,
        )
    )
    assert "<b>1</b>" not in page and "&lt;b&gt;1&lt;/b&gt;" in page
    assert "no cycle completed yet" in page and "no failing symbol" in page


async def test_port_in_use_is_a_config_error(server: HttpServer, source: FakeSource) -> None:
    config = Config(http=HttpSettings(port=server.port))
    with pytest.raises(ConfigError, match="cannot listen"):
        async with HttpServer.serve(config, source, checks={}):
            pass


async def test_aclose_is_idempotent(source: FakeSource) -> None:
    srv = HttpServer("127.0.0.1", 0, source, {})
    await srv.start()
    await srv.aclose()
    await srv.aclose()


def test_error_rates_count_failed_requests_not_only_lost_symbols() -> None:
    """A batch request that failed after its retries is an error even when the split halves
    then delivered every symbol (as ``ingestion_fetch_failures_total`` counts it)."""
    a = CycleStats(cycle=1, fetch=FetchCounts(requested=5000, requests=110, failed_requests=10))
    b = CycleStats(cycle=2, fetch=FetchCounts(requested=5000, requests=90, failed_requests=0,
                   failed=50, missing=50, errors={"UpstreamStatusError": 1}))  # fmt: skip
    req, lost = error_rates([a, b])
    assert req == 10 / 200
    assert lost == 100 / 10000
    assert error_rates([]) == (None, None)
