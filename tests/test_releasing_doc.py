"""docs/releasing.md's walk-through, run as it is written, on a copy of examples/iris.

The walk-through's predict service replaces the example's; the console
blocks of its steps 1 and 3 run in order (``$`` lines are commands, the
lines under them what they must print), then ``pf-list --json`` must show
what they did, and the route snippets must build an app that refuses
unguarded calls.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "releasing.md").read_text()
BIN = Path(sys.executable).parent


def _blocks(kind: str, text: str = DOC) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"```{kind}\n(.*?)```", text, re.S)]


def _walk_through() -> str:
    return DOC.split("## The walk-through", 1)[1].split("\n## ", 1)[0]


def _run(line: str, config: Path) -> str:
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config)}
    words = shlex.split(line)
    done = subprocess.run(
        [str(BIN / words[0]), *words[1:]],
        env=env,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{line}: {done.stderr}"
    return done.stdout


def test_the_walk_through_runs_as_written(tmp_path):
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", folder)
    config = folder / "config.yaml"
    entries = yaml.safe_load(config.read_text())
    service = yaml.safe_load(_blocks("yaml", _walk_through())[0])
    entries.update(service)
    config.write_text(yaml.safe_dump(entries, sort_keys=False))
    _run("pf-fit", config)  # today's version, as the iris README has it
    steps = _blocks("console", _walk_through())
    for block in (steps[0], steps[1]):  # name and train; canary
        lines = [line.strip() for line in block.strip().splitlines()]
        for index, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            said = _run(line[2:], config)
            expected = []
            for follow in lines[index + 1 :]:
                if follow.startswith("$ "):
                    break
                expected.append(follow)
            for text in expected:
                assert text in said, (line, said)
    listed = json.loads(_run("pf-list --json", config))
    assert listed["aliases"] == {"active": 1, "challenger": 2, "champion": 1}
    assert listed["traffic"] == {"/predict": {"challenger": 10.0, "champion": 90.0}}
    assert {m["version"]: m.get("tags") for m in listed["models"]}[2] == {
        "data": "2024-q3",
        "reviewed": "no",
    }
    # step 5 without its evidence options moves the alias at once; --reset puts the split back
    assert "promoted: " in _run("pf-admin promote challenger", config)
    _run("pf-admin traffic --reset /predict", config)
    listed = json.loads(_run("pf-list --json", config))
    assert listed["aliases"]["champion"] == 2 and listed["traffic"] == {}


def test_the_routes_snippet_builds_guarded_routes(tmp_path, monkeypatch):
    from pipeforge.config import load_config
    from pipeforge.server import create_app

    section = DOC.split("## The routes", 1)[1]
    routes = yaml.safe_load(_blocks("yaml", section)[0])
    entries = yaml.safe_load((ROOT / "examples" / "iris" / "config.yaml").read_text())
    entries["model_persister"]["impl"]["url"] = f"sqlite:///{tmp_path}/models.db"
    entries.update(routes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    monkeypatch.setenv("PIPEFORGE_TOKENS", "a-token-long-enough-to-pass")
    client = create_app(load_config([str(path)])).test_client()
    for rule, body in (("/traffic", {"service": "/predict", "traffic": None}), ("/alias", {})):
        refused = client.post(rule, json=body)
        assert refused.status_code == 401, refused.get_data(as_text=True)
        assert refused.get_json()["metadata"]["status"] == "ERROR"
    auth = {"Authorization": "Bearer a-token-long-enough-to-pass"}
    answer = client.post("/traffic", json={"service": "/predict", "traffic": None}, headers=auth)
    assert answer.status_code == 400  # the example's service has no traffic split
    assert "has no traffic split in its config" in answer.get_json()["metadata"]["error_message"]
