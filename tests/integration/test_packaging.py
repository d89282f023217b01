"""``pip install .`` adds one package, ``datrix``, to site-packages (issue 8): the
repository's folders (jobs, streams, gateway, schemas, ...) are installed as
``datrix.<folder>``, never as generic top-level names that collide with other
distributions; ``datrix demo`` runs from such an install, outside the checkout.

Offline by design: the wheel is built with the environment's setuptools
(``--no-build-isolation --no-index``; the dev extra declares ``setuptools>=77``), from a
copy of what the Dockerfile copies, so the checkout gets no ``build/`` or egg-info. The
fresh venv gets its dependencies from a folder of symlinks to what this interpreter
imports beyond the standard library (site-packages, folders .pth files add), minus this
environment's own datrix (dist-info, editable finder) and the checkout, listed in a
``.pth`` file: nothing is downloaded, and the install under test is the only datrix the
venv can import (``datrix.__file__`` is checked)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

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
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert run.returncode == 0, f"{args}: {run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "datrix", src / "datrix", symlinks=True, ignore=ignore)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        tmp / "dist",
        src,
    )
    [built] = (tmp / "dist").glob("datrix-*.whl")
    return built


def test_the_wheel_holds_only_the_datrix_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"datrix-{VERSION}.dist-info/"
    outside = [n for n in names if not n.startswith(("datrix/", dist_info))]
    assert outside == [], outside
    # every module of every folder is shipped under datrix/, and the Avro contracts too
    expected = {
        f"datrix/{p.relative_to(ROOT).as_posix()}"
        for folder in FOLDERS
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".avsc") and "__pycache__" not in p.parts
    }
    assert expected - set(names) == set()
    assert any(n.startswith("datrix/schemas/avro/") and n.endswith(".avsc") for n in names)
    assert "datrix/__init__.py" in names and "datrix/py.typed" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}entry_points.txt").decode()
    assert "datrix = datrix.gateway.cli:main" in entry_points


def _deps_without_datrix(into: Path) -> Path:
    """What this interpreter imports from beyond the standard library (its site-packages,
    and folders that .pth files add), as symlinks, minus its own datrix install and the
    checkout itself."""
    # the standard library and lib-dynload, but not site-packages: in a venv "platstdlib"
    # is the venv's lib/python3.X, the parent of its site-packages
    stdlib = {Path(sysconfig.get_path(k)).resolve() for k in ("stdlib", "platstdlib")}
    sites = {Path(p).resolve() for p in site.getsitepackages()}
    scripts = Path(sysconfig.get_path("scripts")).resolve()
    into.mkdir()
    for entry in sys.path:
        where = Path(entry or ".").resolve()
        if not where.is_dir() or where in (ROOT, scripts):
            continue  # scripts: pytest's own folder when run as .venv/bin/pytest
        if where not in sites and (where in stdlib or where.parent in stdlib):
            continue
        for item in where.iterdir():
            name = item.name
            if name.startswith(("datrix", "__editable__")) or name.endswith(".pth"):
                continue
            if not (into / name).exists():
                (into / name).symlink_to(item)
    return into


def test_an_install_adds_only_datrix_and_the_demo_runs_from_it(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    deps = _deps_without_datrix(tmp_path / "deps")
    (purelib / "_deps_for_test.pth").write_text(f"{deps}\n")
    before = set(os.listdir(purelib))

    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
    )

    assert set(os.listdir(purelib)) - before == {"datrix", f"datrix-{VERSION}.dist-info"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATRIX_", "PYTHON"))}
    env["DATRIX_HOME"] = str(tmp_path / "home")
    probe = _run(
        python,
        "-c",
        "import datrix, datrix.jobs, importlib.util;"
        " from datrix import Datrix; from datrix.async_client import AsyncDatrix;"
        " print(datrix.__file__);"
        " print([n for n in ('jobs', 'streams', 'gateway', 'schemas')"
        " if importlib.util.find_spec(n)])",
        cwd=elsewhere,
        env=env,
    )
    where, bare = probe.stdout.splitlines()
    assert Path(where) == purelib / "datrix" / "__init__.py"
    assert bare == "[]"
    version = _run(venv / "bin" / "datrix", "--version", cwd=elsewhere, env=env)
    assert VERSION in version.stdout
    demo = _run(venv / "bin" / "datrix", "demo", "--rows", "500", cwd=elsewhere, env=env)
    assert "Datrix quality report" in demo.stdout
    assert "exact_duplicates" in demo.stdout
    assert not (elsewhere / ".datrix").exists()  # DATRIX_HOME was used, nothing in cwd
