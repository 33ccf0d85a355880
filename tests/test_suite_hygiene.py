"""The suite's own rules, checked on its source: one import name per helper module (a module
reached by two names, `support.x` and `tests.support.x`, loads twice and keeps two states), and
one wait helper (tests/support/until.py) instead of a copy per file."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.support.process import ROOT

TESTS = ROOT / "tests"
# Top-level names that only exist because pytest once put tests/ itself on sys.path.
LOCAL_NAMES = {p.stem for p in TESTS.glob("*.py")} | {p.name for p in TESTS.iterdir() if (p / "__init__.py").is_file()}


def sources() -> list[Path]:
    return sorted([*TESTS.rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


def imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_helpers_are_imported_by_one_name_only():
    wrong = [f"{path.relative_to(ROOT)}: {name}" for path in sources()
             for name in imported_modules(ast.parse(path.read_text(), str(path)))
             if name.split(".")[0] in LOCAL_NAMES]
    assert not wrong, "import these as tests.<module>:\n" + "\n".join(wrong)


def test_no_module_of_the_suite_is_loaded_under_two_names():
    files: dict[Path, str] = {}
    twice = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(TESTS):
            other = files.setdefault(Path(path).resolve(), name)
            if other != name:
                twice.append(f"{other} and {name}")
    assert not twice, twice


def test_one_wait_helper():
    helper = TESTS / "support" / "until.py"
    copies = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}" for path in sources() if path != helper
              for node in ast.walk(ast.parse(path.read_text(), str(path)))
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              and node.name.lstrip("_") in {"until", "wait_until", "until_async", "wait_for_condition"}]
    assert not copies, "use tests.support.until instead of:\n" + "\n".join(copies)
