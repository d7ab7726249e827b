"""/status of a real running engine rendered by headless Chromium: the heatmap of the whole
universe and the failing-symbols table are there.

The engine is ``ingestion-agent run`` against the emulator (tests/integration/real_engine.py),
with symbols the emulator is set up to fail on every cycle. The screenshot and the DOM are kept
under ``test-artifacts/`` (repo root) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.real_engine import FAILING, TOP_FAILING, RealEngine, real_engine
from tests.integration.test_http_support import ROOT

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "test-artifacts"
CYCLES = 4
"""Cycles before rendering: by then only the symbols failing on every cycle lead the table."""
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


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealEngine]:
    if chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    with real_engine(tmp_path_factory.mktemp("status-chromium")) as eng:
        eng.wait_cycles(CYCLES)
        yield eng


def run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


@pytest.mark.timeout(180)
def test_status_page_in_headless_chromium(engine: RealEngine) -> None:
    binary = chromium()
    assert binary is not None
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status.png"
    shot.unlink(missing_ok=True)
    url = engine.url + "/status"

    dom = run_chromium(binary, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    (ARTIFACTS / "status.html").write_text(html)
    assert "<title>Ingestion status</title>" in html
    # the heatmap: every symbol of the universe, by sector
    heatmap = re.search(r'<div id="heatmap">(.*)</div>', html, re.S)
    assert heatmap is not None, "no heatmap in the rendered page"
    sectors = re.findall(r'<div class="sector" data-sector="([^"]+)"', heatmap.group(1))
    assert len(sectors) == len(set(sectors))
    assert set(sectors) == engine.sectors
    assert {"Finance", "Technology", "Health Care", "Unknown"} <= set(sectors)
    cells = re.findall(r'<i class="l(\d)" title="([A-Z0-9.\-]+) ', heatmap.group(1))
    assert len(cells) == len(engine.universe.symbols) > 5000
    assert {s for _, s in cells} == set(engine.universe.symbols)
    level = dict((s, lv) for lv, s in cells)
    assert {level[s] for s in FAILING} == {"4"}, "never quoted"
    assert sum(lv == "0" for lv, _ in cells) > 4000, "most symbols are fresh"
    # the failing-symbols table: ranks 1..10, the symbols made to fail, in order
    table = re.search(r'<table id="failing">(.*?)</table>', html, re.S)
    assert table is not None, "no failing-symbols table in the rendered page"
    rows = re.findall(
        r'<tr><td>(\d+)</td><td class="l">([A-Z0-9.\-]+)</td><td class="l">([^<]+)</td>',
        table.group(1),
    )
    assert [int(r[0]) for r in rows] == list(range(1, 11))
    assert tuple(r[1] for r in rows) == TOP_FAILING
    sector_of = engine.sector_of()
    assert [r[2] for r in rows] == [sector_of[s] for s in TOP_FAILING]
    # the cards: the injected 5xx and resets show as failed requests (after their retries)
    cards = dict(re.findall(r'<div class="card"><small>([^<]+)</small><b>([^<]*)<', html))
    assert float(cards["Request error rate"].rstrip("%")) > 0, cards
    # the breaker badge
    assert re.search(r'<span class="badge (closed|half_open|open)">', html), "no breaker badge"

    res = run_chromium(binary, f"--screenshot={shot}", url)
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a rendered page, not a blank one


def test_artifacts_dir_is_under_the_repo() -> None:
    assert Path(ARTIFACTS).parent == ROOT
