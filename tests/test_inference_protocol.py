"""The Open Inference Protocol's REST routes, through a real gunicorn.

The service serves examples' iris model (two stored versions, the second
active) under the name ``iris`` and a second predict service answering
probabilities. It is called with the protocol's own Python client
(``tritonclient[http]``) and with plain HTTP bodies written after the
protocol's specification, and must give the same predictions as
``/predict`` and as the stored models themselves. Bad bodies are 400s and
unknown models or versions 404s, each with the protocol's error object
beside pipeforge's error body.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.server import create_app
from pipeforge.training import fit
from tests.fixtures.gunicorn import (
    IRIS_FEATURES,
    ROOT,
    _wait_for_url,
    iris_config,
    stop_process,
)

tritonclient_http = pytest.importorskip("tritonclient.http")  # in the test extra: never skipped

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
PROBA_SERVICE = {
    "__factory__": "pipeforge.server.PredictService",
    "mapping": [[name, "float"] for name in IRIS_FEATURES],
    "entry_point": "/predict-proba",
    "predict_proba": True,
}
ON = {"enabled": True, "names": {"predict_service": "iris", "predict_service_proba": "iris-proba"}}


def start_gunicorn(config: Path, *, workers: int = 2, args: tuple = ()):
    log = config.parent / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind"]
    command += ["127.0.0.1:0", "--no-control-socket", "--graceful-timeout", "5", *args]
    environ = {**os.environ, "PIPEFORGE_CONFIG": str(config)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "pipeforge.wsgi:app"], cwd=ROOT, env=environ, stdout=out, stderr=out
        )
    try:
        return proc, _wait_for_url(proc, log, 60.0)
    except BaseException:
        stop_process(proc)
        raise


def fit_versions(config_path: Path, *Cs: float) -> None:
    """Fit and store one model per ``C`` (the last one active), as ``pf-fit`` does."""
    config = load_config([str(config_path)])
    for C in Cs:
        model = config["model"].set_params(C=C)
        fit(config["dataset_loader_train"], model, config["model_persister"])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(url, persister)``: gunicorn serving two stored versions over the protocol."""
    folder = tmp_path_factory.mktemp("oip")
    path = iris_config(folder, predict_service_proba=PROBA_SERVICE, inference_protocol=ON)
    fit_versions(path, 0.01, 0.3)
    proc, url = start_gunicorn(path)
    try:
        yield url, load_config([str(path)])["model_persister"], path
    finally:
        stop_process(proc)


