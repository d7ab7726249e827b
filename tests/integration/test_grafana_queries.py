"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real
``/metrics`` endpoint.

The endpoint is engine.http's server fed through engine.metrics' recording functions with the
values a running engine records (tests/integration/test_http_support.py); Prometheus runs with
the committed configuration and rules, scraping every second.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import metrics
from tests.integration.test_http_support import (
    ROOT,
    FakeSource,
    ServedEngine,
    free_port,
    require_binary,
    wait_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "ingestion.json"
RATE_INTERVAL = "5s"  # Grafana's $__rate_interval at a 1 s scrape interval


def api(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc


def expand(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$instance", ".*")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_binary("prometheus", package="prometheus")
    tmp_path = tmp_path_factory.mktemp("prometheus")
    metrics.reset()
    source = FakeSource(cycles=5)
    with ServedEngine(source, feed_interval_s=0.2) as served:
        port = free_port()
        text = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
        text = re.sub(r"^(\s+scrape_interval:).*$", r"\1 1s", text, flags=re.M)
        text = re.sub(r"^(\s+scrape_timeout:).*$", r"\1 1s", text, flags=re.M)
        text = re.sub(r"^(\s+evaluation_interval:).*$", r"\1 1s", text, flags=re.M)
        engine = served.url.removeprefix("http://")
        text = text.replace('"127.0.0.1:9108"', f'"{engine}"')
        text = text.replace('"127.0.0.1:9093"', f'"127.0.0.1:{free_port()}"')  # nobody there
        (tmp_path / "prometheus.yml").write_text(text)
        (tmp_path / "alerts.yml").write_text(
            (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
        )
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_port(port, 20)
            base = f"http://127.0.0.1:{port}"
            _wait_for_scrapes(base, 3, log)  # the first comes ~5 s after start-up
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    metrics.reset()


def _wait_for_scrapes(base: str, n: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            doc = api(base, "/api/v1/query", query='count_over_time(up{job="ingestion"}[1m])')
            result = doc["data"]["result"]
            up = api(base, "/api/v1/query", query='up{job="ingestion"}')["data"]["result"]
            if result and float(result[0]["value"][1]) >= n and up[0]["value"][1] == "1":
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"Prometheus did not scrape the engine {n} times:\n{log.read_text()}")


def targets() -> list[tuple[str, str, dict[str, Any]]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["refId"], t))
    return out


def test_every_panel_query_returns_data(prometheus: str) -> None:
    empty = []
    now = time.time()
    for title, ref, t in targets():
        expr = expand(t["expr"])
        result = api(prometheus, "/api/v1/query", query=expr)["data"]["result"]
        values = [float(r["value"][1]) for r in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{title} [{ref}] instant: {expr} -> {result}")
            continue
        if not t.get("instant"):
            rng = api(
                prometheus,
                "/api/v1/query_range",
                query=expr,
                start=str(now - 20),
                end=str(now),
                step="1",
            )["data"]["result"]
            if not rng or not any(r["values"] for r in rng):
                empty.append(f"{title} [{ref}] range: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_template_variable_and_table_shape(prometheus: str) -> None:
    doc = json.loads(DASHBOARD.read_text())
    var = next(v for v in doc["templating"]["list"] if v["name"] == "instance")
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
    assert m is not None
    values = api(prometheus, f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1)})
    assert values["data"], "the instance variable would be empty"
    # the failing-symbols table: ten rows with a symbol and a sector column
    table = next(t for title, _, t in targets() if title == "Top 10 failing symbols")
    rows = api(prometheus, "/api/v1/query", query=expand(table["expr"]))["data"]["result"]
    assert len(rows) == 10
    assert all(set(r["metric"]) == {"symbol", "sector"} for r in rows)
    # the freshness heatmap: one series per age bucket, cumulative
    heat = next(t for title, _, t in targets() if title == "Data freshness")
    buckets = api(prometheus, "/api/v1/query", query=expand(heat["expr"]))["data"]["result"]
    by_le = {r["metric"]["le"]: float(r["value"][1]) for r in buckets}
    assert "+Inf" in by_le and len(by_le) >= 5
    assert by_le["+Inf"] == max(by_le.values())
