"""The web service through Flask's test client: endpoints, services, jobs and errors."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from pipeforge.config import Config, load_config
from pipeforge.errors import ConfigError, NoModelError, PredictError, UnknownVersionError
from pipeforge.interfaces import ModelPersister, annotate
from pipeforge.server import PredictService, add_url_rule, create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
VIRGINICA = {"sepal length": 7.7, "sepal width": 3.0, "petal length": 6.1, "petal width": 2.3}


def query(sample: dict) -> str:
    from urllib.parse import urlencode

    return "/predict?" + urlencode(sample)


class MemoryPersister(ModelPersister):
    """A public in-memory fake of the persister interface (no pickling)."""

    def __init__(self):
        self.models: dict[int, object] = {}
        self.active: int | None = None

    def read(self, version=None):
        if version is None:
            if self.active is None:
                raise NoModelError("nothing active")
            version = self.active
        if version not in self.models:
            raise UnknownVersionError(version, self.models)
        return self.models[version]

    def write(self, model) -> int:
        version = max(self.models, default=0) + 1
        annotate(model, {"version": version})
        self.models[version] = model
        return version

    def activate(self, version) -> None:
        if version not in self.models:
            raise UnknownVersionError(version, self.models)
        self.active = version

    def delete(self, version) -> None:
        del self.models[version]

    def list_models(self):
        return [dict(m.__metadata__) for m in self.models.values()]

    def list_properties(self):
        return {} if self.active is None else {"active-model": str(self.active)}


class EchoModel:
    """Predicts the first feature (or a keyword) so tests can see what arrived."""

    def predict(self, X, **kw):
        if kw:
            return np.array([sorted(kw.items())] * len(X), dtype=object).tolist()
        return np.asarray(X, dtype=object)[:, 0] if np.ndim(X) == 2 else np.asarray(X)


class FailingModel:
    def __init__(self, exc):
        self.exc = exc

    def predict(self, X, **kw):
        raise self.exc


def memory_app(model, *services, **entries):
    persister = MemoryPersister()
    persister.activate(persister.write(model))
    config = Config(
        {
            "service_metadata": {"service_name": "test", "service_version": "9"},
            "model_persister": persister,
            **{f"predict_service{i}": s for i, s in enumerate(services)},
            **entries,
        }
    )
    return create_app(config)


@pytest.fixture
def config(tmp_path):
    return load_config([str(iris_config(tmp_path))], __mode__="predict")


@pytest.fixture
def fitted(config):
    from pipeforge import training

    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    return config


@pytest.fixture
def client(fitted):
    app = create_app(fitted)
    yield app.test_client()
    app.extensions["pipeforge"].stop()


def wait_for_job(client, job_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/alive").json["process_metadata"]["jobs"].get(job_id)
        if job and job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


# -- /predict -------------------------------------------------------------------


def test_get_predict_answers_one_result(client):
    response = client.get(query(SETOSA))
    assert response.status_code == 200
    assert response.json == {
        "result": "Iris-setosa",
        "metadata": {
            "service_name": "iris",
            "service_version": "0.1",
            "status": "OK",
            "error_code": 0,
        },
    }


def test_post_predict_answers_a_list(client):
    response = client.post("/predict", json=[SETOSA, VIRGINICA, SETOSA])
    assert response.status_code == 200
    assert response.json["result"] == ["Iris-setosa", "Iris-virginica", "Iris-setosa"]
    assert response.json["metadata"]["status"] == "OK"


def test_predict_proba_answers_labels(fitted):
    fitted["predict_service"] = PredictService(
        mapping=[(n, "float") for n in IRIS_FEATURES], predict_proba=True
    )
    client = create_app(fitted).test_client()
    single = client.get(query(SETOSA)).json["result"]
    assert set(single) == {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}
    assert max(single, key=single.get) == "Iris-setosa"
    assert sum(single.values()) == pytest.approx(1.0)
    many = client.post("/predict", json=[SETOSA, VIRGINICA]).json["result"]
    assert [max(p, key=p.get) for p in many] == ["Iris-setosa", "Iris-virginica"]


def test_types_are_converted():
    service = PredictService(
        mapping=[("f", "float"), ("i", "int"), ("s", "str"), ("b", "bool")],
        entry_point="/echo",
    )
    client = memory_app(ModelAll(), service).test_client()
    got = client.get("/echo?f=1.5&i=3&s=abc&b=true").json["result"]
    assert got == [1.5, 3, "abc", True]
    got = client.post("/echo", json=[{"f": 2, "i": 4.0, "s": "x", "b": "false"}]).json["result"]
    assert got == [[2.0, 4, "x", False]]
    for text, value in (("1", True), ("0", False), ("FALSE", False), ("True", True)):
        assert client.get(f"/echo?f=1&i=1&s=a&b={text}").json["result"][3] is value


class ModelAll:
    """Answers each whole sample, to check the conversions."""

    def predict(self, X, **kw):
        return [list(row) for row in X]


def test_params_are_passed_to_predict():
    service = PredictService(mapping=[("x", "float")], params=[("limit", "int"), ("fast", "bool")])
    client = memory_app(EchoModel(), service).test_client()
    assert client.get("/predict?x=1&limit=5&fast=1").json["result"] == [
        ["fast", True],
        ["limit", 5],
    ]
    assert client.get("/predict?x=7").json["result"] == 7.0
    response = client.get("/predict?x=1&limit=many")
    assert response.status_code == 400
    assert "limit" in response.json["metadata"]["error_message"]


def test_unwrap_sample_passes_the_value_itself(tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(), MultinomialNB())
    model.fit(["good great fine", "bad awful poor"], ["pos", "neg"])
    service = PredictService(mapping=[("text", "str")], unwrap_sample=True)
    client = memory_app(model, service).test_client()
    assert client.get("/predict?text=great").json["result"] == "pos"
    assert client.post("/predict", json=[{"text": "awful"}, {"text": "fine"}]).json["result"] == [
        "neg",
        "pos",
    ]


def test_several_services_on_their_entry_points():
    by_x = PredictService(mapping=[("x", "float")], entry_point="/by-x")
    by_id = PredictService(mapping=[("id", "int")], entry_point="/by-id")
    client = memory_app(EchoModel(), by_x, by_id).test_client()
    assert client.get("/by-x?x=2.5").json["result"] == 2.5
    assert client.get("/by-id?id=4").json["result"] == 4
    assert client.get("/by-id?x=2.5").status_code == 400
    assert client.get("/predict?x=1").status_code == 404


def test_duplicate_entry_points_are_a_config_error():
    with pytest.raises(ConfigError, match="/predict"):
        memory_app(EchoModel(), PredictService([("x", "float")]), PredictService([("y", "int")]))


@pytest.mark.parametrize(
    "mapping",
    [None, [], [("x", "double")], "x", [("x",)], [(1, "float")]],
)
def test_bad_mapping_is_a_config_error(mapping):
    with pytest.raises(ConfigError, match="mapping"):
        memory_app(EchoModel(), PredictService(mapping=mapping))


def test_predict_error_keeps_its_message_and_code():
    client = memory_app(
        FailingModel(PredictError("cannot predict for that region", 42)),
        PredictService([("x", "float")]),
    ).test_client()
    response = client.get("/predict?x=1")
    assert response.status_code == 500
    meta = response.json["metadata"]
    assert meta["error_code"] == 42
    assert meta["error_message"] == "cannot predict for that region"


def test_unexpected_fault_is_logged_and_not_leaked(caplog):
    client = memory_app(
        FailingModel(RuntimeError("secret password in /etc/db.conf")),
        PredictService([("x", "float")]),
    ).test_client()
    with caplog.at_level(logging.ERROR):
        response = client.get("/predict?x=1")
    assert response.status_code == 500
    assert response.is_json
    assert "secret" not in response.get_data(as_text=True)
    assert response.json["metadata"]["status"] == "ERROR"
    record = next(r for r in caplog.records if r.exc_info)
    assert "secret password" in str(record.exc_info[1])


def test_a_fault_in_a_view_answers_json_500(caplog):
    def broken():
        raise ZeroDivisionError("internal detail")

    app = memory_app(
        EchoModel(),
        PredictService([("x", "float")]),
        flask_add_url_rules=[add_url_rule("/broken", view_func=broken)],
    )
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert "internal detail" not in response.get_data(as_text=True)
    assert set(response.json["metadata"]) == {
        "service_name",
        "service_version",
        "status",
        "error_code",
        "error_message",
    }
    assert any(r.exc_info for r in caplog.records)


# -- no model yet -----------------------------------------------------------------


def test_no_model_yet_answers_503_and_recovers(config):
    from pipeforge import training

    client = create_app(config).test_client()
    response = client.get(query(SETOSA))
    assert response.status_code == 503
    assert response.json["metadata"]["status"] == "ERROR"
    assert "no model" in response.json["metadata"]["error_message"]
    alive = client.get("/alive")
    assert alive.status_code == 503
    assert alive.json["metadata"]["status"] == "ERROR"

    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    deadline = time.monotonic() + 5
    while client.get(query(SETOSA)).status_code != 200:
        assert time.monotonic() < deadline, "the server did not pick up the new model"
        time.sleep(0.1)
    assert client.get("/alive").status_code == 200


# -- /alive and /list -------------------------------------------------------------


def test_alive_reports_versions_model_and_jobs(client):
    response = client.get("/alive")
    assert response.status_code == 200
    body = response.json
    assert body["pipeforge_version"]
    assert body["service_metadata"] == {"service_name": "iris", "service_version": "0.1"}
    assert isinstance(body["memory_usage"], int) and body["memory_usage"] > 10
    assert body["model"]["metadata"]["version"] == 1
    assert body["model"]["updated"].startswith("20")
    assert body["process_metadata"]["jobs"] == {}


def test_alive_waits_for_required_process_store_entries(fitted):
    fitted["alive"] = {"process_store_required": ["data", "model"]}
    client = create_app(fitted).test_client()
    client.get(query(SETOSA))  # loads the model into the cache
    response = client.get("/alive")
    assert response.status_code == 503
    assert "data" in response.json["metadata"]["error_message"]
    fitted.process_store["data"] = [1, 2, 3]
    assert client.get("/alive").status_code == 200


def test_list_reports_models_and_properties(client):
    body = client.get("/list").json
    assert [m["version"] for m in body["models"]] == [1]
    assert body["properties"]["active-model"] == "1"


# -- /fit, /update-model-cache, /activate ------------------------------------------


def test_fit_runs_as_a_job_and_serves_the_new_model(client):
    response = client.post("/fit")
    assert response.status_code == 200
    job = wait_for_job(client, response.json["job_id"])
    assert job["status"] == "finished", job
    assert job["info"]["model_version"] == 2
    assert job["started"] and job["finished"]
    alive = client.get("/alive").json
    assert alive["model"]["metadata"]["version"] == 2
    assert [m["version"] for m in client.get("/list").json["models"]] == [1, 2]


def test_fit_without_persisting_stores_nothing(client):
    job = wait_for_job(client, client.post("/fit", json={"persist": False}).json["job_id"])
    assert job["status"] == "finished"
    assert job["info"]["model_version"] is None
    assert len(client.get("/list").json["models"]) == 1


def test_fit_with_bad_flag_is_400(client):
    response = client.post("/fit", json={"persist": "maybe"})
    assert response.status_code == 400
    assert "persist" in response.json["metadata"]["error_message"]


def test_failed_fit_job_reports_error(fitted, tmp_path):
    from pipeforge.dataset import Table

    fitted["dataset_loader_train"] = Table(path=str(tmp_path / "missing.data"))
    client = create_app(fitted).test_client()
    job = wait_for_job(client, client.post("/fit").json["job_id"])
    assert job["status"] == "error"
    assert "missing.data" in job["error"]


def test_activate_switches_the_served_model(client):
    wait_for_job(client, client.post("/fit").json["job_id"])
    assert client.get("/alive").json["model"]["metadata"]["version"] == 2
    response = client.post("/activate", json={"model_version": 1})
    assert response.status_code == 200
    assert response.json["model_version"] == 1
    assert client.get("/alive").json["model"]["metadata"]["version"] == 1
    assert client.post("/activate", json={"model_version": "2"}).status_code == 200
    assert client.get("/list").json["properties"]["active-model"] == "2"


@pytest.mark.parametrize(
    ("kwargs", "status", "text"),
    [
        ({"json": {"model_version": 17}}, 404, "17"),
        ({"json": {"model_version": "one"}}, 400, "model_version"),
        ({"query_string": {"model_version": "1"}}, 400, "JSON body"),
        ({}, 400, "model_version"),
        ({"json": {"model_version": None}}, 400, "model_version"),
    ],
)
def test_activate_errors(client, kwargs, status, text):
    response = client.post("/activate", **kwargs)
    assert response.status_code == status
    assert text in response.json["metadata"]["error_message"]
    assert response.json["metadata"]["status"] == "ERROR"


def test_update_model_cache_job(client):
    response = client.post("/update-model-cache")
    assert response.status_code == 200
    assert wait_for_job(client, response.json["job_id"])["status"] == "finished"


def test_update_model_cache_without_cache_is_503():
    app = memory_app(
        EchoModel(),
        PredictService([("x", "float")]),
        flask_add_url_rules=[
            add_url_rule("/update-model-cache", view_func="palladium.server.update_model_cache")
        ],
    )  # Palladium's form: Flask's default method (GET), no guard (a warning line)
    response = app.test_client().get("/update-model-cache")
    assert response.status_code == 503
    assert response.json["metadata"]["status"] == "ERROR"


def test_url_rules_as_plain_dicts_and_bad_ones():
    app = memory_app(
        EchoModel(),
        PredictService([("x", "float")]),
        flask_add_url_rules=[
            {"rule": "/act", "view_func": "pipeforge.server.activate", "methods": ["POST"]}
        ],
        security={"unguarded": ["activate"]},
    )
    assert app.test_client().post("/act", json={"model_version": 1}).status_code == 200
    with pytest.raises(ConfigError, match="nope"):
        memory_app(
            EchoModel(),
            flask_add_url_rules=[add_url_rule("/x", view_func="pipeforge.server.nope")],
        )
    with pytest.raises(ConfigError, match="add_url_rule"):
        memory_app(EchoModel(), flask_add_url_rules=["/fit"])


def test_many_posted_samples_match_single_gets(client):
    from itertools import product

    samples = [
        dict(zip(IRIS_FEATURES, values, strict=True))
        for values in product([4.5, 6], [2, 3.5], [1.5, 5], [0.2, 2])
    ]
    posted = client.post("/predict", json=samples).json["result"]
    assert posted == [client.get(query(s)).json["result"] for s in samples]
    assert len(set(posted)) > 1


def test_a_subclass_hook_sees_every_posted_sample():
    class Doubling(PredictService):
        def sample_from_data(self, model, data):
            return [2 * value for value in super().sample_from_data(model, data)]

    client = memory_app(EchoModel(), Doubling([("x", "float")])).test_client()
    assert client.post("/predict", json=[{"x": 1}, {"x": 2.5}]).json["result"] == [2.0, 5.0]
    assert client.get("/predict?x=4").json["result"] == 8.0


def test_a_plain_dict_config_and_update_model_decorators(fitted):
    calls = []

    def counting(func):
        def counted(*args, **kwargs):
            calls.append(func.__name__)
            return func(*args, **kwargs)

        return counted

    config = {**fitted, "update_model_decorators": [counting]}
    client = create_app(config).test_client()
    assert client.get(query(SETOSA)).json["result"] == "Iris-setosa"
    assert client.post("/activate", json={"model_version": 1}).status_code == 200
    assert calls == ["refresh"]
    del config["model_persister"]
    with pytest.raises(ConfigError, match="model_persister"):
        create_app(config)
