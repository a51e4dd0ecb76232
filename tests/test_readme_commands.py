"""The README's first command, run as a newcomer would: set up, fit, test, list, serve."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until(proc, pattern, lines, deadline):
    """Collect output lines until one matches ``pattern``; fail on exit or timeout."""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    pytest.fail(f"no line matching {pattern!r}; output so far:\n{''.join(lines)}")


@pytest.mark.slow
def test_bootstrap_demo_fits_tests_lists_and_serves(tmp_path):
    example = tmp_path / "iris"
    shutil.copytree(
        os.path.join(ROOT, "examples", "iris"), example, ignore=shutil.ignore_patterns("*.db")
    )
    env = dict(
        os.environ,
        VENV=sys.prefix,  # reuse the test environment instead of building a second one
        PORT=str(free_port()),
        EXAMPLE_DIR=str(example),
    )
    env.pop("PIPEFORGE_CONFIG", None)
    proc = subprocess.Popen(
        [os.path.join(ROOT, "bootstrap.sh"), "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        read_until(proc, r"Wrote model with version 1", lines, deadline)
        accuracy = read_until(proc, r"accuracy: (\d\.\d+)", lines, deadline)
        assert 0.9 <= float(accuracy.group(1)) <= 1.0
        read_until(proc, r"version 1 \(active\)", lines, deadline)
        url = read_until(proc, r"curl '([^']+)'", lines, deadline).group(1)

        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.load(response)
            except OSError:
                assert proc.poll() is None, "".join(lines)
                time.sleep(0.3)
        assert body is not None, "the server never answered"
        assert body["metadata"]["status"] == "OK"
        assert body["result"] in {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.stdout.close()
    assert (example / "iris-model.db").exists()


def readme_blocks(language: str) -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def quick_start() -> str:
    """The README's bash block that uses examples/iris/config.py."""
    (snippet,) = [block for block in readme_blocks("bash") if "PIPEFORGE_CONFIG=config.py" in block]
    return snippet


def test_the_readme_shows_the_config_file_it_names():
    (shown,) = readme_blocks("python")
    name = re.match(r"# ([\w/.-]+\.py)", shown).group(1)
    assert name == "examples/iris/config.py"
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        assert shown == f.read()


@pytest.mark.slow
def test_the_readme_quick_start_runs_as_written(tmp_path):
    """The snippet runs unchanged in a copy of the repository with its .venv.

    It runs in a network namespace of its own (``unshare``), so its gunicorn
    gets port 8000 even when something else on the machine listens there.
    """
    snippet = quick_start()
    shutil.copytree(
        os.path.join(ROOT, "examples", "iris"),
        tmp_path / "examples" / "iris",
        ignore=shutil.ignore_patterns("*.db"),
    )
    os.symlink(sys.prefix, tmp_path / ".venv")  # the test environment is the README's .venv
    env = {k: v for k, v in os.environ.items() if not k.endswith("_CONFIG")}
    proc = subprocess.Popen(
        ["unshare", "-rn", "bash", "-c", 'ip link set lo up && exec bash -e -c "$0"', snippet],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a gunicorn the snippet left behind
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, err
    for claim in ("Wrote model with version 1", "accuracy: 0.9600"):
        assert f"# {claim}" in snippet  # what the README says each command prints ...
        assert claim in out.splitlines()  # ... is what it prints
    assert "  version 1 (active)" in out
    answer = json.loads(out.splitlines()[-1])
    assert answer["result"] == "Iris-virginica" and answer["metadata"]["status"] == "OK"


def test_the_tools_the_readme_names_are_installed():
    """``./bootstrap.sh test`` installs the [test] extra, which brings ruff."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        tools = set(re.findall(r"\.venv/bin/([\w-]+)", f.read()))
    assert "ruff" in tools
    for tool in tools:
        assert os.path.isfile(os.path.join(sys.prefix, "bin", tool)), tool
