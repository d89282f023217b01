"""cleanlab (AGPL-3.0) is the optional ``datrix[labels]`` extra. Without it, ``datrix scan
--label`` ends with one line saying how to install it (exit 2, nothing recorded), scans
without ``--label`` work, and a job that still meets the missing package (a worker
installed without the extra) fails with the same advice.

cleanlab is made uninstalled for the real CLI in a subprocess: a ``sitecustomize`` on
PYTHONPATH swaps the path finder for one that does not find ``cleanlab``, so its import
fails with ``No module named 'cleanlab'`` and ``importlib.util.find_spec`` says None,
exactly as in an environment where it was never installed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

SITECUSTOMIZE = """
import sys
from importlib.machinery import PathFinder


class _WithoutCleanlab(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] == "cleanlab":
            return None
        return PathFinder.find_spec(fullname, path, target)


sys.meta_path[:] = [_WithoutCleanlab if f is PathFinder else f for f in sys.meta_path]
"""


@dataclass
class CliWithoutCleanlab(Cli):
    hide: Path | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        assert self.hide is not None
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(self.hide), env.get("PYTHONPATH", "")] if p
        )
        return env


@pytest.fixture
def bare(tmp_path: Path) -> CliWithoutCleanlab:
    hide = tmp_path / "without-cleanlab"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return CliWithoutCleanlab(tmp_path / "home", hide=hide)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.csv"
    rows = [f"{i},{i % 7},{'a' if i % 2 else 'b'}" for i in range(200)]
    path.write_text("x,z,y\n" + "\n".join(rows) + "\n")
    return path


def test_the_stub_really_hides_cleanlab(bare: CliWithoutCleanlab) -> None:
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('cleanlab') is None\n"
        "try:\n    import cleanlab\nexcept ModuleNotFoundError as e:\n    print(e)\n"
        "else:\n    sys.exit('cleanlab imported')\n"
        "import polars, sklearn\n"  # everything else still imports
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=bare.env(), check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "No module named 'cleanlab'"


def test_label_without_cleanlab_says_how_to_install_it(
    bare: CliWithoutCleanlab, labelled: Path
) -> None:
    run = bare("scan", str(labelled), "--label", "y")
    assert run.code == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("datrix: --label: ")
    assert "cleanlab" in lines[0]
    assert "pip install 'datrix[labels]'" in lines[0]
    assert "Traceback" not in run.stderr
    # refused before anything was recorded
    assert bare("datasets", "--format", "json").json() == []


def test_scans_without_label_need_no_cleanlab(bare: CliWithoutCleanlab, labelled: Path) -> None:
    run = bare("scan", str(labelled), "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["label_column"] is None
    assert doc["score"]["label_quality"] is None


def test_a_job_without_cleanlab_fails_with_the_same_advice(bare: CliWithoutCleanlab) -> None:
    """Where the check up front cannot see it (a worker without the extra), the label
    step raises LabelsUnavailable before fitting anything, naming the extra."""
    code = (
        "import polars as pl\n"
        "from datrix.jobs.quality.labels import LabelsUnavailable, find_label_issues\n"
        "frame = pl.DataFrame({'x': list(range(200)), 'y': ['a', 'b'] * 100})\n"
        "try:\n    find_label_issues(frame, 'y')\n"
        "except LabelsUnavailable as exc:\n    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=bare.env(), check=False
    )
    assert run.returncode == 0, run.stderr
    assert "pip install 'datrix[labels]'" in run.stdout
    assert "No module named 'cleanlab'" in run.stdout
