"""pf-devserver and pf-dockerize, through their main(argv) and as installed scripts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from pipeforge import training
from pipeforge.cli.serve import devserver_main, dockerize_main, predict_image_name
from pipeforge.config import load_config
from tests.fixtures.gunicorn import ROOT, iris_config, stop_process


@pytest.fixture
def app_dir(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "config.py").write_text("{'service_metadata': {}}")
    return folder


def test_dockerize_writes_both_dockerfiles(app_dir, capsys):
    status = dockerize_main(["-d", str(app_dir), "me/pipeforge-base:1.0", "me/iris-app:0.3"])
    assert status == 0
    app = (app_dir / "Dockerfile-app").read_text()
    predict = (app_dir / "Dockerfile-predict").read_text()
    assert app.splitlines()[0].startswith("# Written by pf-dockerize")
    assert app.splitlines()[1] == "FROM me/pipeforge-base:1.0"
    assert "ENV PIPEFORGE_CONFIG=/app/config.py" in app
    assert "USER pipeforge" in app
    # The application's files are copied once, already owned by its user.
    assert "COPY --chown=pipeforge . /app" in app and "chown -R" not in app
    assert "RUN pip install --no-cache-dir -r requirements-lock.txt" in app
    assert "FROM me/iris-app:0.3" in predict
    assert "ENV PIPEFORGE_CONFIG=/app/config.py" in predict
    assert "RUN pf-fit" in predict
    assert predict.rstrip().endswith('CMD ["pf-serve"]')  # granian, or gunicorn without it
    assert 'ENV PF_SERVE_ARGS="--bind 0.0.0.0:8000 ' in predict
    assert "HEALTHCHECK" in predict and "/alive" in predict
    out = capsys.readouterr().out.splitlines()
    names = ("Dockerfile-app", "Dockerfile-predict", ".dockerignore", "requirements-lock.txt")
    assert out == [f"wrote {os.path.join(app_dir, name)}" for name in names]


def test_dockerize_finds_a_yaml_config(tmp_path):
    (tmp_path / "config.yaml").write_text("service_metadata: {}\n")
    assert dockerize_main(["--dockerfile-only", str(tmp_path), "base", "img"]) == 0
    assert "PIPEFORGE_CONFIG=/app/config.yaml" in (tmp_path / "Dockerfile-predict").read_text()


def test_dockerignore_keeps_local_state_out(app_dir):
    import sqlite3

    sqlite3.connect(app_dir / "models.store").execute("create table t (x)").connection.close()
    (app_dir / "tools" / "python").mkdir(parents=True)
    (app_dir / "tools" / "python" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (app_dir / "data.csv").write_text("x,y\n1,2\n")
    assert dockerize_main(["-d", str(app_dir), "base", "img"]) == 0
    ignored = (app_dir / ".dockerignore").read_text().splitlines()
    for pattern in ("**/*.db", "**/.venv", "**/__pycache__", "**/results*.csv", ".git"):
        assert pattern in ignored
    # Found by looking: a SQLite file and a virtual environment, whatever their names.
    assert "models.store" in ignored and "tools/python" in ignored
    assert not any("data.csv" in line for line in ignored)
    assert "requirements-lock.txt" not in ignored  # the app image copies it


def test_requirements_lock_pins_what_is_installed_here(app_dir):
    from importlib import metadata

    (app_dir / "requirements.txt").write_text("requests>=2  # for the loader\nno-such-dist-xyz\n")
    assert dockerize_main(["-d", str(app_dir), "base", "img"]) == 0
    lines = (app_dir / "requirements-lock.txt").read_text().splitlines()
    pins = dict(line.lower().split("==") for line in lines if not line.startswith("#"))
    for name in ("scikit-learn", "flask", "numpy", "sqlalchemy", "requests", "urllib3"):
        assert pins[name] == metadata.version(name), name
    assert "pipeforge" not in pins  # the base image brings it
    assert "# Not installed here, so not pinned: no-such-dist-xyz." in lines


def test_dockerize_keeps_files_edited_by_hand(app_dir, capsys):
    assert dockerize_main(["-d", str(app_dir), "base", "img"]) == 0
    dockerfile = app_dir / "Dockerfile-app"
    edited = dockerfile.read_text() + "RUN apt-get install -y libgomp1\n"
    dockerfile.write_text(edited)
    capsys.readouterr()
    assert dockerize_main(["-d", str(app_dir), "other-base", "img"]) == 0
    out = capsys.readouterr().out
    assert f"kept {dockerfile}: it was edited by hand (--force overwrites it)" in out
    assert f"{app_dir / '.dockerignore'} is up to date" in out
    assert f"updated {app_dir / 'Dockerfile-predict'}" not in out  # same image name
    assert dockerfile.read_text() == edited
    (app_dir / ".dockerignore").write_text("*.db\n")  # the user's own file
    assert dockerize_main(["-d", "--force", str(app_dir), "other-base", "img"]) == 0
    out = capsys.readouterr().out
    assert f"overwrote the edited {dockerfile}" in out
    assert f"overwrote the edited {app_dir / '.dockerignore'}" in out
    assert "FROM other-base" in dockerfile.read_text()


@pytest.mark.parametrize(
    ("image", "predict"),
    [
        ("me/app:1.0", "me/app-predict:1.0"),
        ("app", "app-predict"),
        ("registry:5000/team/app", "registry:5000/team/app-predict"),
        ("registry:5000/team/app:2", "registry:5000/team/app-predict:2"),
    ],
)
def test_predict_image_name(image, predict):
    assert predict_image_name(image) == predict


def test_dockerize_without_engine_writes_nothing(app_dir, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-engine-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither docker nor podman
    before = sorted(p.name for p in app_dir.iterdir())
    assert dockerize_main([str(app_dir), "base", "img"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "no container engine works" in err and "'podman' is not installed" in err
    assert "-d" in err
    assert sorted(p.name for p in app_dir.iterdir()) == before


def test_dockerize_with_an_engine_that_does_not_work(app_dir, capsys):
    assert dockerize_main(["--engine", "false", str(app_dir), "base", "img"]) == 1
    err = capsys.readouterr().err
    assert "the container engine does not work: 'false info' failed" in err
    assert not (app_dir / "Dockerfile-app").exists()


def test_dockerize_usage_errors(app_dir, tmp_path, capsys):
    assert dockerize_main(["-d", str(tmp_path / "missing"), "base", "img"]) == 2
    assert "not a directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert dockerize_main(["-d", str(empty), "base", "img"]) == 2
    assert "config.py" in capsys.readouterr().err
    assert dockerize_main(["-d", str(app_dir)]) == 2
    assert dockerize_main(["-h"]) == 0
    assert "APP_DIR" in capsys.readouterr().out


def test_devserver_rejects_a_bad_port(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(iris_config(tmp_path)))
    assert devserver_main(["--port", "http"]) == 2
    assert "--port" in capsys.readouterr().err


def test_devserver_without_config_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    assert devserver_main([]) == 2
    assert "PIPEFORGE_CONFIG" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_devserver_serves_the_model(tmp_path):
    path = iris_config(tmp_path)
    config = load_config([str(path)])
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    port = _free_port()
    log = open(tmp_path / "devserver.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pipeforge.cli.serve import devserver_main as m; "
            f"raise SystemExit(m(['--port', '{port}']))",
        ],
        cwd=ROOT,
        env={**os.environ, "PIPEFORGE_CONFIG": str(path)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/alive", timeout=5) as response:
                    alive = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (tmp_path / "devserver.log").read_text()
                assert time.monotonic() < deadline, "pf-devserver did not start"
                time.sleep(0.2)
        assert alive["model"]["metadata"]["version"] == 1
        query = "sepal%20length=5.1&sepal%20width=3.5&petal%20length=1.4&petal%20width=0.2"
        with urllib.request.urlopen(f"{url}/predict?{query}", timeout=5) as response:
            assert json.load(response)["result"] == "Iris-setosa"
    finally:
        stop_process(proc)
        log.close()


def test_project_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines and "FROM ${PYTHON_IMAGE}" in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "/alive" in healthcheck
    assert lines[-1] == 'CMD ["pf-serve"]'
    assert "--bind 0.0.0.0:8000" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored
