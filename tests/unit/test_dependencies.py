"""pyproject.toml declares what the code imports, and nothing else.

Every ``import``/``from ... import`` in the shipped packages (anywhere in a module, lazy
imports inside functions included) is read from the source's AST; each third-party
top-level name is mapped to its distribution with ``importlib.metadata`` and must be
declared in ``[project] dependencies`` or an optional extra. Each distribution declared
there must be imported by some module, unless ``NOT_IMPORTED`` says why not. A
distribution declared only in an optional extra (cleanlab, AGPL-3.0, in ``labels``) must
be imported lazily, inside a function, so the base install imports every module."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    "aggregates",
    "streams",
    "runtime",
    "projections",
    "jobs",
    "gateway",
    "connectors",
    "schemas",
    "sdk",
]
FIRST_PARTY = {*SHIPPED, "datrix"}
# extras of tools and tests, not of the installed product
TOOL_EXTRAS = {"dev"}
# declared though no module imports it: distribution -> why (none today; psycopg-pool
# comes with eventsourcing[postgres], fastexcel is imported by jobs/ingest.py)
NOT_IMPORTED: dict[str, str] = {
    "websockets": "uvicorn's WebSocket protocol (`/v1/ws`); uvicorn imports it",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert found, spec
    return _norm(found.group(1))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_requirement_name(s) for s in project["dependencies"]}
    extras = {
        extra: {_requirement_name(s) for s in specs}
        for extra, specs in project.get("optional-dependencies", {}).items()
    }
    return base, extras


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """Top-level import name -> [(where, imported at module level)]."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            top_level = set(map(id, tree.body))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                for name in names:
                    found.setdefault(name.partition(".")[0], []).append(
                        (where, id(node) in top_level)
                    )
    return found


@functools.cache  # parsing every module is the cost of these tests; they only read it
def _third_party() -> dict[str, list[tuple[str, bool]]]:
    """Distribution (normalised) -> where the shipped code imports it."""
    dists = importlib.metadata.packages_distributions()
    out: dict[str, list[tuple[str, bool]]] = {}
    for name, places in _imports().items():
        if name in FIRST_PARTY or name in sys.stdlib_module_names:
            continue
        assert name in dists, f"{name} (imported at {places[0][0]}) is not installed"
        for dist in dists[name]:
            out.setdefault(_norm(dist), []).extend(places)
    return out


def test_every_imported_package_is_declared() -> None:
    base, extras = _declared()
    runtime_extras = set().union(*(v for k, v in extras.items() if k not in TOOL_EXTRAS))
    undeclared = {
        dist: places[0][0]
        for dist, places in _third_party().items()
        if dist not in base | runtime_extras
    }
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"


def test_nothing_is_declared_that_nothing_imports() -> None:
    base, extras = _declared()
    runtime_extras = set().union(*(v for k, v in extras.items() if k not in TOOL_EXTRAS))
    imported = set(_third_party())
    unused = (base | runtime_extras) - imported - set(NOT_IMPORTED)
    assert unused == set(), f"declared in pyproject.toml but imported nowhere: {unused}"
    # the allow-list stays true: what it excuses is declared and really not imported
    assert set(NOT_IMPORTED) <= base | runtime_extras
    assert set(NOT_IMPORTED).isdisjoint(imported)


def test_optional_extras_are_imported_lazily() -> None:
    """A base install (no extras) must import every module: a distribution only an
    optional extra brings is imported inside the function that needs it."""
    base, extras = _declared()
    optional_only = set().union(*(v for k, v in extras.items() if k not in TOOL_EXTRAS)) - base
    assert "cleanlab" in optional_only  # AGPL-3.0: never in the base install
    eager = {
        dist: [where for where, top in places if top]
        for dist, places in _third_party().items()
        if dist in optional_only
    }
    assert all(not places for places in eager.values()), eager


def test_the_dev_install_includes_the_labels_extra() -> None:
    """The tests run label-quality checks: the dev install brings cleanlab too."""
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    _, extras = _declared()
    assert "cleanlab" in extras["labels"]
    assert "cleanlab" in extras["dev"] or '".[dev,labels]"' in bootstrap
