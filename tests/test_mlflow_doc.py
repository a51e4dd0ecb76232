"""docs/migrating-from-mlflow.md, run as a reader would: MLflow's training script in MLflow's own
environment, pipeforge's config and scripts, the curl commands against the servers the page starts."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.gunicorn import IRIS_DATA

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "migrating-from-mlflow.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [text for kind, text in FENCE.findall(DOC.read_text()) if kind == lang]


def commands(block: str) -> list[str]:
    """The shell commands of a block, continuation lines joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def curl(command: str, local: str, url: str, cwd: Path) -> dict:
    assert command.startswith("curl ") and local in command
    done = subprocess.run(
        ["bash", "-c", command.replace(local, url) + " --silent --show-error --fail-with-body"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def answer_shown(index: int) -> dict:
    """The page's ``json`` answer ``index``, its ``...`` dropped."""
    return json.loads(blocks("json")[index].replace(", ...", ""))


def test_the_page_runs_as_written(tmp_path, mlflow_venv, gunicorn_server, mlflow_server):
    shutil.copy(IRIS_DATA, tmp_path / "iris.data")
    [train] = [b for b in blocks("python") if b.startswith("# train.py")]
    mlflow_venv.python(train, tmp_path)
    assert (tmp_path / "iris-model" / "MLmodel").is_file() and (tmp_path / "mlflow.db").is_file()

    [config] = [b for b in blocks("yaml") if b.startswith("# config.yaml")]
    (tmp_path / "config.yaml").write_text(config)
    serve, predict, export = (commands(b) for b in blocks("bash")[:3])
    assert serve[0] == "export PIPEFORGE_CONFIG=config.yaml"
    env = {**os.environ, "PIPEFORGE_CONFIG": "config.yaml", "PYTHONWARNINGS": "ignore"}

    listed = subprocess.run(
        [str(BIN / serve[1])], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "champion" in listed.stdout and "sepal length" in listed.stdout
    assert serve[2] == "gunicorn -w 2 -b 127.0.0.1:8000 pipeforge.wsgi:app"
    url = gunicorn_server(tmp_path / "config.yaml", workers=2)
    ours = curl(predict[0], "http://127.0.0.1:8000", url, tmp_path)
    assert ours["result"] == answer_shown(0)["result"]

    args = shlex.split(export[0])
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    folder = tmp_path / args[args.index("--to-mlflow") + 1]
    assert export[1].startswith(f"mlflow models serve -m {folder.name} --env-manager local")
    theirs = curl(export[2], "http://127.0.0.1:5001", mlflow_server(folder), tmp_path)
    assert theirs == answer_shown(1)
    assert theirs["predictions"] == ours["result"]


def test_the_page_is_linked_from_the_index():
    assert "(migrating-from-mlflow.md)" in (ROOT / "docs" / "index.md").read_text()
