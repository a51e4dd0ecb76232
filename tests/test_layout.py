"""The package layout of docs/architecture.md, held against the code.

The layers and independent rooms are import-linter contracts in
``.importlinter``; a module that imports from a layer above its own (even
inside a function) fails here, so the map cannot drift from the code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: "about 400 lines" is the guide; past this a module holds more than one concept
MAX_LINES = 450


def test_imports_keep_to_the_layers():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is not installed (the test extra has it)"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout
    assert "0 broken" in result.stdout


def test_no_module_grows_past_one_concept():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "pipeforge").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"
