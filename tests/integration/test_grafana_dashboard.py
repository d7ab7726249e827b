"""The Grafana dashboard: generated from code, type-checked against @grafana/schema with tsc,
provisioned, and it has the panels the issue asks for."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from testkit import load_script
from tests.integration.test_http_support import ROOT

pytestmark = pytest.mark.integration

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "ingestion.json"
CHECK = GRAFANA / "check"
CHECK_FILES = ("package.json", "package-lock.json", "tsconfig.json", "types.ts", "make-check.mjs")


def generator() -> ModuleType:
    return load_script(GRAFANA / "generate_dashboard.py", "generate_dashboard")


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def test_dashboard_json_is_up_to_date() -> None:
    assert DASHBOARD.read_text() == generator().render(), (
        "deploy/grafana/dashboards/ingestion.json differs from generate_dashboard.py: "
        "run python deploy/grafana/generate_dashboard.py"
    )


def test_dashboard_has_the_required_panels() -> None:
    panels = {p["title"]: p for p in dashboard()["panels"] if p["type"] != "row"}
    required = {
        "Symbols ingested per minute": "timeseries",
        "Error rate": "timeseries",
        "Fetch latency": "timeseries",
        "Data freshness": "heatmap",
        "Top 10 failing symbols": "table",
        "Breaker state": "timeseries",
        "Breaker": "stat",
        "Rate-limit headroom": "timeseries",
        "Cycle duration": "timeseries",
        "DLQ and outbox depth": "timeseries",
        "Missing symbols by sector": "status-history",
    }
    for title, kind in required.items():
        assert title in panels, title
        assert panels[title]["type"] == kind, title
    legends = {t["legendFormat"] for t in panels["Fetch latency"]["targets"]}
    assert legends == {"p50", "p95", "p99"}
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard()["panels"]:  # nothing overlaps, everything fits the 24-column grid
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24


def test_queries_use_bounded_selectors() -> None:
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            assert 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_provisioning() -> None:
    ds = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "type: prometheus" in ds and "apiVersion: 1" in ds
    prov = (GRAFANA / "provisioning" / "dashboards" / "ingestion.yml").read_text()
    assert "type: file" in prov and "path: /var/lib/grafana/dashboards/ingestion" in prov
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def _check_dir() -> Path:
    """A throwaway copy of deploy/grafana/check with node_modules installed (npm ci), cached in
    the temp dir by lockfile hash so later runs skip the install."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (CI has node and npm)")
    digest = hashlib.sha256((CHECK / "package-lock.json").read_bytes()).hexdigest()[:16]
    work = Path(tempfile.gettempdir()) / f"ingestion-grafana-check-{digest}"
    work.mkdir(exist_ok=True)
    for name in CHECK_FILES:
        shutil.copy2(CHECK / name, work / name)
    if not (work / "node_modules" / "typescript" / "bin" / "tsc").exists():
        res = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return work


def _tsc(work: Path, dashboard_file: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None
    gen = subprocess.run(
        [node, "make-check.mjs", str(dashboard_file)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr
    return subprocess.run(
        [node, "node_modules/typescript/bin/tsc", "-p", "."],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dashboard_type_checks_against_grafana_schema(tmp_path: Path) -> None:
    work = _check_dir()
    res = _tsc(work, DASHBOARD)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    # the check has teeth: a wrong enum value and an unknown option key are both errors
    bad = dashboard()
    panel = next(p for p in bad["panels"] if p["type"] == "timeseries")
    panel["options"]["tooltip"]["mode"] = "multiple"
    table = next(p for p in bad["panels"] if p["type"] == "table")
    table["options"]["showHeadr"] = True
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(bad))
    res = _tsc(work, broken)
    assert res.returncode != 0
    assert '"multiple"' in res.stdout and "showHeadr" in res.stdout
