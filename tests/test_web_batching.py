"""Adaptive batching: concurrent /predict calls merged into one model call, errors kept apart."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pipeforge.config import Config, load_config
from pipeforge.errors import ConfigError, PredictError
from pipeforge.server import PredictService, create_app
from pipeforge.server.batching import Batcher, batcher_from_settings
from tests.fixtures.gunicorn import iris_config
from tests.test_server import MemoryPersister


class Affine:
    """2x + 1 of the first feature; refuses 13 (a model error for one input only)."""

    def predict(self, X):
        x = np.asarray(X, dtype=float)[:, 0]
        if (x == 13).any():
            raise PredictError("13 is unlucky", 13)
        return 2 * x + 1


# -- the Batcher on its own ------------------------------------------------------


def run_together(batcher: Batcher, inputs: list, call) -> list:
    """Run ``batcher.run`` for each input in its own thread, all announced first."""
    ready = threading.Barrier(len(inputs))
    results: list = [None] * len(inputs)

    def one(index: int):
        batcher.arrive()
        try:
            ready.wait()
            results[index] = ("ok", batcher.run("key", inputs[index], call))
        except PredictError as exc:
            results[index] = ("error", exc.error_message)
        finally:
            batcher.leave()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_calls_are_merged_and_each_gets_its_rows():
    calls = []

    def call(X):
        calls.append(len(X))
        return Affine().predict(X)

    batcher = Batcher(max_batch_size=64, max_wait_ms=2000)
    inputs = [np.array([[float(i)], [float(i) + 0.5]]) for i in range(8)]
    results = run_together(batcher, inputs, call)
    for i, (status, y) in enumerate(results):
        assert status == "ok"
        assert y.tolist() == [2 * i + 1, 2 * i + 2]
    assert sum(calls) == 16 and len(calls) < 8


def test_a_failing_input_fails_alone():
    calls = []

    def call(X):
        calls.append(len(X))
        return Affine().predict(X)

    batcher = Batcher(max_batch_size=64, max_wait_ms=2000)
    inputs = [np.array([[float(i)]]) for i in (1, 13, 2, 3)]
    results = run_together(batcher, inputs, call)
    assert results == [
        ("ok", pytest.approx([3.0])),
        ("error", "13 is unlucky"),
        ("ok", pytest.approx([5.0])),
        ("ok", pytest.approx([7.0])),
    ]


def test_max_batch_size_bounds_rows():
    sizes = []

    def call(X):
        sizes.append(len(X))
        return Affine().predict(X)

    batcher = Batcher(max_batch_size=4, max_wait_ms=2000)
    inputs = [np.array([[float(i)]] * 3) for i in range(6)]
    results = run_together(batcher, inputs, call)
    assert [y.tolist() for _, y in results] == [[2 * i + 1] * 3 for i in range(6)]
    assert max(sizes) <= 4 and sum(sizes) == 18


def test_a_lone_request_does_not_wait():
    batcher = Batcher(max_batch_size=64, max_wait_ms=60_000)
    batcher.arrive()
    try:
        # Nothing else is in flight: the call goes at once (else this test would hang a minute).
        assert batcher.run("key", np.array([[1.0]]), Affine().predict).tolist() == [3.0]
    finally:
        batcher.leave()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"max_batch_size": 0}, "batching.max_batch_size: must be an integer of at least 1"),
        ({"max_wait_ms": -1}, "batching.max_wait_ms: must be a number of milliseconds"),
        (
            {"max_wait": 5},
            "batching.max_wait: unknown setting 'max_wait'; did you mean 'max_wait_ms'",
        ),
        ("yes", "batching: must be false or a dict"),
    ],
)
def test_bad_settings_say_what_is_wrong(value, problem):
    with pytest.raises(ConfigError, match=problem):
        batcher_from_settings(value)


def test_off_by_default_and_per_service_switch():
    assert batcher_from_settings(None) is None
    assert batcher_from_settings({"enabled": False}) is None
    persister = MemoryPersister()
    persister.activate(persister.write(Affine()))
    on = PredictService(mapping=[("x", "float")], entry_point="/on")
    off = PredictService(mapping=[("x", "float")], entry_point="/off", batching=False)
    default = PredictService(mapping=[("x", "float")], entry_point="/default")
    config = Config(
        {
            "model_persister": persister,
            "batching": {"max_wait_ms": 1},
            "a": on,
            "b": off,
            "c": default,
        }
    )
    client = create_app(config).test_client()
    assert on._batcher is not None and default._batcher is not None and off._batcher is None
    for path in ("/on", "/off", "/default"):
        assert client.get(path + "?x=4").json["result"] == 9.0
    assert client.post("/on", json=[{"x": 1}, {"x": 2}]).json["result"] == [3.0, 5.0]


# -- under a real threaded gunicorn, and granian ------------------------------------------------


@pytest.mark.slow
def test_threaded_workers_merge_and_keep_answers_apart(tmp_path, wsgi_server):
    path = iris_config(
        tmp_path,
        predict_service={
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [["x", "float"]],
        },
        batching={"max_batch_size": 64, "max_wait_ms": 20},
    )
    persister = load_config([str(path)])["model_persister"]
    persister.activate(persister.write(Affine()))
    url = wsgi_server(path, workers=2, threads=8)

    def call(index: int):
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        if index == 50:
            response = session.get(url + "/predict", params={"x": 13}, timeout=60)
            return index, response.status_code, response.json()
        if index == 70:
            response = session.get(url + "/predict", params={"x": "thirteen"}, timeout=60)
            return index, response.status_code, response.json()
        if index % 3 == 0:
            x = 1000 + index  # distinct inputs, never 13
            rows = [{"x": x}, {"x": x + 0.25}, {"x": x + 0.5}]
            response = session.post(url + "/predict", json=rows, timeout=60)
        else:
            response = session.get(url + "/predict", params={"x": 1000 + index}, timeout=60)
        return index, response.status_code, response.json()

    sessions: dict = {}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(400)))
    for session in sessions.values():
        session.close()

    for index, status, body in answers:
        if index == 50:  # the model refuses this input: that request fails, alone
            assert status == 500 and body["metadata"]["error_message"] == "13 is unlucky"
            assert body["metadata"]["error_code"] == 13
        elif index == 70:  # rejected before the model
            assert status == 400 and "'x'" in body["metadata"]["error_message"]
        elif index % 3 == 0:
            assert status == 200, body
            x = 1000 + index
            assert body["result"] == [2 * x + 1, 2 * x + 1.5, 2 * x + 2]
        else:
            assert status == 200, body
            assert body["result"] == 2 * (1000 + index) + 1

    labels = (("model_version", "1"), ("service", "/predict"))
    served = 400 - 2
    rows = sum(3 if i % 3 == 0 else 1 for i in range(400) if i not in (50, 70))
    deadline = time.monotonic() + 10
    while True:  # the workers write their counts out four times a second
        scrape = {}
        text = requests.get(url + "/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        predicted = scrape.get(("pipeforge_predictions_total", labels), 0)
        if predicted >= rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert predicted == rows
    calls = scrape["pipeforge_model_calls_total", labels]
    assert calls < served, f"{calls} model calls for {served} requests: nothing was merged"
