"""Datrix installs under one namespace, ``datrix.*`` (docs/architecture.md, "Layout"):
the repository's top-level folders are reached as ``datrix.<folder>`` through the
symlinks in ``datrix/``, and no module names a folder as a top-level package.

import-linter (tests/unit/test_layers.py) cannot catch ``import jobs``: with the root
package ``datrix`` a bare ``jobs`` is just an unknown external name to it. So this reads
every module's imports and string constants from the AST."""

from __future__ import annotations

import ast
import os
import re
import tomllib
from pathlib import Path

import datrix

ROOT = Path(__file__).resolve().parents[2]
# every top-level package folder of the repository is shipped as datrix.<folder>
FOLDERS = sorted(
    p.name
    for p in ROOT.iterdir()
    if p.is_dir()
    and not p.is_symlink()
    and (p / "__init__.py").is_file()
    and p.name not in {"tests", "datrix"}
)
SKIP = {".git", ".venv", "build", "dist", ".datrix", "__pycache__", "datrix", "bench-data"}


def _python_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP and not d.endswith(".egg-info")]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(found)


def _old_modules() -> set[str]:
    """The dotted names the folders' modules had as top-level packages."""
    names = set()
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_no_module_imports_a_folder_as_a_top_level_package() -> None:
    old = _old_modules()
    found = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # monkeypatch targets, ``python -m`` names, entry points: "jobs.quality.x"
                value = node.value.partition(":")[0]
                parts = value.split(".")
                if re.fullmatch(r"[A-Za-z_][\w.]*", value) and any(
                    ".".join(parts[:k]) in old for k in range(len(parts), 1, -1)
                ):
                    found.append(f"{where}:{node.lineno}: {node.value!r}")
                continue
            else:
                continue
            found += [
                f"{where}:{node.lineno}: imports {n}"
                for n in names
                if n.partition(".")[0] in FOLDERS
            ]
    assert found == [], "use datrix.<folder>:\n" + "\n".join(found)


def test_every_folder_is_linked_into_the_package() -> None:
    assert {"aggregates", "streams", "jobs", "gateway", "schemas", "sdk"} <= set(FOLDERS)
    for folder in FOLDERS:
        link = ROOT / "datrix" / folder
        assert link.is_symlink(), f"datrix/{folder} must be a symlink to ../{folder}"
        assert Path(os.readlink(link)) == Path("..") / folder
    # nothing else is in datrix/ but the package's own files (async_client.py: the SDK's
    # async client at the seeds' import path, `from datrix.async_client import AsyncDatrix`)
    own = {"__init__.py", "py.typed", "async_client.py"}
    extra = {p.name for p in (ROOT / "datrix").iterdir()} - {*FOLDERS, *own}
    assert extra <= {"__pycache__"}, extra


def test_this_checkout_is_the_one_imported() -> None:
    """Another checkout's editable install must not supply the modules under test."""
    import datrix.jobs

    assert Path(datrix.__file__).resolve() == ROOT / "datrix" / "__init__.py"
    assert Path(datrix.jobs.__file__).resolve() == ROOT / "jobs" / "__init__.py"


def test_pyproject_ships_only_the_datrix_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert setuptools["packages"] == {"find": {"include": ["datrix*"]}}
    assert set(setuptools["package-data"]) == {"datrix.schemas"}
    assert config["project"]["scripts"] == {"datrix": "datrix.gateway.cli:main"}
    assert config["tool"]["importlinter"]["root_packages"] == ["datrix"]
    assert datrix.__doc__
