"""docs/migrating-from-palladium.md names a test for every item: those tests must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "migrating-from-palladium.md"
# `test_x.py::A::b` names a test; a following `::c` is another test of the same file.
REFERENCE = re.compile(r"`(test_\w+\.py)?((?:::\w+)+)`")


def _tests_of(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                    names.add(f"{node.name}::{item.name}")
    return names


def test_every_test_the_checklist_names_exists():
    references, current, last = [], None, ""
    for line in DOC.read_text().splitlines():
        for match in REFERENCE.finditer(line):
            current = match.group(1) or current
            parts = match.group(2).strip(":").split("::")
            if match.group(1) is None and len(parts) == 1 and current and "::" in last:
                parts = [*last.split("::")[:-1], *parts]  # ::b after A::a means A::b
            last = "::".join(parts)
            references.append((current, last))
    assert len(references) > 60
    missing = []
    for file, name in references:
        assert file is not None, name
        if name not in _tests_of(ROOT / "tests" / file):
            missing.append(f"{file}::{name}")
    assert missing == []


def test_checklist_has_no_open_items_and_keeps_the_stored_models_section():
    text = DOC.read_text()
    assert "- [ ]" not in text
    assert "\n## Stored models\n" in text
    items = re.findall(r"^- \[x\].*(?:\n  .*)*", text, flags=re.MULTILINE)  # with continuations
    assert len(items) > 50
    assert [item for item in items if not REFERENCE.search(item)] == []