def predict(url: str, rows: list[list[float]], entry_point: str = "/predict") -> list:
    samples = [dict(zip(IRIS_FEATURES, row, strict=True)) for row in rows]
    answer = requests.post(url + entry_point, json=samples, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def infer(url: str, body, model: str = "iris", version: str | None = None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    if isinstance(body, str | bytes):
        headers = {"Content-Type": "application/json"}
        return requests.post(url + path, data=body, headers=headers, timeout=30)
    return requests.post(url + path, json=body, timeout=30)


def texts(array) -> list[str]:
    """A BYTES output as the client gives it (str from JSON, bytes from binary data), as text."""
    return [x.decode() if isinstance(x, bytes) else str(x) for x in array.ravel()]


def client(url: str):
    return tritonclient_http.InferenceServerClient(url.removeprefix("http://"))


# -- with tritonclient -----------------------------------------------------------------


def test_tritonclient_sees_a_live_ready_server_and_its_models(served):
    url, _, _ = served
    triton = client(url)
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("iris") and triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("iris", "7")
    server = triton.get_server_metadata()
    assert server["name"] == "pipeforge" and server["extensions"] == []
    metadata = triton.get_model_metadata("iris")
    assert metadata["name"] == "iris" and metadata["versions"] == ["1", "2"]
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [
        {"name": name, "datatype": "FP64", "shape": [-1]} for name in IRIS_FEATURES
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert metadata["outputs"][0]["datatype"] == "BYTES"
    assert metadata["outputs"][1]["shape"] == [-1, 3]


def _triton_inputs(rows, datatype: str = "FP64"):
    columns = np.array(rows, dtype=np.float64 if datatype == "FP64" else np.float32).T
    inputs = []
    for name, column in zip(IRIS_FEATURES, columns, strict=True):
        tensor = tritonclient_http.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(column, binary_data=False)
        inputs.append(tensor)
    return inputs


def test_tritonclient_infers_what_predict_answers(served):
    url, _, _ = served
    outputs = [
        tritonclient_http.InferRequestedOutput("predict", binary_data=False),
        tritonclient_http.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client(url).infer("iris", _triton_inputs(ROWS), outputs=outputs, request_id="triton-1")
    labels = texts(result.as_numpy("predict"))
    assert labels == predict(url, ROWS)
    assert result.get_response()["id"] == "triton-1"
    assert result.get_response()["model_version"] == "2"
    proba = result.as_numpy("predict_proba")
    by_label = predict(url, ROWS, "/predict-proba")
    expected = [[row[label] for label in sorted(row)] for row in by_label]
    np.testing.assert_allclose(proba, expected, rtol=1e-12)


def test_tritonclient_fp32_tensors_and_a_matrix_give_the_same_labels(served):
    url, _, _ = served
    fp32 = client(url).infer("iris", _triton_inputs(ROWS, "FP32")).as_numpy("predict")
    matrix = tritonclient_http.InferInput("input-0", [len(ROWS), 4], "FP64")
    matrix.set_data_from_numpy(np.array(ROWS), binary_data=False)
    from_matrix = client(url).infer("iris", [matrix]).as_numpy("predict")
    assert fp32.shape == (3, 1)
    assert texts(fp32) == texts(from_matrix)
    assert texts(from_matrix) == predict(url, ROWS)


def test_tritonclient_names_an_unknown_model(served):
    url, _, _ = served
    with pytest.raises(tritonclient_http.InferenceServerException, match="no model named 'nope'"):
        client(url).get_model_metadata("nope")


# -- with bodies from the specification ------------------------------------------------


def test_a_matrix_body_answers_as_the_protocol_says(served):
    url, _, _ = served
    body = {
        "id": "42",
        "inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": ROWS}],
        "outputs": [{"name": "predict"}],
    }
    answer = infer(url, body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "model_name": "iris",
        "model_version": "2",
        "id": "42",
        "parameters": {},
        "outputs": [
            {
                "name": "predict",
                "shape": [3, 1],
                "datatype": "BYTES",
                "parameters": {"content_type": "np"},
                "data": predict(url, ROWS),
            }
        ],
    }


def test_a_version_in_the_path_serves_that_stored_version(served):
    url, persister, _ = served
    flat = [value for row in ROWS for value in row]
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": flat}]}
    body["outputs"] = [{"name": "predict_proba"}]
    answers = {}
    for version in ("1", "2"):
        answer = infer(url, body, version=version)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
        answers[version] = answer.json()["outputs"][0]["data"]
        stored = persister.read(int(version)).predict_proba(np.array(ROWS))
        np.testing.assert_allclose(answers[version], stored.ravel(), rtol=1e-12)
    assert answers["1"] != answers["2"]  # C=0.01 and C=0.3 differ
    assert infer(url, body).json()["outputs"][0]["data"] == answers["2"]  # the active one


def test_an_alias_in_the_path_serves_its_version_and_follows_a_move(served):
    url, persister, config_path = served
    rows = np.array(ROWS)
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    body["outputs"] = [{"name": "predict_proba"}]
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config_path)}
    admin = str(Path(sys.executable).with_name("pf-admin"))
    for version in (1, 2):
        moved = subprocess.run(
            [admin, "alias", "challenger", str(version)], env=env, capture_output=True, text=True
        )
        assert moved.returncode == 0, moved.stderr
        stored = persister.read(version).predict_proba(rows).ravel()
        deadline = time.monotonic() + 30  # the workers follow within one cache refresh
        while True:  # a worker that has not refreshed since the alias was set knows none (404)
            answer = infer(url, body, version="challenger")
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 200 and answer.json()["model_version"] == str(version):
                break
            assert time.monotonic() < deadline, answer.text
        np.testing.assert_allclose(answer.json()["outputs"][0]["data"], stored, rtol=1e-12)
    unknown = infer(url, body, version="nobody")
    assert unknown.status_code == 404
    assert "no model version 'nobody'" in unknown.json()["error"]


