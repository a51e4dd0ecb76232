"""One HTTP boundary: the encoding rule, the error body, bool fields, a misfit mapping."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression

from pipeforge import web
from pipeforge.config import Config, load_config
from pipeforge.errors import NoModelError, PredictError, RequestError, VersionError
from pipeforge.interfaces import annotate
from pipeforge.server import PredictService, create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config
from tests.test_server import MemoryPersister, memory_app

ERROR_KEYS = {"service_name", "service_version", "status", "error_code", "error_message"}


def strict(response):
    """The body parsed as RFC 8259 JSON: NaN/Infinity literals fail the test."""

    def refuse(name):
        raise AssertionError(f"non-JSON literal {name} in {response.get_data(as_text=True)!r}")

    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True), parse_constant=refuse)


# -- the encoding rule ---------------------------------------------------------


def test_dumps_plain_types_numpy_pandas_and_dates():
    value = {
        "int64": np.int64(7),
        "float32": np.float32(0.5),
        "array": np.arange(3),
        "bools": np.array([True, False]),
        "series": pd.Series([1.5, 2.5]),
        "frame": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
        "day": dt.date(2024, 5, 1),
        "stamp": pd.Timestamp("2024-05-01T12:30:00"),
        "d64": np.datetime64("2024-05-01T12:30"),
        "d64s": np.array(["2024-05-01", "NaT"], dtype="datetime64[D]"),
        "nat": pd.NaT,
        "na": pd.NA,
        "tuple": (1, "a"),
        "set": {3},
        "decimal": decimal.Decimal("1.25"),
        "seconds": dt.timedelta(minutes=2),
    }
    assert json.loads(web.dumps(value)) == {
        "int64": 7,
        "float32": 0.5,
        "array": [0, 1, 2],
        "bools": [True, False],
        "series": [1.5, 2.5],
        "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        "when": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "stamp": "2024-05-01T12:30:00",
        "d64": "2024-05-01T12:30",
        "d64s": ["2024-05-01", None],
        "nat": None,
        "na": None,
        "tuple": [1, "a"],
        "set": [3],
        "decimal": 1.25,
        "seconds": 120.0,
    }


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        np.float64("nan"),
        np.float32("inf"),
        np.array([1.0, np.inf, -np.inf, np.nan]),
        pd.Series([np.nan, 1.0]),
        {"deep": [{"x": (math.inf,)}]},
        {np.int64(1): math.nan},
    ],
)
def test_non_finite_numbers_become_null(value):
    text = web.dumps(value)
    for literal in ("NaN", "Infinity"):
        assert literal not in text
    assert "null" in text
    assert json.loads(text) == web.to_jsonable(value)


def test_error_status_table():
    from werkzeug.exceptions import MethodNotAllowed

    class Gone(RuntimeError):
        http_status = 410
        error_code = 12

    assert web.error_status(RequestError("bad", 3)) == (400, "bad", 3)
    assert web.error_status(VersionError("retrain pca"))[:2] == (409, "retrain pca")
    assert web.error_status(NoModelError())[0] == 503
    assert web.error_status(PredictError("cannot", 5)) == (500, "cannot", 5)
    assert web.error_status(Gone("it left")) == (410, "it left", 12)
    assert web.error_status(MethodNotAllowed(["GET"]))[0] == 405
    assert web.error_status(KeyError("secret internals")) == (500, web.GENERIC_ERROR, -1)


# -- non-finite outputs on every route ---------------------------------------


class NonFiniteModel:
    """A user model whose outputs and metadata hold NaN and infinities."""

    classes_ = np.array(["a", "b"])

    def predict(self, X):
        return np.array([math.inf, -math.inf, math.nan, 1.5])[: len(X)]

    def predict_proba(self, X):
        return np.array([[math.nan, math.inf]] * len(X))


@pytest.fixture(scope="module")
def overflow_app():
    """A real regressor (fitted on iris) whose output overflows for huge inputs."""
    X = np.random.default_rng(0).normal(size=(50, 4)) * 3
    model = LinearRegression().fit(X, X @ [4.0, 3.0, 2.0, 1.0] + 1)
    annotate(model, {"score_test": math.nan, "score_train": math.inf})
    service = PredictService(mapping=[(name, "float") for name in IRIS_FEATURES])
    app = memory_app(model, service, alive={"process_store_required": []})
    return app


def test_predict_overflow_is_null_in_get_and_post(overflow_app):
    client = overflow_app.test_client()
    query = "&".join(f"{name}=1e308" for name in IRIS_FEATURES)
    response = client.get("/predict?" + query.replace(" ", "%20"))
    assert response.status_code == 200
    assert strict(response)["result"] is None
    small = dict.fromkeys(IRIS_FEATURES, 1.0)
    huge = dict.fromkeys(IRIS_FEATURES, -1e308)
    response = client.post("/predict", json=[small, huge])
    body = strict(response)
    assert response.status_code == 200
    assert body["result"][0] == pytest.approx(11.0) and body["result"][1] is None


def test_alive_and_list_encode_non_finite_metadata(overflow_app):
    client = overflow_app.test_client()
    alive = client.get("/alive")
    assert alive.status_code == 200
    assert strict(alive)["model"]["metadata"]["score_test"] is None
    assert strict(alive)["model"]["metadata"]["score_train"] is None
    listed = strict(client.get("/list"))
    assert listed["models"][0]["score_test"] is None


def test_non_finite_predictions_and_probabilities():
    model = NonFiniteModel()
    labels = PredictService(mapping=[("x", "float")], entry_point="/labels")
    proba = PredictService(mapping=[("x", "float")], entry_point="/proba", predict_proba=True)
    client = memory_app(model, labels, proba).test_client()
    rows = [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}]
    assert strict(client.post("/labels", json=rows))["result"] == [None, None, None, 1.5]
    assert strict(client.get("/proba?x=1"))["result"] == {"a": None, "b": None}


def test_pipeline_route_non_finite_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {
        "op_store": {"url": f"sqlite:///{tmp_path / 'ops.db'}"},
        "pipelines": {
            "to_float": {
                "nodes": [
                    {
                        "op": {
                            "__factory__": "pipeforge.pipelines.FunctionOp",
                            "function": "numpy.asarray",
                        },
                        "inputs": "__pipeline_input__",
                        "outputs": "__pipeline_output__",
                    }
                ]
            }
        },
    }
    path = tmp_path / "floats.yaml"
    path.write_text(yaml.safe_dump(config))
    app = create_app(load_config([str(path)]))
    try:
        client = app.test_client()
        # 1e999 parses to infinity in Python's json; the pipeline passes it through.
        response = client.post(
            "/pipelines/to_float/main",
            data='{"pipeline_input": [1e999, -1e999, 2.5]}',
            content_type="application/json",
        )
        assert response.status_code == 200
        assert strict(response)["pipeline_output"] == [None, None, 2.5]
    finally:
        service = app.extensions["pipeforge_pipelines"]
        service.shutdown()
        service.store.dispose()


# -- one error body ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/predict", {"data": "[1", "content_type": "application/json"}, 400),
        ("post", "/predict", {"data": "[{}]", "content_type": "text/csv"}, 400),
        ("post", "/predict", {"data": "[NaN]", "content_type": "application/json"}, 400),
        ("get", "/predict", {}, 400),
        ("get", "/nowhere", {}, 404),
        ("put", "/alive", {}, 405),
        ("post", "/activate", {"data": "{", "content_type": "application/json"}, 400),
        ("post", "/activate", {"json": {"model_version": 9}}, 404),
        ("post", "/activate", {"json": ["model_version"]}, 400),
    ],
)
def test_every_error_has_the_one_body(tmp_path, method, path, kwargs, status):
    config = load_config([str(iris_config(tmp_path))], __mode__="predict")
    from pipeforge import training

    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    app = create_app(config)
    try:
        response = getattr(app.test_client(), method)(path, **kwargs)
        body = strict(response)
        assert response.status_code == status, body
        assert set(body) == {"metadata"}
        assert set(body["metadata"]) == ERROR_KEYS
        assert body["metadata"]["status"] == "ERROR"
        assert body["metadata"]["service_name"] == "iris"
    finally:
        app.extensions["pipeforge"].stop()


def test_unexpected_errors_are_logged_and_hidden(caplog):
    class Broken:
        def predict(self, X):
            raise KeyError("database password is hunter2")

    service = PredictService(mapping=[("x", "float")])
    client = memory_app(Broken(), service).test_client()
    with caplog.at_level(logging.ERROR, logger="pipeforge.web"):
        response = client.get("/predict?x=1")
    assert response.status_code == 500
    assert strict(response)["metadata"]["error_message"] == web.GENERIC_ERROR
    assert "hunter2" not in response.get_data(as_text=True)
    assert any("hunter2" in record.exc_text for record in caplog.records if record.exc_text)


def test_subclass_shapes_its_own_response():
    class Plain(PredictService):
        def response_from_prediction(self, y_pred, single=True):
            return web.json_response({"prediction": y_pred, "n": len(y_pred)}, 201)

    client = memory_app(NonFiniteModel(), Plain(mapping=[("x", "float")])).test_client()
    response = client.get("/predict?x=1")
    assert response.status_code == 201
    assert strict(response) == {"prediction": [None], "n": 1}


# -- bool fields (SPEC section 8) --------------------------------------------


class Echo:
    def predict(self, X):
        return np.asarray(X, dtype=object)[:, 0]


@pytest.fixture(scope="module")
def flag_client():
    service = PredictService(mapping=[("on", "bool"), ("n", "int")])
    return memory_app(Echo(), service).test_client()


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False)])
def test_bool_takes_json_booleans_in_a_post(flag_client, value, expected):
    response = flag_client.post("/predict", json=[{"on": value, "n": 1}])
    assert response.status_code == 200
    assert strict(response)["result"] == [expected]


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("false", False), ("1", True), ("0", False)]
)
def test_bool_takes_words_and_digits_in_a_query(flag_client, text, expected):
    response = flag_client.get(f"/predict?on={text}&n=1")
    assert response.status_code == 200
    assert strict(response)["result"] is expected


@pytest.mark.parametrize("value", [1, 0, 2, None, "yes", [True], {"v": True}])
def test_bool_refuses_what_is_not_a_boolean_in_a_post(flag_client, value):
    response = flag_client.post("/predict", json=[{"on": value, "n": 1}])
    assert response.status_code == 400
    assert "'on'" in strict(response)["metadata"]["error_message"]


# -- a mapping that does not fit the model -----------------------------------


def iris_app_with(tmp_path, mapping):
    config = load_config([str(iris_config(tmp_path))], __mode__="predict")
    from pipeforge import training

    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    config["predict_service"] = PredictService(mapping=mapping)
    return create_app(config)


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ([(name, "float") for name in IRIS_FEATURES[:3]], "has 3 fields"),
        ([(name, "float") for name in [*IRIS_FEATURES, "petal colour"]], "has 5 fields"),
    ],
)
def test_misfit_mapping_is_said_once_and_clearly(tmp_path, caplog, mapping, needle):
    app = iris_app_with(tmp_path, mapping)
    client = app.test_client()
    sample = "&".join(f"{name}=1" for name, _ in mapping).replace(" ", "%20")
    try:
        with caplog.at_level(logging.ERROR):
            answers = [client.get("/predict?" + sample) for _ in range(3)]
        for response in answers:
            assert response.status_code == 503
            message = strict(response)["metadata"]["error_message"]
            assert needle in message and "model version 1" in message
        said = [r for r in caplog.records if needle in r.getMessage()]
        assert len(said) == 1
        alive = client.get("/alive")
        assert alive.status_code == 503
        assert needle in strict(alive)["metadata"]["error_message"]
    finally:
        app.extensions["pipeforge"].stop()


def test_column_names_must_match_a_dataframe_model():
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    swapped = PredictService(mapping=[("b", "float"), ("a", "float")])
    client = memory_app(model, swapped).test_client()
    response = client.get("/predict?a=1&b=2")
    assert response.status_code == 503
    assert "same order" in strict(response)["metadata"]["error_message"]
    right = PredictService(mapping=[("a", "float"), ("b", "float")])
    assert memory_app(model, right).test_client().get("/predict?a=1&b=2").status_code == 200


def test_fitting_mapping_passes_the_check(tmp_path):
    app = iris_app_with(tmp_path, [(name, "float") for name in IRIS_FEATURES])
    try:
        client = app.test_client()
        assert client.get("/alive").status_code == 200
        sample = "&".join(f"{name}=1" for name in IRIS_FEATURES).replace(" ", "%20")
        assert client.get("/predict?" + sample).status_code == 200
    finally:
        app.extensions["pipeforge"].stop()


def test_read_json_helper_on_its_own():
    from flask import Flask

    app = Flask("t")
    web.install_error_handlers(app, {"service_name": "own"})

    @app.post("/echo")
    def echo():
        return web.json_response(web.read_json(expect=dict))

    client = app.test_client()
    assert client.post("/echo", json={"a": 1}).json == {"a": 1}
    response = client.post("/echo", json=[1])
    assert response.status_code == 400
    assert "must be a JSON object; got a JSON list" in response.json["metadata"]["error_message"]
    assert response.json["metadata"]["service_name"] == "own"
    assert client.post("/echo").status_code == 400


def test_config_memory_app_has_no_model_yet():
    persister = MemoryPersister()
    service = PredictService(mapping=[("x", "float")])
    app = create_app(Config({"model_persister": persister, "predict_service": service}))
    response = app.test_client().get("/predict?x=1")
    assert response.status_code == 503
    assert "no model available yet" in strict(response)["metadata"]["error_message"]


def test_the_boundary_api_is_pinned():
    # Routes of other modules (online learning's /api/*) are built on these names.
    expected = {
        "to_jsonable",
        "dumps",
        "json_response",
        "ok_metadata",
        "error_body",
        "error_status",
        "error_response",
        "read_json",
        "json_kind",
        "guarded",
        "install_error_handlers",
        "GENERIC_ERROR",
    }
    assert expected <= set(web.__all__)
    from pipeforge.server import predict_service

    # The old import site keeps working for code written against it.
    assert predict_service.json_response is web.json_response
    assert predict_service.error_body is web.error_body
