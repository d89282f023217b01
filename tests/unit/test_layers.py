"""The import contract of docs/architecture.md ("Layout"), declared under
``[tool.importlinter]`` in pyproject.toml: gateway > runtime > jobs | projections >
streams > aggregates, the domain does no I/O, and the SDK (a client over HTTP) imports no
layer of the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["aggregates", "streams", "runtime", "projections", "jobs", "gateway", "sdk"]


def _lint_imports(pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command;"
            " sys.exit(lint_imports_command())",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_code_keeps_the_layer_contract() -> None:
    result = _lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_contract_catches_an_upward_import_and_io_in_the_domain(tmp_path: Path) -> None:
    """The same contract on a tree that breaks it: it must fail, naming both breaks."""
    (tmp_path / "datrix").mkdir()
    (tmp_path / "datrix" / "__init__.py").write_text("")
    for name in PACKAGES:
        (tmp_path / "datrix" / name).mkdir()
        (tmp_path / "datrix" / name / "__init__.py").write_text("")
    # the messaging layer reaching up into the runtime layer
    (tmp_path / "datrix" / "streams" / "codec.py").write_text("import datrix.runtime.embedded\n")
    (tmp_path / "datrix" / "runtime" / "embedded.py").write_text("")
    # jobs and projections are independent
    (tmp_path / "datrix" / "jobs" / "runner.py").write_text(
        "from datrix.projections import store\n"
    )
    (tmp_path / "datrix" / "projections" / "store.py").write_text("")
    # the domain opening a database
    (tmp_path / "datrix" / "aggregates" / "scan.py").write_text("import sqlite3\n")
    # the SDK reaching into the server instead of calling it over HTTP
    (tmp_path / "datrix" / "sdk" / "client.py").write_text("from datrix.gateway import services\n")
    (tmp_path / "datrix" / "gateway" / "services.py").write_text("")

    result = _lint_imports(tmp_path, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 3 broken" in result.stdout
    assert "datrix.streams.codec -> datrix.runtime.embedded" in result.stdout
    assert "datrix.jobs.runner -> datrix.projections.store" in result.stdout
    assert "datrix.aggregates.scan -> sqlite3" in result.stdout
    assert "datrix.sdk.client -> datrix.gateway.services" in result.stdout