def test_per_field_tensors_with_nested_data_and_an_int_feature(served):
    url, _, _ = served
    inputs = [
        {"name": name, "shape": [3, 1], "datatype": "FP64", "data": [[row[i]] for row in ROWS]}
        for i, name in enumerate(IRIS_FEATURES)
    ]
    inputs[1] = {"name": IRIS_FEATURES[1], "shape": [3], "datatype": "INT32", "data": [3, 3, 3]}
    answer = infer(url, {"inputs": inputs})
    assert answer.status_code == 200, answer.text
    rows = [[row[0], 3, row[2], row[3]] for row in ROWS]
    assert answer.json()["outputs"][0]["data"] == predict(url, rows)
    assert len(answer.json()["id"]) == 36  # none sent: a new one (a UUID)


def test_the_probability_service_answers_labels_from_its_probabilities(served):
    url, _, _ = served
    body = {"inputs": [{"name": "m", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    answer = infer(url, body, model="iris-proba")
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == predict(url, ROWS)


def test_health_and_metadata_routes_answer_plain_http(served):
    url, _, _ = served
    assert requests.get(url + "/v2/health/live", timeout=10).status_code == 200
    assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200
    assert requests.get(url + "/v2/models/iris/versions/1/ready", timeout=10).status_code == 200
    server = requests.get(url + "/v2", timeout=10).json()
    assert set(server) == {"name", "version", "extensions"}
    proba = requests.get(url + "/v2/models/iris-proba", timeout=10).json()
    assert proba["parameters"]["entry_point"] == "/predict-proba"
    assert proba["parameters"]["predict_service"] == "predict_service_proba"


def _rows_of_features(extra: dict | None = None) -> dict:
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [ROWS[0][i]]}
        for i, name in enumerate(IRIS_FEATURES)
    ]
    return {"inputs": inputs, **(extra or {})}


BAD_BODIES = {
    "not JSON": ("{inputs: nope", "must be JSON"),
    "a JSON list": ("[1, 2]", "must be a JSON object"),
    "no inputs": ({"id": "x"}, "needs 'inputs'"),
    "wrong shape": (
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1] * 6}]},
        "shape [rows, 4]",
    ),
    "data not as the shape": (
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1] * 7}]},
        "holds 8 elements but 'data' has 7",
    ),
    "wrong datatype": (
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}]},
        "is BYTES, but field 'sepal length'",
    ),
    "values not of the datatype": (
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT8", "data": [1, 2, 300, 4]}]},
        "INT8 tensor holds whole numbers from -128 to 127; got 300",
    ),
    "unknown datatype": (
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1] * 4}]},
        "'datatype' must be one of",
    ),
    "missing input": (
        {"inputs": _rows_of_features()["inputs"][:3]},
        "missing input 'petal width'",
    ),
    "unknown input": (
        _rows_of_features(
            {
                "inputs": [
                    *_rows_of_features()["inputs"],
                    {"name": "colour", "shape": [1], "datatype": "FP64", "data": [1]},
                ]
            }
        ),  # noqa: E501
        "unknown input 'colour'",
    ),
    "unknown output": (_rows_of_features({"outputs": [{"name": "transform"}]}), "unknown output"),
    "an id that is no string": (_rows_of_features({"id": 7}), "'id' must be a string"),
    "no rows": (
        {"inputs": [{"name": "x", "shape": [0, 4], "datatype": "FP64", "data": []}]},
        "got shape [0, 4]",
    ),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_bad_body_is_a_400_with_the_protocols_error(served, case):
    url, _, _ = served
    body, message = BAD_BODIES[case]
    answer = infer(url, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert message in error["error"]
    assert (
        error["metadata"]["status"] == "ERROR"
        and error["metadata"]["error_message"] == error["error"]
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/nope", "no model named 'nope'"),
        ("/v2/models/nope/ready", "no model named 'nope'"),
        ("/v2/models/iris/versions/9", "no model with version 9"),
        ("/v2/models/iris/versions/9/ready", "no model with version 9"),
        ("/v2/models/iris/versions/latest", "no model version 'latest'"),
    ],
)
def test_an_unknown_model_or_version_is_a_404(served, path, message):
    url, _, _ = served
    answer = requests.get(url + path, timeout=10)
    assert answer.status_code == 404, answer.text
    assert message in answer.json()["error"]
    posted = requests.post(url + "/v2/models/nope/infer", json=_rows_of_features(), timeout=10)
    assert posted.status_code == 404 and "no model named 'nope'" in posted.json()["error"]


