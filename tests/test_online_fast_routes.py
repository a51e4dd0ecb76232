"""``POST /api/predict`` and ``/api/learn`` answered in front of Flask: the same answers, the
same counting in ``/metrics``, and Flask again wherever a decorator or a user's hook needs it."""

from __future__ import annotations

from flask import Flask

from pipeforge.config import load_config
from pipeforge.server import create_app
from tests.fixtures.online import online_config
from tests.test_server_auth import TOKEN
from tests.test_web_metrics import samples, value

X = {"a": 1.0, "b": 2.0}


def app_for(tmp_path, flask_app=None, **entries):
    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/o.db"}
    config = load_config([str(online_config(tmp_path, store, **entries))], __mode__="predict")
    return create_app(config, flask_app=flask_app)


def test_requests_are_counted_as_through_flask(tmp_path):
    app = app_for(tmp_path)
    client = app.test_client()
    assert client.post("/api/predict", json={"features": X, "id": "one"}).status_code == 201
    assert client.post("/api/learn", json={"id": "one", "ground_truth": 3.0}).status_code == 201
    again = client.post("/api/learn", json={"id": "one", "ground_truth": 3.0})
    assert again.status_code == 404 and again.json["metadata"]["status"] == "ERROR"
    bad = client.post("/api/predict", data="{", content_type="application/json")
    assert bad.status_code == 400 and "does not parse" in bad.json["metadata"]["error_message"]
    scrape = samples(client.get("/metrics").text)

    def count(route, status):
        labels = {"route": route, "method": "POST", "status": status}
        return value(scrape, "pipeforge_requests_total", **labels)

    assert count("/api/predict", "201") == 1 and count("/api/predict", "400") == 1
    assert count("/api/learn", "201") == 1 and count("/api/learn", "404") == 1
    assert client.get("/api/stats").json["learn"]["n_calls"] == 1
    app.extensions["pipeforge_online"].store.close()


def test_a_body_over_the_limit_is_413(tmp_path):
    app = app_for(tmp_path)
    big = b'{"features": {"a": "' + b"x" * (16 * 2**20) + b'"}}'
    response = app.test_client().post("/api/predict", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.json["metadata"]["status"] == "ERROR"
    app.extensions["pipeforge_online"].store.close()


def test_online_decorators_still_guard_predict_and_learn(tmp_path):
    app = app_for(tmp_path, online_decorators=["tests.test_server_auth.requires_token"])
    client = app.test_client()
    assert client.post("/api/predict", json={"features": X}).status_code == 403
    assert client.post("/api/learn", json={"features": X, "ground_truth": 1.0}).status_code == 403
    token = {"X-Token": TOKEN}
    assert client.post("/api/predict", json={"features": X}, headers=token).status_code == 200
    app.extensions["pipeforge_online"].store.close()


def test_a_users_hook_on_the_app_still_runs(tmp_path):
    """Palladium's app may carry hooks of the user's (CORS headers, say): Flask answers then."""
    flask_app = Flask("users")

    @flask_app.after_request
    def cors(response):
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    app = app_for(tmp_path, flask_app=flask_app)
    response = app.test_client().post("/api/learn", json={"features": X, "ground_truth": 1.0})
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    app.extensions["pipeforge_online"].store.close()
