"""pf-online: its commands, exit statuses and messages, and the walk-through of
docs/online-learning.md (examples/online) run as a newcomer would."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from river import linear_model

from pipeforge.cli.online import main
from tests.fixtures.online import online_config

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = online_config(tmp_path, None)
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    return path


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help_and_usage_errors(config, capsys):
    status, out, _ = run(capsys, "-h")
    assert status == 0 and "pf-online replay <name>" in out
    status, _, err = run(capsys, "frobnicate")
    assert status == 2 and err.count("\n") == 1 and "see pf-online -h" in err
    status, _, err = run(capsys, "init", "ranking")
    assert status == 2
    assert err.strip() == (
        "pf-online: error: <flavor> must be one of regression, binary, multiclass; got 'ranking'"
    )


def test_config_error_is_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.py"
    path.write_text(
        repr(
            {
                "online_models": {
                    "m": {
                        "model": {"__factory__": "river.linear_model.LinearRegression"},
                        "flavor": "binary",
                    }
                }
            }
        )
    )
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
    status, _, err = run(capsys, "models")
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith(
        f"pf-online: error: {path}: online_models.m.model: LinearRegression is a regressor"
    )


def test_init_add_model_and_models(config, tmp_path, capsys):
    status, out, _ = run(capsys, "models")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "flavor", "learnt", "scored", "source"]
    assert lines[1].split() == ["reg", "regression", "0", "0", "config", "default"]
    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(pickle.dumps(linear_model.LogisticRegression()))
    status, out, _ = run(capsys, "add-model", str(model_file), "--name=barney", "--flavor=binary")
    assert status == 0 and out == "barney has been added (and is the default model)\n"
    status, out, _ = run(capsys, "models")
    assert "barney  binary      0       0       cli     default" in out
    status, _, err = run(
        capsys, "add-model", str(model_file), "--name=robin"
    )  # store flavor: regression
    assert status == 1 and "does not fit flavor 'regression'" in err
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    status, _, err = run(capsys, "add-model", str(not_a_model))
    assert status == 1 and "not a pickled model" in err
    status, _, err = run(capsys, "add-model", str(tmp_path / "missing.pkl"))
    assert status == 1 and "missing.pkl" in err
    status, out, _ = run(capsys, "init", "binary")
    assert status == 0
    assert out.splitlines() == [
        "Erased the online store (sql); flavor is binary",
        "Models from the config: reg, sk, spam",
    ]
    status, out, _ = run(capsys, "models")
    assert "barney" not in out


def test_routes(config, capsys, tmp_path, monkeypatch):
    status, out, _ = run(capsys, "routes")
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert ["POST", "/api/learn", "online.learn_post"] in lines
    assert not [line for line in lines if "/api/stream/events" in line]  # off by default
    switched = online_config(
        tmp_path,
        None,
        name="switched.py",
        online={"allow_delete": True, "allow_events": True},
        security={"unguarded": ["online.delete", "online.events"]},
    )
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(switched))
    status, out, _ = run(capsys, "routes")
    lines = [line.split() for line in out.splitlines()]
    assert ["DELETE", "/api/model/<name>", "online.delete_delete_named"] in lines
    assert ["GET", "/api/stream/events", "online.stream_events_get"] in lines


def test_replay_errors(config, capsys, tmp_path):
    status, _, err = run(capsys, "replay", "nope")
    assert status == 2 and "no online model named 'nope'" in err
    status, _, err = run(capsys, "replay", "reg")
    assert status == 2 and "missing required entry 'dataset_loader_train'" in err
    status, _, err = run(capsys, "replay", "reg", "--limit=0")
    assert status == 2 and "--limit must be a positive integer" in err


def _sh(script: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG")
    }
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(env)
    return subprocess.run(
        ["bash", "-ec", script], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_walkthrough(tmp_path, gunicorn_server):
    """docs/online-learning.md, step by step, on a copy of examples/online."""
    folder = tmp_path / "online"
    shutil.copytree(
        REPO / "examples" / "online", folder, ignore=shutil.ignore_patterns("*.db*", "*.csv")
    )
    done = _sh(
        "python make_data.py && export PIPEFORGE_CONFIG=config.yaml"
        " && pf-online models && pf-online replay diabetes",
        folder,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Wrote history.csv (300 rows) and stream.csv (142 rows)"
    assert (
        "Learnt 300 rows of dataset_loader_train into 'diabetes' (now 300 samples learnt)" in lines
    )
    mae = float(next(line for line in lines if line.strip().startswith("MAE")).split()[1])
    assert 30 < mae < 80  # the scale of the diabetes target: 25 to 346
    assert "Traceback" not in done.stderr

    url = gunicorn_server(folder / "config.yaml", workers=2)
    assert (
        requests.get(url + "/api/models", timeout=30).json()["info"]["diabetes"]["n_learnt"] == 300
    )
    done = _sh(f"python client.py {url}", folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Sent 142 patients; metrics: MAE ")
    done = _sh("pf-online models", folder, PIPEFORGE_CONFIG="config.yaml")
    assert "diabetes      regression  442     442     config  default" in done.stdout
