"""The prediction log, the shadow and feedback on a real ``gunicorn -w 2``, SQLite and PostgreSQL.

Two versions fitted by ``pf-fit``; the second carries the alias
``challenger`` and shadows every request. Requests spread over both workers
(a new connection each); the log is read back by the public reader; then
four processes post the feedback of every request at the same time, and
each request id is taken exactly once: one 200, every other post 409.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import requests

from pipeforge.config import load_config
from pipeforge.release.aliases import set_alias
from pipeforge.release.prediction_log import logs_in, read_log
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config

TOKEN = "gunicorn-feedback-token"
REQUESTS = 40
POSTERS = 4


def _fit(path: Path) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("pf-fit"))],
        env={**os.environ, "PIPEFORGE_CONFIG": str(path)},
        cwd=path.parent,
        check=True,
        timeout=120,
        capture_output=True,
    )


def _post_all(url: str, ids: list[str], truth: str, seed: int) -> dict[str, int]:
    """Post the feedback of every id, in an order of this process's own."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    statuses = {}
    with requests.Session() as session:
        for request_id in order:
            answer = session.post(
                url + "/feedback",
                json={"id": request_id, "ground_truth": truth},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            assert answer.headers["Content-Type"] == "application/json", answer.text
            statuses[request_id] = answer.status_code
    return statuses


def _wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_log_shadow_and_feedback_exactly_once_across_processes(tmp_path, sql_url, gunicorn_server):
    service = {
        "__factory__": "pipeforge.server.PredictService",
        "mapping": [[name, "float"] for name in IRIS_FEATURES],
        "prediction_log": {"flush_seconds": 0.1},
        "shadow": {"alias": "challenger", "fraction": 1.0},
    }
    store = {
        "__factory__": "pipeforge.persistence.CachedUpdatePersister",
        "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
        "impl": {"__factory__": "pipeforge.persistence.Database", "url": sql_url},
    }
    path = iris_config(
        tmp_path,
        predict_service=service,
        model_persister=store,
        feedback={"enabled": True},
        feedback_decorators=["pipeforge.guards.require_token"],
        scoring="accuracy",
    )
    _fit(path)
    _fit(path)
    config = load_config([str(path)], __mode__="predict")
    config["model_persister"].activate(1)  # pf-fit activated the newest
    set_alias(config["model_persister"], "challenger", 2)
    url = gunicorn_server(path, env={"PIPEFORGE_TOKENS": TOKEN})

    sample = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
    ids = []
    for _ in range(REQUESTS):
        answer = requests.get(url + "/predict", params=sample, timeout=30)  # any worker
        assert answer.status_code == 200, answer.text
        assert answer.json()["metadata"]["model_version"] == 1
        ids.append(answer.headers["X-Request-ID"])
    assert len(set(ids)) == REQUESTS

    log = logs_in(config)["predict_service"]
    logged = _wait_for(lambda: len(read_log(log)) == REQUESTS and read_log(log))
    assert logged, f"{len(read_log(log))} of {REQUESTS} answers logged"
    assert {e.request_id for e in logged} == set(ids)
    assert {(e.version, e.shadow_alias, e.shadow_version) for e in logged} == {(1, "challenger", 2)}
    assert all(e.shadow_outputs == e.outputs == ["Iris-setosa"] for e in logged)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(POSTERS, mp_context=context) as pool:
        runs = [pool.submit(_post_all, url, ids, "Iris-setosa", seed) for seed in range(POSTERS)]
        results = [run.result(timeout=300) for run in runs]
    for request_id in ids:
        statuses = sorted(result[request_id] for result in results)
        assert statuses == [200] + [409] * (POSTERS - 1), (request_id, statuses)
    assert len(read_log(log, with_feedback=True)) == REQUESTS

    for _ in range(4):  # each worker reads the same scores from the shared log
        scores = requests.get(url + "/live-scores", timeout=30).json()["result"]
        assert {(s["role"], s["version"], s["n"], s["score"]) for s in scores} == {
            ("primary", 1, REQUESTS, 1.0),
            ("shadow", 2, REQUESTS, 1.0),
        }


@pytest.mark.parametrize("body", [{"id": "x", "ground_truth": 1}])
def test_feedback_is_off_by_default(tmp_path, gunicorn_server, body):
    service = {
        "__factory__": "pipeforge.server.PredictService",
        "mapping": [[name, "float"] for name in IRIS_FEATURES],
        "prediction_log": True,
    }
    path = iris_config(tmp_path, predict_service=service)
    url = gunicorn_server(path, workers=1)
    answer = requests.post(url + "/feedback", json=body, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["metadata"]["status"] == "ERROR"
