"""docs/releasing.md's prediction log, shadow and feedback sections run as written.

examples/iris is copied; its predict service gets the page's prediction log
entry, the config the page's ``feedback`` switch; ``pf-fit`` fits it and
gunicorn serves it. The page's two curl commands (the port changed) log a
prediction and give its feedback, the page's Python block reads it back, and
the page's dataset loader entry reads it as training data.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.gunicorn import ROOT

DOC = ROOT / "docs" / "releasing.md"
TOKEN = "doc-feedback-token"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEFORGE_", "PALLADIUM_"))}
    env.update(PIPEFORGE_CONFIG=str(config), PIPEFORGE_TOKENS=TOKEN, TOKEN=TOKEN)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_shadow_and_log_entries_of_the_page_are_valid():
    from pipeforge.release.recording import settings_of

    for title in ("Shadow", "Prediction log"):
        [entry] = [b for b in _blocks(_section(title), "yaml") if "predict_service:" in b]
        service = yaml.safe_load(entry)["predict_service"]
        log, shadow = settings_of("predict_service", type("S", (), service)())
        assert log is not None
        assert (shadow is not None) == (title == "Shadow")


@pytest.mark.slow
def test_log_feedback_and_reading_back_as_the_page_says(tmp_path, gunicorn_server):
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns("*.db"))
    config = folder / "config.yaml"
    entries = yaml.safe_load(config.read_text())
    log_section, feedback_section = _section("Prediction log"), _section("Feedback and live scores")
    [service] = [b for b in _blocks(log_section, "yaml") if "predict_service:" in b]
    entries["predict_service"] = yaml.safe_load(service)["predict_service"]
    [switch] = _blocks(feedback_section, "yaml")
    entries.update(yaml.safe_load(switch))
    config.write_text(yaml.safe_dump(entries, sort_keys=False))
    fitted = subprocess.run(
        ["pf-fit"], cwd=folder, env=_env(config), capture_output=True, text=True
    )
    assert fitted.returncode == 0, fitted.stderr
    url = gunicorn_server(config, workers=1, env={"PIPEFORGE_TOKENS": TOKEN})

    [console] = _blocks(feedback_section, "console")
    predict, feedback = [line.removeprefix("$ ") for line in console.strip().splitlines()]
    port = url.rsplit(":", 1)[1]
    answered = subprocess.run(
        shlex.split(predict.replace("localhost:5000", f"127.0.0.1:{port}")),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(answered.stdout)["result"] == "Iris-setosa"
    command = shlex.split(feedback.replace("localhost:5000", f"127.0.0.1:{port}"))
    command = [part.replace("$TOKEN", TOKEN) for part in command]
    given = subprocess.run(command, capture_output=True, text=True, check=True)
    assert json.loads(given.stdout)["result"]["id"] == "order-1234"
    again = subprocess.run(
        [*command, "-w", "%{http_code}", "-o", "/dev/null"], capture_output=True, text=True
    )
    assert again.stdout == "409"

    [reader] = _blocks(log_section, "python")
    read = subprocess.run(
        [sys.executable, "-c", reader], cwd=folder, env=_env(config), capture_output=True, text=True
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.startswith("order-1234 1 [{'sepal length': 5.1")
    assert read.stdout.rstrip().endswith("['Iris-setosa'] ['Iris-setosa']")

    [loader] = [b for b in _blocks(log_section, "yaml") if "dataset_loader_train" in b]
    from pipeforge.config import load_config

    entries.update(yaml.safe_load(loader))
    del entries["dataset_loader_test"]  # the example's copies the train loader's file keywords
    config.write_text(yaml.safe_dump(entries, sort_keys=False))
    X, y = load_config([str(config)])["dataset_loader_train"]()
    assert X.shape == (1, 4) and list(y) == ["Iris-setosa"]
