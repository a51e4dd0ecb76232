"""examples/iris run exactly as its README says, with the installed pf-* scripts."""

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEAVY = ("pandas", "sklearn", "sqlalchemy", "flask", "yaml", "numpy")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def iris(tmp_path):
    """A copy of examples/iris, so runs leave the repository clean."""
    folder = tmp_path / "iris"
    shutil.copytree(
        REPO / "examples" / "iris", folder, ignore=shutil.ignore_patterns("*.db", "*.csv")
    )
    return folder


def sh(script, cwd, **env):
    return subprocess.run(
        ["bash", "-ec", script],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("config", ["config.py", "config.yaml"])
def test_readme_fit_and_test(iris, config):
    result = sh(f"cd iris && export PIPEFORGE_CONFIG={config} && pf-fit && pf-test", iris.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Wrote model with version 1"
    assert lines[1] == "accuracy: 0.9600"
    assert "Traceback" not in result.stderr
    assert (iris / "iris-model.db").exists()


@pytest.mark.slow
def test_readme_walkthrough(iris):
    result = sh(
        "export PIPEFORGE_CONFIG=config.py\n"
        "pf-fit --evaluate\n"
        "pf-fit --no-save\n"
        "pf-test --model-version=1\n"
        "pf-grid-search --save-results=results.csv --persist-best\n"
        "pf-list\n"
        "pf-admin activate 1\n"
        "pf-list --json > listing.json\n"
        'echo \'[{"sepal length": 7.7, "sepal width": 3.0, "petal length": 6.1, '
        '"petal width": 2.3}]\' | pf-stream\n',
        iris,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "score_test: 0.9600" in out and "Wrote model with version 1" in out
    assert "Model not stored (--no-save)" in out
    assert "accuracy: 0.9600" in out
    assert "Best parameters" in out and "Wrote model with version 2" in out
    assert "version 2 (active)" in out and "Activated model version 1" in out
    assert out.rstrip().endswith('["Iris-virginica"]')
    listing = json.loads((iris / "listing.json").read_text())
    assert listing["properties"]["active-model"] == "1"
    assert (iris / "results.csv").exists()


@pytest.mark.slow
def test_scripts_run_from_another_directory(iris, tmp_path):
    """iris.data and the model database are both taken from the config's folder."""
    work = tmp_path / "work"
    work.mkdir()
    result = sh("pf-fit && pf-test", work, PIPEFORGE_CONFIG=str(iris / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "accuracy: 0.9600" in result.stdout
    assert (iris / "iris-model.db").exists()
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_installed_script_errors_are_one_line(iris):
    result = sh("pf-test --model-version=3", iris, PIPEFORGE_CONFIG="config.py")
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith("pf-test: error: no model with version 3")
    )
    assert "Traceback" not in result.stderr
    result = sh("pf-list", iris, PIPEFORGE_CONFIG="missing.py")
    assert result.returncode == 2
    assert result.stderr.startswith("pf-list: error: missing.py")
    assert len(result.stderr.strip().splitlines()) == 1
    result = sh("pf-list --debug", iris, PIPEFORGE_CONFIG="missing.py")
    assert result.returncode == 1 and "Traceback" in result.stderr


@pytest.mark.slow
def test_progress_on_a_terminal_only(iris):
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            ["pf-fit", "--evaluate"],
            cwd=iris,
            env=_env(PIPEFORGE_CONFIG="config.py"),
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=120,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    assert proc.returncode == 0
    terminal = b"".join(chunks).decode()
    for stage in ("... loading training data", "... fitting", "... evaluating", "... saving"):
        assert stage in terminal
    piped = sh("pf-fit", iris, PIPEFORGE_CONFIG="config.py")
    assert piped.returncode == 0 and "..." not in piped.stderr


def test_pf_version_is_fast_and_light():
    probe = (
        "import sys\n"
        "from pipeforge.cli.scripts import version_main\n"
        "code = version_main([])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env()
    )
    assert result.returncode == 0, result.stderr
    version, loaded = result.stdout.splitlines()
    assert loaded == "[] 0"
    installed = subprocess.run(["pf-version"], capture_output=True, text=True, env=_env())
    assert installed.returncode == 0 and installed.stdout.strip() == version


@pytest.mark.slow
def test_store_scripts_build_only_the_model_persister(iris):
    """pf-list, pf-admin and pf-upgrade never import what the model and the loaders need."""
    assert sh("pf-fit", iris, PIPEFORGE_CONFIG="config.py").returncode == 0
    probe = (
        "import sys\n"
        "from pipeforge.cli.scripts import admin_main, list_main, upgrade_main\n"
        "codes = [list_main([]), admin_main(['activate', '1']), upgrade_main([])]\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'scipy', 'numpy', 'flask')"
        " if m in sys.modules), codes)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=iris,
        capture_output=True,
        text=True,
        env=_env(PIPEFORGE_CONFIG="config.py"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  version 1 (active)" in "\n".join(lines)
    assert "Activated model version 1" in lines
    assert lines[-1] == "[] [0, 0, 0]"
