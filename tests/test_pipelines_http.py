"""The pipelines routes in the service's Flask app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeforge.config import load_config
from pipeforge.server import create_app
from tests.test_pipelines_sync import OPEN_ADMIN

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def open_admin(folder: Path) -> Path:
    """A config file switching /load and /save on, unguarded (to load after the pipelines' file).

    tests/test_security_guards.py runs them behind a guard.
    """
    path = Path(folder) / "open-admin.yaml"
    path.write_text(yaml.safe_dump(OPEN_ADMIN))
    return path


@pytest.fixture
def make_client(monkeypatch, tmp_path):
    """``make_client(config_path)`` → a test client of a fresh app; stores closed at the end.

    /load and /save are switched on (:func:`open_admin`).
    """
    apps = []
    monkeypatch.chdir(tmp_path)

    def make(path):
        app = create_app(load_config([str(path), str(open_admin(tmp_path))]))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        service = app.extensions["pipeforge_pipelines"]
        service.shutdown()
        service.store.dispose()


@pytest.fixture
def iris_client(make_client, monkeypatch, sql_url):
    monkeypatch.setenv("PIPEFORGE_OP_STORE", sql_url)
    return make_client(IRIS / "pipelines.yaml")


def post(client, url, body=None):
    response = client.post(url, json=body) if body is not None else client.post(url)
    return response.status_code, response.get_json()


def test_http_walkthrough(iris_client):
    client = iris_client
    assert client.get("/available_pipelines").get_json() == sorted(
        ["train_iris", "predict_iris", "train_pca", "train_classifier"]
    )
    response = client.get("/pipelines/predict_iris/health_check")
    assert (response.status_code, response.get_json()) == (503, {"is_loaded": False})
    status, body = post(client, "/pipelines/predict_iris/main", {"pipeline_input": SAMPLE})
    assert status == 409
    assert body["metadata"]["status"] == "ERROR"
    assert "'pca' has never been trained" in body["metadata"]["error_message"]

    status, body = post(client, "/pipelines/train_iris/main", {})
    assert status == 200
    assert body["pipeline_output"] is None and body["job_id"] is None
    assert body["job_status"] == "done"
    assert set(body["versions"]) == {"iris", "pca", "classifier"}
    status, saved = post(client, "/pipelines/train_iris/save")
    assert status == 200 and len(saved["saved"]) == 3

    status, loaded = post(client, "/pipelines/predict_iris/load")
    assert status == 200 and loaded["is_loaded"] is True
    assert client.get("/pipelines/predict_iris/health_check").status_code == 200
    status, body = post(client, "/pipelines/predict_iris/main", {"pipeline_input": SAMPLE})
    assert status == 200
    assert body["pipeline_output"] == ["Iris-setosa", "Iris-virginica"]
    assert body["versions"] == loaded["versions"]
    status, versions = post(client, "/pipelines/predict_iris/versions")
    assert status == 200 and versions == loaded["versions"]

    # Retrain the PCA only: the load is refused and the old pipeline keeps serving.
    assert post(client, "/pipelines/train_pca/main", {})[0] == 200
    assert post(client, "/pipelines/train_pca/save")[0] == 200
    status, body = post(client, "/pipelines/predict_iris/load")
    assert status == 409
    assert "retrain 'classifier'" in body["metadata"]["error_message"]
    response = client.get("/pipelines/predict_iris/health_check")
    assert (response.status_code, response.get_json()) == (200, {"is_loaded": True})
    status, body = post(client, "/pipelines/predict_iris/main", {"pipeline_input": SAMPLE})
    assert status == 200 and body["versions"] == loaded["versions"]

    # Retrain the classifier (and save in the same call): it loads again.
    status, body = post(client, "/pipelines/train_classifier/main", {"save": True})
    assert status == 200 and body["saved"]
    status, reloaded = post(client, "/pipelines/predict_iris/load")
    assert status == 200
    assert reloaded["versions"]["classifier"] == body["versions"]["classifier"]
    assert reloaded["versions"]["pca"] != loaded["versions"]["pca"]
    health = client.get("/health_check").get_json()
    assert health["predict_iris"] is True and health["train_iris"] is True


def test_http_errors(iris_client):
    client = iris_client
    for response in (
        client.post("/pipelines/nope/main", json={}),
        client.post("/pipelines/nope/load"),
        client.get("/pipelines/nope/health_check"),
        client.get("/pipelines/jobs/0123"),
    ):
        assert response.status_code == 404
        metadata = response.get_json()["metadata"]
        assert metadata["status"] == "ERROR" and metadata["error_code"] == -1
        assert "unknown" in metadata["error_message"]
    response = client.post(
        "/pipelines/train_iris/main", data="{nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert "must be JSON" in response.get_json()["metadata"]["error_message"]
    response = client.post("/pipelines/train_iris/main", json=[1, 2])
    assert response.status_code == 400
    response = client.post("/pipelines/train_iris/main", json={"use_worker": "yes"})
    assert response.status_code == 400
    assert post(client, "/pipelines/train_iris/main", {})[0] == 200
    assert post(client, "/pipelines/train_iris/save")[0] == 200
    # Input the PCA cannot take: a client error, with a message, no traceback.
    status, body = post(client, "/pipelines/predict_iris/main", {"pipeline_input": [[1, 2]]})
    assert status == 400
    assert "node 'pca'" in body["metadata"]["error_message"]
    assert "Traceback" not in body["metadata"]["error_message"]


def test_numpy_and_pandas_outputs_are_json(make_client, tmp_path):
    config = {
        "op_store": {"url": f"sqlite:///{tmp_path / 'ops.db'}"},
        "pipelines": {
            "arrays": {
                "nodes": [
                    {
                        "op": {
                            "__factory__": "pipeforge.pipelines.FunctionOp",
                            "function": "numpy.asarray",
                        },
                        "inputs": "__pipeline_input__",
                        "outputs": "array",
                    },
                    {
                        "op": {
                            "__factory__": "pipeforge.pipelines.FunctionOp",
                            "function": "numpy.mean",
                        },
                        "inputs": "array",
                        "outputs": "mean",
                    },
                    {
                        "op": {
                            "__factory__": "pipeforge.pipelines.FunctionOp",
                            "function": "pandas.DataFrame",
                        },
                        "inputs": "array",
                        "outputs": "frame",
                    },
                    {
                        "op": {
                            "__factory__": "pipeforge.pipelines.FunctionOp",
                            "function": "tests.test_pipelines_http.pack",
                        },
                        "name": "pack",
                        "inputs": ["array", "mean", "frame"],
                        "outputs": "__pipeline_output__",
                    },
                ]
            }
        },
    }
    path = tmp_path / "arrays.yaml"
    path.write_text(yaml.safe_dump(config))
    client = make_client(path)
    status, body = post(
        client, "/pipelines/arrays/main", {"pipeline_input": [[1.0, 2.0], [3.0, 4.0]]}
    )
    assert status == 200, body
    assert body["pipeline_output"] == {
        "array": [[1.0, 2.0], [3.0, 4.0]],
        "mean": 2.5,
        "frame": [{"0": 1.0, "1": 2.0}, {"0": 3.0, "1": 4.0}],
        "nan": None,
        "int": 7,
    }
    assert body["job_status"] == "done"


def pack(array, mean, frame):
    """A user function returning numpy and pandas values (used by the config above)."""
    import numpy as np

    return {
        "array": array,
        "mean": mean,
        "frame": frame,
        "nan": np.float64("nan"),
        "int": np.int64(7),
    }


def _fetch_job_elsewhere(config_path: Path, env: dict, job_id: str) -> dict:
    code = (
        "import json, sys, time\n"
        "from pipeforge.config import load_config\n"
        "from pipeforge.server import create_app\n"
        "app = create_app(load_config([sys.argv[1]]))\n"
        "client = app.test_client()\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    body = client.get('/pipelines/jobs/' + sys.argv[2]).get_json()\n"
        "    if body.get('job_status') in ('done', 'failed') or time.monotonic() > deadline:\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "app.extensions['pipeforge_pipelines'].store.dispose()\n"
        "print(json.dumps(body))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config_path), job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_background_job_is_fetched_from_another_process(iris_client, sql_url):
    import os

    status, body = post(
        iris_client, "/pipelines/train_iris/main", {"use_worker": True, "save": True}
    )
    assert status == 202
    assert body["job_status"] == "queued" and body["pipeline_output"] is None
    job_id = body["job_id"]
    env = dict(os.environ, PIPEFORGE_OP_STORE=sql_url)
    job = _fetch_job_elsewhere(IRIS / "pipelines.yaml", env, job_id)
    assert job["job_id"] == job_id and job["pipeline"] == "train_iris"
    assert job["job_status"] == "done", job
    assert set(job["versions"]) == {"iris", "pca", "classifier"}
    assert len(job["saved"]) == 3
    # The job's training was saved: the predict pipeline loads it here too.
    deadline = time.monotonic() + 10
    while iris_client.get(f"/pipelines/jobs/{job_id}").get_json()["job_status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, loaded = post(iris_client, "/pipelines/predict_iris/load")
    assert status == 200
    assert loaded["versions"] == {k: job["versions"][k] for k in ("pca", "classifier")}


@pytest.mark.slow
def test_server_workers_share_versions_and_jobs(wsgi_server, tmp_path):
    """Two gunicorn or granian workers: a job started on one is visible from both; both serve the model."""
    import urllib.error
    import urllib.request

    def call(url, body=None, method="POST"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    env = {"PIPEFORGE_OP_STORE": f"sqlite:///{tmp_path / 'ops.db'}"}
    base = wsgi_server(f"{IRIS / 'pipelines.yaml'},{open_admin(tmp_path)}", workers=2, env=env)
    status, body = call(f"{base}/pipelines/train_iris/main", {"use_worker": True, "save": True})
    assert status == 202
    deadline = time.monotonic() + 60
    statuses = []
    while True:
        status, job = call(f"{base}/pipelines/jobs/{body['job_id']}", method="GET")
        assert status == 200
        statuses.append(job["job_status"])
        if job["job_status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert job["job_status"] == "done", job
    versions = set()
    for _ in range(12):  # both workers answer; each loads the saved versions on first use
        status, answer = call(f"{base}/pipelines/predict_iris/main", {"pipeline_input": SAMPLE})
        assert status == 200, answer
        assert answer["pipeline_output"] == ["Iris-setosa", "Iris-virginica"]
        versions.add(json.dumps(answer["versions"], sort_keys=True))
    assert len(versions) == 1
    assert json.loads(versions.pop()) == {k: job["versions"][k] for k in ("pca", "classifier")}
