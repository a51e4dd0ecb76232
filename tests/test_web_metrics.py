"""GET /metrics: Prometheus text, parsed by prometheus-client, summed over gunicorn workers."""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pipeforge import training
from pipeforge.config import Config, load_config
from pipeforge.persistence import CachedUpdatePersister
from pipeforge.server import PredictService, create_app
from tests.fixtures.gunicorn import iris_config
from tests.test_server import MemoryPersister, wait_for_job

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}


def worker_pid(view):
    """A predict decorator saying which worker answered (so the test sees both)."""

    @functools.wraps(view)
    def answer(*args, **kwargs):
        response = view(*args, **kwargs)
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return answer


def needs_token(view):
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        from flask import request
        from werkzeug.exceptions import Forbidden

        if request.headers.get("X-Token") != "s3cret":
            raise Forbidden("send the X-Token header")
        return view(*args, **kwargs)

    return guarded


def samples(text: str) -> dict:
    """``{(name, frozenset(labels.items())): value}`` of a scrape, parsed by prometheus-client."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def fitted(tmp_path, **entries) -> Path:
    path = iris_config(tmp_path, **entries)
    config = load_config([str(path)])
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    return path


def master_pid(tmp_path, index: int = 0, server: str = "gunicorn") -> int:
    """The pid of the gunicorn or granian master the fixture started (from its log)."""
    log = (tmp_path / f"{server}-{index}.log").read_text()
    found = re.search(r"Listening at: \S+ \((\d+)\)|Starting granian \(main PID: (\d+)\)", log)
    return int(found.group(1) or found.group(2))


def metric_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pipeforge-metrics-*")}


@pytest.mark.slow
def test_counts_add_up_over_two_workers(tmp_path, wsgi_server):
    path = fitted(tmp_path, predict_decorators=["tests.test_web_metrics.worker_pid"])
    url = wsgi_server(path, workers=2)
    # Made by pipeforge itself (the test exports nothing), named after the master.
    master = master_pid(tmp_path, server=wsgi_server.server)
    assert [d for d in metric_dirs() if d.startswith(f"pipeforge-metrics-{master}-")]

    def call(index: int):
        if index % 4 == 3:
            response = requests.get(url + "/predict", params={"sepal length": "x"}, timeout=30)
            return "bad", response
        if index % 4 == 2:
            return "post", requests.post(url + "/predict", json=[SETOSA] * 3, timeout=30)
        return "get", requests.get(url + "/predict", params=SETOSA, timeout=30)

    # Concurrent clients, so that both workers take requests (the second may
    # still be booting on a busy machine: go on until both have answered).
    answers, pids = [], set()
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(8) as pool:
        while len(answers) < 160 or (len(pids) < 2 and time.monotonic() < deadline):
            answers += pool.map(call, range(len(answers), len(answers) + 40))
            pids = {r.headers.get("X-Worker-Pid") for kind, r in answers if kind != "bad"}
    expected = {"get": 200, "post": 200, "bad": 400}
    assert all(response.status_code == expected[kind] for kind, response in answers)
    gets, posts, bad = (sum(kind == k for kind, _ in answers) for k in ("get", "post", "bad"))
    assert len(pids) == 2, "both workers must have answered for the test to mean something"

    # Each worker writes its counts out four times a second: once they are all
    # written, whichever worker answers the scrape gives the same sums.
    deadline = time.monotonic() + 10
    while True:
        scrape = samples(requests.get(url + "/metrics", timeout=10).text)
        if (
            value(scrape, "pipeforge_requests_total", route="/predict", method="GET", status="200")
            >= gets
        ):
            break
        assert time.monotonic() < deadline, "the counts never reached the requests sent"
        time.sleep(0.1)
    for _ in range(3):
        scrape = samples(requests.get(url + "/metrics", timeout=10).text)
        total = functools.partial(value, scrape, "pipeforge_requests_total", route="/predict")
        assert total(method="GET", status="200") == gets
        assert total(method="GET", status="400") == bad
        assert total(method="POST", status="200") == posts
        version = {"service": "/predict", "model_version": "1"}
        # A rejected input is never a model call, nor a prediction.
        assert value(scrape, "pipeforge_model_calls_total", **version) == gets + posts
        assert value(scrape, "pipeforge_predictions_total", **version) == gets + 3 * posts
        assert (
            value(
                scrape, "pipeforge_request_duration_seconds_count", route="/predict", method="GET"
            )
            == gets + bad
        )
        assert value(scrape, "pipeforge_model_version") == 1
        assert value(scrape, "pipeforge_model_age_seconds") > 0
        loads = value(scrape, "pipeforge_model_cache_refreshes_total", outcome="loaded")
        if wsgi_server.server == "gunicorn":
            assert loads >= 2  # each worker filled its model cache
        else:
            assert loads == 1  # pf-serve: the model was loaded once, before the workers forked


@pytest.mark.slow
def test_the_directory_of_a_stopped_server_is_removed(tmp_path, wsgi_server):
    import psutil

    path = fitted(tmp_path)
    url = wsgi_server(path, workers=1)
    master = master_pid(tmp_path, server=wsgi_server.server)
    first = {d for d in metric_dirs() if d.startswith(f"pipeforge-metrics-{master}-")}
    assert len(first) == 1
    assert requests.get(url + "/metrics", timeout=10).status_code == 200
    proc = psutil.Process(master)
    proc.terminate()
    proc.wait(30)
    wsgi_server(path, workers=1)  # the next server cleans up after the dead one
    assert not first & metric_dirs()


def memory_config(**entries) -> Config:
    from sklearn.dummy import DummyClassifier

    persister = MemoryPersister()
    model = DummyClassifier(strategy="constant", constant="a").fit([[0.0]], ["a"])
    persister.activate(persister.write(model))
    return Config(
        {
            "model_persister": persister,
            "predict_service": PredictService(mapping=[("x", "float")]),
            **entries,
        }
    )


def test_settings_path_switch_and_decorators():
    app = create_app(memory_config(metrics={"path": "/internal/metrics"}))
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/internal/metrics").status_code == 200
    assert "/internal/metrics" in client.get("/openapi.json").json["paths"]

    client = create_app(memory_config(metrics=False)).test_client()
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").json["paths"]

    config = memory_config(metrics_decorators=["tests.test_web_metrics.needs_token"])
    client = create_app(config).test_client()
    assert client.get("/metrics").status_code == 403
    response = client.get("/metrics", headers={"X-Token": "s3cret"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"


def test_unmatched_paths_share_one_label():
    client = create_app(memory_config()).test_client()
    for path in ("/a", "/b", "/c/d"):
        assert client.get(path).status_code == 404
    scrape = samples(client.get("/metrics").text)
    assert (
        value(scrape, "pipeforge_requests_total", route="unmatched", method="GET", status="404")
        == 3
    )
    assert not [key for key in scrape if ("route", "/a") in key[1]]


class BrokenStore(MemoryPersister):
    """A store that is down: every refresh of the cache fails."""

    def __init__(self):
        super().__init__()
        self.down = False

    def list_properties(self):
        if self.down:
            raise OSError("the database is down")
        return super().list_properties()

    def read(self, version=None):
        if self.down:
            raise OSError("the database is down")
        return super().read(version)


def test_jobs_and_cache_refreshes_are_counted():
    from sklearn.dummy import DummyClassifier

    store = BrokenStore()
    model = DummyClassifier(strategy="constant", constant="a").fit([[0.0]], ["a"])
    store.activate(store.write(model))
    cached = CachedUpdatePersister(impl=store)
    from pipeforge.server import add_url_rule

    config = memory_config(
        model_persister=cached,
        flask_add_url_rules=[
            add_url_rule(
                "/update-model-cache",
                view_func="pipeforge.server.update_model_cache",
                methods=["POST"],
            ),
        ],
        security={"unguarded": ["update_model_cache"]},
    )
    app = create_app(config)
    client = app.test_client()
    try:
        assert client.get("/predict?x=1").status_code == 200  # fills the cache: "loaded"
        job = client.post("/update-model-cache").json["job_id"]
        assert wait_for_job(client, job)["status"] == "finished"  # "unchanged"
        store.down = True
        job = client.post("/update-model-cache").json["job_id"]
        assert wait_for_job(client, job)["status"] == "error"
        deadline = time.monotonic() + 10
        while True:
            scrape = samples(client.get("/metrics").text)
            if value(scrape, "pipeforge_jobs_total", job="update_model_cache", state="error"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert value(scrape, "pipeforge_model_cache_refreshes_total", outcome="loaded") == 1
        assert value(scrape, "pipeforge_model_cache_refreshes_total", outcome="unchanged") == 1
        assert value(scrape, "pipeforge_model_cache_refresh_failures_total") == 1
        jobs = functools.partial(value, scrape, "pipeforge_jobs_total", job="update_model_cache")
        assert (jobs(state="running"), jobs(state="finished"), jobs(state="error")) == (2, 1, 1)
        assert value(scrape, "pipeforge_jobs_running", job="update_model_cache") == 0
    finally:
        app.extensions["pipeforge"].stop()
