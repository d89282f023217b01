"""The CLI as a person at a terminal runs it: a pseudo-terminal on stdin, stdout and
stderr, so rich draws its progress bars and colours (the pipes of the other tests hide
both). Runs on every CI run; no services needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datrix.jobs.bench.generate import generate
from tests.integration.conftest import DATRIX, Cli
from tests.integration.terminal import run_in_terminal

pytestmark = pytest.mark.integration


def test_demo_in_a_terminal_prints_the_report(cli: Cli) -> None:
    run = run_in_terminal([DATRIX, "demo", "--rows", "300"], cli.env())
    assert "internal error" not in run.text
    assert run.code == 0, run.text[-3000:]
    assert "Datrix quality report" in run.text
    assert "demo v1" in run.text and "300 rows x 50 columns" in run.text
    assert re.search(r"Issues by impact \(\d+\)", run.text)
    assert "state kept in" in run.text


def test_scan_in_a_terminal_shows_its_progress_bar_then_the_report(
    cli: Cli, tmp_path: Path
) -> None:
    generate(2_000, tmp_path / "data", seed=5)
    run = run_in_terminal(
        [DATRIX, "scan", str(tmp_path / "data" / "dirty.csv"), "--name", "customers"], cli.env()
    )
    assert "internal error" not in run.text
    assert run.code == 0, run.text[-3000:]
    # the progress bar was drawn (transient: erased afterwards, but its frames were sent):
    # a phase name, the bar, a done/total count and the elapsed time. Which phases get a
    # frame depends on the machine's speed (rich redraws ten times a second), so any phase
    # will do; the frames before the first phase, whose total is unknown (the crash), too.
    frames = r"[a-z_]+ +[━╺╸]+ *\d[\d,]*/\d[\d,]* +\d:\d\d:\d\d"
    assert re.search(frames, run.text), run.text[:2000]
    assert re.search(r"(starting|ingest) +━+ +\d:\d\d:\d\d", run.text), run.text[:2000]
    assert "Datrix quality report" in run.text
    assert "customers v1" in run.text and "2,000 rows x 50 columns" in run.text
