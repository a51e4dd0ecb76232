"""The package stays typed: mypy passes, and every public signature is annotated.

mypy reads its settings from ``[tool.mypy]`` in pyproject.toml, the same a
contributor runs with ``python -m mypy``. The annotation check reads the
source with :mod:`ast`, so it covers modules whose optional dependencies
(rpy2, river, ...) are not installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeforge"

# Dunder methods are part of a protocol, not the API, except these two.
_PUBLIC_DUNDERS = {"__init__", "__call__"}
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@pytest.mark.slow
def test_mypy_passes():
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"


def _is_public(name: str) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return name in _PUBLIC_DUNDERS
    return not name.startswith("_")


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef, bool]]:
    """Yield ``(qualified name, node, is_method)`` for the module's public API."""
    for node in tree.body:
        if isinstance(node, _FUNCTIONS) and _is_public(node.name):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, _FUNCTIONS) and _is_public(item.name):
                    yield f"{node.name}.{item.name}", item, True


def _is_staticmethod(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)


def _missing_annotations(node: ast.FunctionDef, is_method: bool) -> list[str]:
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if is_method and params and params[0].arg in ("self", "cls") and not _is_staticmethod(node):
        params = params[1:]
    missing = [p.arg for p in params if p.annotation is None]
    missing += [f"*{v.arg}" for v in (args.vararg, args.kwarg) if v and v.annotation is None]
    if node.returns is None and node.name != "__init__":
        missing.append("return")
    return missing


def test_public_signatures_are_annotated():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, node, is_method in _public_functions(tree):
            missing = _missing_annotations(node, is_method)
            if missing:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                offenders.append(f"{where} {name}: {', '.join(missing)}")
    if offenders:
        pytest.fail("public signatures without annotations:\n" + "\n".join(offenders))