def test_the_routes_are_in_openapi_json(served):
    from openapi_spec_validator import validate

    url, _, _ = served
    document = requests.get(url + "/openapi.json", timeout=10).json()
    validate(document)
    paths = document["paths"]
    assert "post" in paths["/v2/models/iris/infer"]
    assert "post" in paths["/v2/models/iris/versions/{version}/infer"]
    assert "get" in paths["/v2/health/ready"] and "get" in paths["/v2"]
    tags = {
        op["tags"][0]
        for path, item in paths.items()
        if path.startswith("/v2")
        for op in item.values()
    }
    assert tags == {"inference protocol"}


def test_infer_counts_in_metrics_as_predict_does(served):
    url, _, _ = served

    def calls() -> float:
        text = requests.get(url + "/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("pipeforge_predictions_total{") and 'service="/predict"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    before = calls()
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    assert infer(url, body).status_code == 200
    deadline = time.monotonic() + 10
    while calls() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert calls() == before + 3


# -- readiness before a model, config, guards -------------------------------------------


def test_ready_only_once_a_model_is_served(tmp_path):
    path = iris_config(tmp_path, inference_protocol=True)
    proc, url = start_gunicorn(path, workers=1)
    try:
        assert requests.get(url + "/v2/health/live", timeout=10).status_code == 200
        not_ready = requests.get(url + "/v2/health/ready", timeout=10)
        assert not_ready.status_code == 400
        assert "model 'predict_service' is not ready" in not_ready.json()["error"]
        assert requests.get(url + "/v2/models/predict_service/ready", timeout=10).status_code == 400
        fit_versions(path, 0.3)
        deadline = time.monotonic() + 30  # the model cache looks every second
        while time.monotonic() < deadline:
            if requests.get(url + "/v2/health/ready", timeout=10).status_code == 200:
                break
            time.sleep(0.2)
        assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200
        assert requests.get(url + "/v2/models/predict_service/ready", timeout=10).status_code == 200
    finally:
        stop_process(proc)


def _app(tmp_path, **entries):
    return create_app(load_config([str(iris_config(tmp_path, **entries))]))


def test_the_routes_are_off_by_default(tmp_path):
    client_ = _app(tmp_path).test_client()
    assert client_.get("/v2/health/live").status_code == 404
    assert not [p for p in client_.get("/openapi.json").get_json()["paths"] if p.startswith("/v2")]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"enabld": True}, "config.py: inference_protocol.enabld: unknown setting 'enabld'"),
        ({"enabled": "yes"}, "config.py: inference_protocol.enabled: must be true or false"),
        (
            {"names": {"predict_servce": "x"}},
            "config.py: inference_protocol.names.predict_servce: unknown",
        ),
        (
            {"names": {"predict_service": "a/b"}},
            "config.py: inference_protocol.names.predict_service: a model",
        ),
        ("on", "config.py: inference_protocol: must be true, false or a mapping"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_file_and_key(tmp_path, setting, message):
    with pytest.raises(ConfigError) as caught:
        _app(tmp_path, inference_protocol=setting)
    assert str(caught.value).startswith(f"{tmp_path}/{message}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_services_decorator_list_guards_its_protocol_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_TOKENS", "a-token-of-24-characters")
    client_ = _app(
        tmp_path,
        inference_protocol=True,
        predict_decorators=["pipeforge.guards.require_token"],
    ).test_client()
    fit_versions(tmp_path / "config.py", 0.3)
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0]}]}
    refused = client_.post("/v2/models/predict_service/infer", json=body)
    assert refused.status_code == 401 and "error" in refused.get_json()
    assert client_.get("/v2/models/predict_service").status_code == 401
    headers = {"Authorization": "Bearer a-token-of-24-characters"}
    passed = client_.post("/v2/models/predict_service/infer", json=body, headers=headers)
    assert passed.status_code == 200, passed.get_data(as_text=True)
    assert client_.get("/v2/health/live").status_code == 200  # alive_decorators: none


