"""pf-dockerize's images built and run for real (podman, see tests/fixtures/podman.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.fixtures.podman import BUILD_OPTIONS, PODMAN, ROOT, RUN_OPTIONS, podman

BIN = Path(sys.executable).parent
QUERY = "sepal%20length=7.7&sepal%20width=3.0&petal%20length=6.1&petal%20width=2.3"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _canonical(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def _in_image(image: str, script: str) -> str:
    return podman("run", "--rm", *RUN_OPTIONS, image, "sh", "-c", script).stdout


@pytest.fixture
def app_dir(tmp_path):
    """The iris example with local state pf-dockerize must keep out of the images."""
    app = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", app, ignore=shutil.ignore_patterns("*.db"))
    import sqlite3

    for name in ("iris-model.db", "models.store"):  # a model store, whatever its name
        sqlite3.connect(app / name).execute("create table models (version int)").connection.close()
    (app / "env").mkdir()
    (app / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a venv, whatever its name
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"\0")
    return app


@pytest.fixture
def images():
    """The image names a test builds; removed afterwards (the base images stay cached)."""
    name = f"localhost/pipeforge-test/iris-{uuid.uuid4().hex[:8]}:1"
    yield name, name.replace(":1", "-predict:1")
    podman("rmi", "--force", name.replace(":1", "-predict:1"), name, check=False)


@pytest.mark.slow
def test_dockerized_iris_builds_and_serves(app_dir, images, pipeforge_base_image):
    image, predict_image = images
    result = subprocess.run(
        [
            str(BIN / "pf-dockerize"),
            "--engine",
            " ".join(PODMAN),
            "--build-options",
            " ".join(BUILD_OPTIONS),
            str(app_dir),
            pipeforge_base_image,
            image,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    said = [line for line in result.stdout.splitlines() if line.startswith(("wrote", "built"))]
    assert said == [
        *(f"wrote {app_dir / name}" for name in ("Dockerfile-app", "Dockerfile-predict")),
        *(f"wrote {app_dir / name}" for name in (".dockerignore", "requirements-lock.txt")),
        f"built {image}",
        f"built {predict_image}",
    ]

    # The application image: the folder without its local state, owned by the app's
    # user, and exactly the library versions installed here.
    listing = _in_image(image, "ls -A /app; stat -c %U /app/config.py; pip freeze").split()
    assert {"config.py", "iris.data", "requirements-lock.txt"} <= set(listing)
    for local in ("iris-model.db", "models.store", "env", "__pycache__", "Dockerfile-app"):
        assert local not in listing
    assert "pipeforge" in listing  # the owner of /app/config.py
    lock = (app_dir / "requirements-lock.txt").read_text().splitlines()
    pins = {_canonical(line) for line in lock if line and not line.startswith("#")}
    assert "scikit-learn==" + _version("scikit-learn") in pins
    assert pins <= {_canonical(line) for line in listing if "==" in line}

    # The predict image fitted its own model and serves it.
    port = _free_port()
    container = f"pipeforge-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        container,
        *RUN_OPTIONS,
        "-e",
        f"PF_SERVE_ARGS=--bind 127.0.0.1:{port} --workers 2",
        predict_image,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        alive = _wait_for(url + "/alive", container)
        assert alive["model"]["metadata"]["version"] == 1
        assert alive["service_metadata"]["service_name"] == "iris"
        with urllib.request.urlopen(f"{url}/predict?{QUERY}", timeout=30) as response:
            body = json.load(response)
        assert body["result"] == "Iris-virginica" and body["metadata"]["status"] == "OK"
    finally:
        logs = podman("logs", container, check=False)
        podman("rm", "--force", container, check=False)
    # pf-serve chose granian (installed in the base image) and forked the workers from the app
    assert "with granian" in logs.stderr and "loaded once before the workers fork" in logs.stderr


def _version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def _wait_for(url: str, container: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except OSError:  # not listening yet, or no worker booted yet to answer
            state = podman("inspect", "--format", "{{.State.Running}}", container, check=False)
            if state.stdout.strip() != "true" or time.monotonic() > deadline:
                logs = podman("logs", container, check=False)
                pytest.fail(f"the container does not serve {url}:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
