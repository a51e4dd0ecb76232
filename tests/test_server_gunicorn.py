"""End to end: a real gunicorn with two workers serving pipeforge.wsgi:app on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from pipeforge import training
from pipeforge.config import load_config
from tests.fixtures.gunicorn import IRIS_FEATURES, ROOT, iris_config

pytestmark = pytest.mark.slow

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
VIRGINICA = {"sepal length": 7.7, "sepal width": 3.0, "petal length": 6.1, "petal width": 2.3}

# Written by another process: a model that answers 'Iris-virginica' for everything.
WRITE_CONSTANT_MODEL = """
import sys
from sklearn.dummy import DummyClassifier
from pipeforge.config import load_config
config = load_config([sys.argv[1]])
X, y = config["dataset_loader_train"]()
model = DummyClassifier(strategy="constant", constant="Iris-virginica").fit(X, y)
persister = config["model_persister"]
persister.activate(persister.write(model))
"""


def fit_model(config_path: Path) -> int:
    config = load_config([str(config_path)])
    return training.fit(
        config["dataset_loader_train"], config["model"], config["model_persister"]
    ).version


def write_constant_model(config_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", WRITE_CONSTANT_MODEL, str(config_path)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )


def eventually(check, timeout=20.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def served_versions(url: str, tries: int = 12) -> set:
    """The model versions /alive reports, over fresh connections (so both workers answer)."""
    versions = set()
    for _ in range(tries):
        body = requests.get(url + "/alive", timeout=10).json()
        versions.add((body.get("model") or {}).get("metadata", {}).get("version"))
    return versions


def test_every_endpoint(tmp_path, gunicorn_server):
    path = iris_config(
        tmp_path,
        predict_service_proba={
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [[name, "float"] for name in IRIS_FEATURES],
            "predict_proba": True,
            "entry_point": "/predict-proba",
        },
    )
    assert fit_model(path) == 1
    url = gunicorn_server(path)

    response = requests.get(url + "/predict", params=SETOSA, timeout=10)
    assert response.status_code == 200
    assert response.json()["result"] == "Iris-setosa"
    assert response.json()["metadata"] == {
        "service_name": "iris",
        "service_version": "0.1",
        "status": "OK",
        "error_code": 0,
    }
    response = requests.post(url + "/predict", json=[SETOSA, VIRGINICA], timeout=10)
    assert response.json()["result"] == ["Iris-setosa", "Iris-virginica"]
    proba = requests.get(url + "/predict-proba", params=VIRGINICA, timeout=10).json()["result"]
    assert max(proba, key=proba.get) == "Iris-virginica"

    alive = requests.get(url + "/alive", timeout=10)
    assert alive.status_code == 200
    body = alive.json()
    assert body["model"]["metadata"]["version"] == 1
    assert body["service_metadata"]["service_name"] == "iris"
    assert body["memory_usage"] > 0
    assert "jobs" in body["process_metadata"]
    assert requests.get(url + "/list", timeout=10).json()["properties"]["active-model"] == "1"

    # Errors: JSON bodies with 4xx statuses from the real server.
    for method, path_, kwargs, status in [
        ("GET", "/predict", {"params": {"sepal length": "x"}}, 400),
        ("POST", "/predict", {"data": "{", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/predict", {"json": SETOSA}, 400),
        ("POST", "/predict", {"json": []}, 400),
        ("POST", "/predict", {"data": "[]", "headers": {"Content-Type": "text/plain"}}, 400),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/predict", {}, 405),
        ("POST", "/activate", {"json": {"model_version": 99}}, 404),
        ("POST", "/activate", {}, 400),
        ("POST", "/activate", {"data": {"model_version": "1"}}, 415),
    ]:
        response = requests.request(method, url + path_, timeout=10, **kwargs)
        assert response.status_code == status, (method, path_, response.text)
        assert response.json()["metadata"]["status"] == "ERROR"

    # /fit runs in the background of one worker; the store shows the new version.
    job = requests.post(url + "/fit", timeout=10).json()
    assert set(job) == {"job_id"}
    eventually(lambda: len(requests.get(url + "/list", timeout=10).json()["models"]) == 2)
    eventually(lambda: served_versions(url) == {2})

    assert requests.post(url + "/activate", json={"model_version": 1}, timeout=10).ok
    # The worker that activated refreshed at once; the other within its refresh interval.
    eventually(lambda: served_versions(url) == {1})
    response = requests.post(url + "/update-model-cache", timeout=10)
    assert response.status_code == 200 and "job_id" in response.json()


def test_no_model_yet_then_recovers(tmp_path, wsgi_server):
    path = iris_config(tmp_path)
    url = wsgi_server(path)
    response = requests.get(url + "/predict", params=SETOSA, timeout=10)
    assert response.status_code == 503
    assert response.json()["metadata"]["status"] == "ERROR"
    assert requests.get(url + "/alive", timeout=10).status_code == 503

    subprocess.run(
        [str(Path(sys.executable).with_name("pf-fit"))],
        env={**os.environ, "PIPEFORGE_CONFIG": str(path)},
        cwd=tmp_path,
        check=True,
        timeout=120,
        capture_output=True,
    )

    def all_ready():
        for _ in range(8):
            session = requests.Session()  # new connection: any worker may answer
            assert session.get(url + "/predict", params=SETOSA, timeout=10).status_code == 200
            assert session.get(url + "/alive", timeout=10).status_code == 200
        return True

    eventually(all_ready, timeout=20)


def test_hot_swap_under_load(tmp_path, wsgi_server):
    path = iris_config(tmp_path)
    fit_model(path)
    url = wsgi_server(path)
    assert served_versions(url) == {1}

    stop = threading.Event()
    failures: list = []
    results: list[str] = []
    lock = threading.Lock()

    def hammer():
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.get(url + "/predict", params=SETOSA, timeout=10)
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))
                else:
                    with lock:
                        results.append(response.json()["result"])
            except requests.RequestException as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        write_constant_model(path)
        eventually(lambda: served_versions(url) == {2}, timeout=20)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert results[0] == "Iris-setosa"
    assert results[-1] == "Iris-virginica"
    assert len(results) > 50


def test_preload_restarts_the_cache_refresh_in_each_worker(tmp_path, gunicorn_server):
    path = iris_config(tmp_path)
    fit_model(path)
    url = gunicorn_server(path, args=["--preload"])
    assert served_versions(url) == {1}
    write_constant_model(path)
    eventually(lambda: served_versions(url) == {2}, timeout=20)


def test_config_error_stops_the_server_with_one_line(tmp_path, gunicorn_server):
    path = iris_config(tmp_path, model={"__factory__": "sklearn.nope.Missing"})
    with pytest.raises(RuntimeError) as info:
        gunicorn_server(path, timeout=60)
    log = str(info.value)
    assert "gunicorn exited" in log
    lines = [line for line in log.splitlines() if "pipeforge cannot start" in line]
    assert lines and "sklearn.nope.Missing" in lines[0]
    assert "config.py" in lines[0]
