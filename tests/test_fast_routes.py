"""``/predict`` answered in front of Flask: the same answers and counting, and Flask again
wherever a decorator, a subclass or a user's hook may need it."""

from __future__ import annotations

import numpy as np
from flask import Flask, request_started
from sklearn.linear_model import LogisticRegression

from pipeforge.server import PredictService
from tests.test_server import memory_app
from tests.test_server_auth import TOKEN
from tests.test_web_metrics import samples, value

MAPPING = [["a", "float"], ["b", "float"]]


def model():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5)
    return LogisticRegression().fit(X, ["low", "low", "low", "high"] * 5)


def flask_requests(app) -> list[str]:
    """The paths of the requests Flask's own machinery handles from now on."""
    seen: list[str] = []

    def started(sender, **extra):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app, weak=False)
    return seen


def test_predict_skips_flask_and_is_counted_as_through_it():
    app = memory_app(model(), PredictService(mapping=MAPPING))
    client = app.test_client()
    through_flask = flask_requests(app)
    assert client.get("/predict?a=1&b=1").json["result"] == "high"
    assert client.post("/predict", json=[{"a": 0, "b": 0}, {"a": 1, "b": 1}]).json["result"] == [
        "low",
        "high",
    ]
    bad = client.get("/predict?a=1&b=x")
    assert bad.status_code == 400 and "'b'" in bad.json["metadata"]["error_message"]
    assert client.get("/alive").status_code == 200
    assert through_flask == ["/alive"]
    scrape = samples(client.get("/metrics").text)

    def count(method, status):
        labels = {"route": "/predict", "method": method, "status": status}
        return value(scrape, "pipeforge_requests_total", **labels)

    assert (count("GET", "200"), count("POST", "200"), count("GET", "400")) == (1, 1, 1)


def test_a_model_that_does_not_fit_the_mapping_is_503_on_the_fast_path():
    app = memory_app(model(), PredictService(mapping=[*MAPPING, ["c", "float"]]))
    response = app.test_client().get("/predict?a=1&b=1&c=1")
    assert response.status_code == 503
    assert "expects 2 features" in response.json["metadata"]["error_message"]


def test_a_body_over_the_limit_is_413():
    app = memory_app(model(), PredictService(mapping=MAPPING))
    big = b'[{"a": "' + b"x" * (16 * 2**20) + b'"}]'
    response = app.test_client().post("/predict", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.json["metadata"]["status"] == "ERROR"


def test_other_methods_and_paths_still_reach_flask():
    app = memory_app(model(), PredictService(mapping=MAPPING, entry_point="/iris"))
    client = app.test_client()
    through_flask = flask_requests(app)
    assert client.get("/iris?a=0&b=0").json["result"] == "low"
    assert client.put("/iris", json=[]).status_code == 405
    assert client.get("/predict?a=0&b=0").status_code == 404
    assert through_flask == ["/iris", "/predict"]


def test_predict_decorators_still_guard_predict():
    app = memory_app(
        model(),
        PredictService(mapping=MAPPING),
        predict_decorators=["tests.test_server_auth.requires_token"],
    )
    client = app.test_client()
    assert client.get("/predict?a=1&b=1").status_code == 403
    answer = client.get("/predict?a=1&b=1", headers={"X-Token": TOKEN})
    assert answer.status_code == 200 and answer.json["result"] == "high"


class EchoingService(PredictService):
    """A subclass that reads Flask's ``request`` (as Palladium subclasses may)."""

    def response_from_prediction(self, y_pred, single=True):
        from flask import request

        response = super().response_from_prediction(y_pred, single)
        response.headers["X-Asked"] = request.args.get("a", "")
        return response


def test_a_subclassed_service_gets_flask_request():
    app = memory_app(model(), EchoingService(mapping=MAPPING))
    response = app.test_client().get("/predict?a=1&b=0")
    assert response.status_code == 200 and response.json["result"] == "low"
    assert response.headers["X-Asked"] == "1"


def test_a_users_hook_on_the_app_still_runs_for_predict():
    from pipeforge.config import Config
    from pipeforge.server import create_app
    from tests.test_server import MemoryPersister

    flask_app = Flask("users")

    @flask_app.after_request
    def cors(response):
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    persister = MemoryPersister()
    persister.activate(persister.write(model()))
    config = Config({"model_persister": persister, "predict_service": PredictService(MAPPING)})
    app = create_app(config, flask_app=flask_app)
    response = app.test_client().get("/predict?a=1&b=1")
    assert response.status_code == 200 and response.json["result"] == "high"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
