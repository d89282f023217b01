"""scripts/bootstrap (what `make demo` runs first) prints one line of progress and keeps
pip's output, setuptools' editable-install warnings included, in .venv/install.log; the
log's tail is shown only when the install fails. Run on a copy of the script with a stub
.venv/bin/python that prints like pip and setuptools do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUB = """#!/usr/bin/env bash
echo "Successfully installed pip ($*)"
echo "SetuptoolsDeprecationWarning: editable installation" >&2
echo "!!  ********************************  !!" >&2
[ -z "${FAIL:-}" ] || { echo "ERROR: No matching distribution found for polars"; exit 1; }
"""


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB)
    python.chmod(0o755)
    return tmp_path


def _bootstrap(root: Path, fail: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **({"FAIL": "1"} if fail else {})}
    return subprocess.run(
        [str(root / "scripts" / "bootstrap")], capture_output=True, text=True, env=env, check=False
    )


def test_install_prints_one_line_and_hides_pip_output(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    first = _bootstrap(root)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert first.stderr == "installing Datrix into .venv (first run: a few minutes)…\n"
    log = (root / ".venv" / "install.log").read_text()
    assert "editable installation" in log and "Successfully installed" in log
    again = _bootstrap(root)  # installed: nothing to do, nothing printed
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_failed_install_shows_the_logs_tail(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    run = _bootstrap(root, fail=True)
    assert run.returncode == 1
    assert "installing Datrix failed; the end of .venv/install.log:" in run.stderr
    assert "No matching distribution found for polars" in run.stderr
    assert not (root / ".venv" / ".datrix-installed").exists()