def test_concurrent_infers_with_batching_answer_each_their_own_rows(tmp_path):
    path = iris_config(tmp_path, inference_protocol=True, batching={"max_wait_ms": 20})
    fit_versions(path, 0.3)
    proc, url = start_gunicorn(
        path, workers=1, args=("--worker-class", "gthread", "--threads", "8")
    )
    try:
        expected = {i: predict(url, [row]) for i, row in enumerate(ROWS)}
        answers: dict[int, list] = {}

        def call(i: int) -> None:
            body = {
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[i % 3]}]
            }
            answers[i] = infer(url, body, model="predict_service").json()["outputs"][0]["data"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert {i: answers[i] for i in range(12)} == {i: expected[i % 3] for i in range(12)}
    finally:
        stop_process(proc)


def test_binary_tensors_are_refused_with_a_hint(served):
    url, _, _ = served
    headers = {"Inference-Header-Content-Length": "10", "Content-Type": "application/octet-stream"}
    answer = requests.post(
        url + "/v2/models/iris/infer", data=b"{}" + b"\0" * 8, headers=headers, timeout=10
    )
    assert answer.status_code == 400
    assert "binary_data=False" in answer.json()["error"]
    assert json.loads(answer.text)["metadata"]["status"] == "ERROR"


# -- online models ---------------------------------------------------------------------


def test_online_models_answer_by_their_names_as_api_predict_does(tmp_path):
    from tests.fixtures.online import online_config

    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path / 'on.db'}"}
    path = online_config(tmp_path, store, inference_protocol=True)
    proc, url = start_gunicorn(path, workers=1)
    try:
        rows = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": -1.0}]
        for features in rows:  # something learnt, so that the answers differ by row
            learnt = {"features": features, "ground_truth": features["a"] * 2, "model": "reg"}
            assert requests.post(url + "/api/learn", json=learnt, timeout=10).status_code == 201
            learnt = {"features": features, "ground_truth": features["a"] > 2, "model": "spam"}
            assert requests.post(url + "/api/learn", json=learnt, timeout=10).status_code == 201
        inputs = [
            {"name": name, "shape": [2], "datatype": "FP64", "data": [r[name] for r in rows]}
            for name in ("a", "b")
        ]

        def api_predict(model: str) -> list:
            return [
                requests.post(
                    url + "/api/predict", json={"features": r, "model": model}, timeout=10
                ).json()["prediction"]
                for r in rows
            ]

        reg = infer(url, {"inputs": inputs, "id": "o1"}, model="reg")
        assert reg.status_code == 200, reg.text
        assert reg.json()["id"] == "o1" and reg.json()["model_name"] == "reg"
        assert reg.json()["outputs"][0]["data"] == pytest.approx(api_predict("reg"))
        asked = {"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
        spam = infer(url, asked, model="spam")
        assert spam.status_code == 200, spam.text
        labels, proba = spam.json()["outputs"]
        expected = api_predict("spam")
        assert proba["data"] == pytest.approx(
            [row[label] for row in expected for label in sorted(row)]
        )
        assert labels["data"] == [max(row, key=row.get) for row in expected]
        metadata = requests.get(url + "/v2/models/spam", timeout=10).json()
        assert metadata["parameters"] == {"flavor": "binary"}
        assert requests.get(url + "/v2/models/reg/ready", timeout=10).status_code == 200
        assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200
        versioned = infer(url, {"inputs": inputs}, model="reg", version="1")
        assert versioned.status_code == 404 and "no stored versions" in versioned.json()["error"]
        no_proba = infer(url, asked, model="reg")
        assert no_proba.status_code == 400 and "regression" in no_proba.json()["error"]
        assert requests.get(url + "/v2/models/nope", timeout=10).status_code == 404
    finally:
        stop_process(proc)
