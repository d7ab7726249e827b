"""/status rendered by headless Chromium: the heatmap and the failing-symbols table are there.

The screenshot and the DOM are kept under ``test-artifacts/`` (repo root) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import metrics
from tests.integration.test_http_support import ROOT, FakeSource, ServedEngine

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1400,2200",
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def served() -> Iterator[ServedEngine]:
    metrics.reset()
    source = FakeSource()
    source.breaker = "half_open"
    with ServedEngine(source, feed_interval_s=None) as s:
        yield s
    metrics.reset()


def run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


def test_status_page_in_headless_chromium(served: ServedEngine) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status.png"
    shot.unlink(missing_ok=True)
    url = served.url + "/status"

    dom = run_chromium(binary, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    (ARTIFACTS / "status.html").write_text(html)
    assert "<title>Ingestion status</title>" in html
    heatmap = re.search(r'<div id="heatmap">(.*)</div>', html, re.S)
    assert heatmap is not None, "no heatmap in the rendered page"
    sectors = re.findall(r'<div class="sector" data-sector="([^"]+)"', heatmap.group(1))
    assert {"Finance", "Technology", "Health Care"} <= set(sectors)
    cells = re.findall(r'<i class="l(\d)" title="([A-Z0-9.\-]+) ', heatmap.group(1))
    assert len(cells) == len(served.source.symbols) == 5000
    assert {lv for lv, _ in cells} >= {"0", "2", "3", "4"}  # fresh, missing, stale, never
    table = re.search(r'<table id="failing">(.*?)</table>', html, re.S)
    assert table is not None, "no failing-symbols table in the rendered page"
    rows = re.findall(r"<tr><td>(\d+)</td><td class=\"l\">([A-Z0-9.\-]+)</td>", table.group(1))
    assert [int(r[0]) for r in rows] == list(range(1, 11))
    expected = served.source.quality()
    assert expected is not None
    assert [r[1] for r in rows] == [f.symbol for f in expected.top_failing]
    assert 'class="badge half_open"' in html

    res = run_chromium(binary, f"--screenshot={shot}", url)
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a rendered page, not a blank one


def test_artifacts_dir_is_under_the_repo() -> None:
    assert Path(ARTIFACTS).parent == ROOT
