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
from pipeforge.config import load_config
from pipeforge.serve_scripts import devserver_main, dockerize_main, predict_image_name
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
    assert app.splitlines()[1] == "FROM me/pipeforge-base:1.0"
    assert "ENV PIPEFORGE_CONFIG=/app/config.py" in app
    assert "USER pipeforge" in app
    assert "FROM me/iris-app:0.3" in predict
    assert "ENV PIPEFORGE_CONFIG=/app/config.py" in predict
    assert "RUN pf-fit" in predict
    assert 'CMD ["gunicorn", "-b", "0.0.0.0:8000", "pipeforge.wsgi:app"]' in predict
    assert "pipeforge.wsgi:app" in predict
    assert "HEALTHCHECK" in predict and "/alive" in predict
    out = capsys.readouterr().out
    assert "Dockerfile-app" in out and "Dockerfile-predict" in out


def test_dockerize_finds_a_yaml_config(tmp_path):
    (tmp_path / "config.yaml").write_text("service_metadata: {}\n")
    assert dockerize_main(["--dockerfile-only", str(tmp_path), "base", "img"]) == 0
    assert "PIPEFORGE_CONFIG=/app/config.yaml" in (tmp_path / "Dockerfile-predict").read_text()


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


def test_dockerize_without_engine_says_so(app_dir, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-docker-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no docker client, so no engine
    assert dockerize_main([str(app_dir), "base", "img"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "no Docker engine" in err and "-d" in err
    assert (app_dir / "Dockerfile-app").exists()


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
            "from pipeforge.serve_scripts import devserver_main as m; "
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
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "/alive" in healthcheck
    assert lines[-1] == 'CMD ["gunicorn", "-b", "0.0.0.0:8000", "pipeforge.wsgi:app"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored
