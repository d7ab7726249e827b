"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real
running engine.

The engine is ``ingestion-agent run`` against the emulator with faults (tests/integration/
real_engine.py: symbols that fail on every cycle, 5xx answers and resets, invalid quotes, the
earnings job's start-up sync) and its JetStream on a private nats-server that is taken down once,
so that the publisher uses its outbox for real. Prometheus runs with the committed configuration
and rules (scrape and evaluation every second instead of 10-15 s).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import free_port, wait_port
from tests.integration.real_engine import TOP_FAILING, RealEngine, real_engine
from tests.integration.test_http_support import (
    ROOT,
    process,
    require_binary,
)

# one worker runs the module (make test): its Prometheus + engine fixture starts once
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("grafana_queries")]

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "ingestion.json"
RATE_INTERVAL = "5s"  # Grafana's $__rate_interval at a 1 s scrape interval


def api(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc


def query(base: str, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(base, "/api/v1/query", query=expr)["data"]["result"]
    return result


def expand(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$instance", ".*")


def prometheus_config(directory: Path, engine: str) -> Path:
    """The committed prometheus.yml and alerts.yml, scraping ``engine`` every second."""
    text = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    text = re.sub(r"^(\s+scrape_interval:).*$", r"\1 1s", text, flags=re.M)
    text = re.sub(r"^(\s+scrape_timeout:).*$", r"\1 1s", text, flags=re.M)
    text = re.sub(r"^(\s+evaluation_interval:).*$", r"\1 1s", text, flags=re.M)
    assert '"127.0.0.1:9108"' in text
    text = text.replace('"127.0.0.1:9108"', f'"{engine}"')
    text = text.replace('"127.0.0.1:9093"', f'"127.0.0.1:{free_port()}"')  # nobody there
    (directory / "prometheus.yml").write_text(text)
    (directory / "alerts.yml").write_text(
        (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    )
    return directory / "prometheus.yml"


def wait_prometheus(
    base: str, expr: str, ok: Callable[[list[dict[str, Any]]], bool], log: Path, timeout: float
) -> None:
    """Poll ``expr`` until ``ok(result)`` (Prometheus's state cannot be subscribed to)."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = query(base, expr)
            if ok(result):
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"Prometheus: {expr} -> {result} after {timeout}s\n{log.read_text()}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RealEngine]]:
    binary = require_binary("prometheus", package="prometheus")
    tmp = tmp_path_factory.mktemp("grafana-queries")
    (tmp / "engine").mkdir()
    engine_port, port = free_port(), free_port()
    config = prometheus_config(tmp, f"127.0.0.1:{engine_port}")
    log = tmp / "prometheus.log"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    base = f"http://127.0.0.1:{port}"
    # Prometheus first: its TSDB takes a few seconds to open
    with (
        process(argv, log),
        real_engine(tmp / "engine", port=engine_port, own_nats=True) as engine,
    ):
        wait_port(port, 20)
        wait_prometheus(base, 'up{job="ingestion"} == 1', bool, log, timeout=30)
        engine.wait_cycles(1)
        # NATS down until Prometheus has seen the outbox hold messages, then up again
        engine.nats_outage(
            lambda: wait_prometheus(
                base,
                'ingestion_outbox_depth_messages{job="ingestion"} > 0',
                bool,
                log,
                timeout=30,
            )
        )
        engine.wait_earnings_sync()
        # the publisher reads the DLQ depth every 15 s: the rejections of the first cycles
        wait_prometheus(
            base,
            'ingestion_dlq_depth_messages{job="ingestion"} > 0',
            bool,
            log,
            timeout=40,
        )
        # two more cycles, and 5 s of scrapes after them: every rate window holds them
        engine.wait_cycles(len(engine.engine.named("cycle_completed")) + 2)
        after = time.time() + 5
        wait_prometheus(
            base,
            'timestamp(up{job="ingestion"} == 1)',
            lambda r: bool(r) and float(r[0]["value"][1]) >= after,
            log,
            timeout=20,
        )
        yield base, engine


def targets() -> list[tuple[str, str, dict[str, Any]]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["refId"], t))
    return out


@pytest.mark.timeout(120)
def test_every_panel_query_returns_data(prometheus: tuple[str, RealEngine]) -> None:
    base, _ = prometheus
    empty = []
    now = time.time()
    for title, ref, t in targets():
        expr = expand(t["expr"])
        result = query(base, expr)
        values = [float(r["value"][1]) for r in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{title} [{ref}] instant: {expr} -> {result}")
            continue
        if not t.get("instant"):
            rng = api(
                base,
                "/api/v1/query_range",
                query=expr,
                start=str(now - 20),
                end=str(now),
                step="1",
            )["data"]["result"]
            if not rng or not any(r["values"] for r in rng):
                empty.append(f"{title} [{ref}] range: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.timeout(60)
def test_faults_show_in_the_series(prometheus: tuple[str, RealEngine]) -> None:
    """The emulator's faults and the outage reached the series (not just zero-valued ones)."""
    base, _ = prometheus
    for expr in (
        'sum(ingestion_fetch_failures_total{job="ingestion"})',
        'sum(ingestion_fetch_retries_total{job="ingestion"})',
        'sum(ingestion_quotes_rejected_total{job="ingestion", reason="not_traded"})',
        'sum(ingestion_messages_total{job="ingestion", outcome="dead_lettered"})',
        'sum(ingestion_messages_total{job="ingestion", outcome="outboxed"})',
        'max_over_time(ingestion_outbox_depth_messages{job="ingestion"}[5m])',
        'max(ingestion_dlq_depth_messages{job="ingestion"})',
        'sum(ingestion_earnings_syncs_total{job="ingestion", outcome="ok"})',
    ):
        result = query(base, expr)
        assert result and float(result[0]["value"][1]) > 0, f"{expr} -> {result}"


@pytest.mark.timeout(60)
def test_template_variable_and_table_shape(prometheus: tuple[str, RealEngine]) -> None:
    base, engine = prometheus
    doc = json.loads(DASHBOARD.read_text())
    var = next(v for v in doc["templating"]["list"] if v["name"] == "instance")
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
    assert m is not None
    values = api(base, f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1)})
    assert values["data"], "the instance variable would be empty"
    # the failing-symbols table: ten rows with a symbol and a sector column, the symbols the
    # emulator was set up to fail on every cycle
    table = next(t for title, _, t in targets() if title == "Top 10 failing symbols")
    rows = query(base, expand(table["expr"]))
    assert len(rows) == 10
    assert all(set(r["metric"]) == {"symbol", "sector"} for r in rows)
    sector_of = engine.sector_of()
    assert {r["metric"]["symbol"]: r["metric"]["sector"] for r in rows} == {
        s: sector_of[s] for s in TOP_FAILING
    }
    # the freshness heatmap: one series per age bucket, cumulative
    heat = next(t for title, _, t in targets() if title == "Data freshness")
    buckets = query(base, expand(heat["expr"]))
    by_le = {r["metric"]["le"]: float(r["value"][1]) for r in buckets}
    assert "+Inf" in by_le and len(by_le) >= 5
    assert by_le["+Inf"] == max(by_le.values()) > 0
