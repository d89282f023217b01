"""The HTML report renders in a real browser: headless Chromium loads the page from disk
(with every background network feature off), and the DOM it dumps holds the title, the
overall score, every issue and an SVG chart per numeric column. A screenshot is taken too.

``scripts/ensure-chromium`` installs Chromium when it is missing; a failed install fails
the test (it is not skipped).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from datrix.gateway.html_report import render_html
from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport

pytestmark = pytest.mark.integration

ENSURE_CHROMIUM = Path(__file__).resolve().parents[2] / "scripts" / "ensure-chromium"
TITLE = "Customers <2026> & co"  # needs escaping
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScanReport, Path]:
    out = tmp_path_factory.mktemp("html-report")
    generate(5_000, out, seed=7)
    parquet = out / "dirty.parquet"
    report = PolarsScanEngine().scan(parquet, ScanOptions())
    page = out / "report.html"
    page.write_text(render_html(report, parquet, TITLE), encoding="utf-8")
    return report, page


@pytest.fixture(scope="module")
def chromium() -> str:
    done = subprocess.run(
        [str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"ensure-chromium failed:\n{done.stdout}\n{done.stderr}"
    path = done.stdout.strip().splitlines()[-1]
    assert Path(path).is_file(), path
    return path


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_source_is_self_contained(rendered: tuple[ScanReport, Path]) -> None:
    _, page = rendered
    source = page.read_text(encoding="utf-8")
    assert source.startswith("<!DOCTYPE html>")
    assert "http://" not in source
    assert "https://" not in source
    assert "<script" not in source.lower()
    assert "<link" not in source.lower()
    assert "Customers &lt;2026&gt; &amp; co" in source
    assert "<2026>" not in source


def test_page_renders_in_chromium(
    rendered: tuple[ScanReport, Path], chromium: str, tmp_path: Path
) -> None:
    report, page = rendered
    url = page.resolve().as_uri()

    dumped = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-4000:]
    dom = dumped.stdout
    assert "Customers &lt;2026&gt; &amp; co" in dom  # title, escaped, in the header
    score = f"{report.score.overall:.1f}"
    assert re.search(rf'class="overall-score"[^>]*>{re.escape(score)}<', dom), score
    assert report.issues, "the generated data should have issues"
    for issue in report.issues:
        assert f'id="issue-{issue.id}"' in dom, issue.id
    numeric = [p for p in report.column_profiles if p.type in ("integer", "float")]
    assert numeric
    assert dom.count("<svg") >= len(numeric)
    assert dom.count('class="hist"') == len(numeric)
    dated = [p for p in report.column_profiles if p.extra.get("histogram")]
    assert dated  # the generator's ISO date columns, typed at scan time
    assert dom.count('class="hist time"') == len(dated)
    assert 'class="nullmatrix"' in dom
    sampled = [i for i in report.issues if i.type in ("exact_duplicates", "outliers")]
    for issue in sampled:
        assert f'id="sample-{issue.id}"' in dom, issue.id

    shot = tmp_path / "page.png"
    taken = _chromium(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        url,
    )
    assert taken.returncode == 0, taken.stderr[-4000:]
    assert shot.is_file()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
