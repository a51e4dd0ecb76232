"""docs/protocols.md runs as written: its config, its curl commands, its Python clients.

examples/iris is copied, the page's YAML block appended to its
config.yaml, the model fitted with the page's ``pf-fit`` and served by the
page's gunicorn command (on a free port instead of 8000). Then every bash
block and every Python block of the page runs against it, unchanged but for
the port, and what the page says they print is what they print.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.gunicorn import ROOT, _wait_for_url, stop_process

DOC = ROOT / "docs" / "protocols.md"


def blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEFORGE_", "PALLADIUM_"))}
    env["PIPEFORGE_CONFIG"] = str(config)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(port, config)``: examples/iris with the page's config, fitted and served as it says."""
    folder = tmp_path_factory.mktemp("protocols") / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns("*.db"))
    config = folder / "config.yaml"
    switch = next(block for block in blocks("yaml") if block.startswith("inference_protocol:"))
    assert yaml.safe_load(switch)["inference_protocol"]["names"] == {"predict_service": "iris"}
    config.write_text(config.read_text() + "\n" + switch)
    fit_line, serve_line = blocks("bash")[0].strip().splitlines()
    done = subprocess.run(
        shlex.split(fit_line), cwd=folder, env=_env(config), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    port = _free_port()
    command = shlex.split(serve_line.replace("8000", str(port)))
    assert command[0] == "gunicorn"
    log = folder / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *command, "--no-control-socket"],
            cwd=folder,
            env=_env(config),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_url(proc, log, 60.0)
        yield port, config
    finally:
        stop_process(proc)


def _run(command: list[str], code: str, port: int, config: Path) -> str:
    code = code.replace("localhost:8000", f"127.0.0.1:{port}")
    done = subprocess.run(
        [*command, code], env=_env(config), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_curl_commands_answer(server):
    port, config = server
    plain, per_field, matrix = blocks("bash")[1:]
    lines = _run(["bash", "-e", "-c"], plain, port, config).splitlines()
    assert json.loads(lines[0])["name"] == "pipeforge"
    assert lines[1:3] == ["200", "200"] and lines[-1] == "200"
    assert json.loads(lines[3])["versions"] == ["1"]
    answer = json.loads(_run(["bash", "-e", "-c"], per_field, port, config))
    assert answer["id"] == "first"
    assert [o["name"] for o in answer["outputs"]] == ["predict", "predict_proba"]
    shown = json.loads(re.sub(r'"5d0f\.\.\."', '"x"', blocks("json")[0]))
    answer = json.loads(_run(["bash", "-e", "-c"], matrix, port, config))
    assert answer["outputs"] == shown["outputs"]  # what the page shows is what it answers
    assert answer["model_version"] == shown["model_version"]


def test_the_python_clients_print_what_the_page_says(server):
    port, config = server
    triton, plain = blocks("python")
    printed = _run([sys.executable, "-c"], triton, port, config)
    assert "['Iris-setosa' 'Iris-versicolor']" in printed
    printed = _run([sys.executable, "-c"], plain, port, config).splitlines()
    assert printed[0] == "['Iris-setosa', 'Iris-versicolor']"
    assert printed[2] == "200"
    assert printed[3].startswith("400 the request needs 'inputs'")
