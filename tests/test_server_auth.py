"""Guarding views with decorator lists: HTTP basic auth and a token check.

The decorators at the top are the ones docs/serving.md shows; the configs
below name them as ``tests.test_server_auth.requires_basic_auth`` etc.
"""

from __future__ import annotations

import base64
import functools
import hmac

import pytest
import requests
from flask import request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from pipeforge.server import PredictService, add_url_rule
from tests.fixtures.gunicorn import iris_config
from tests.test_server import EchoModel, memory_app

USERS = {"admin": "secret"}
TOKEN = "s3cret-token"
CALLS: list[str] = []


def requires_basic_auth(view):
    """Answer 401 (JSON, with a Basic challenge) unless a known user/password is sent."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        auth = request.authorization
        password = USERS.get(auth.username) if auth and auth.type == "basic" else None
        if password is None or not hmac.compare_digest(password, auth.password or ""):
            raise Unauthorized(
                "send a valid user name and password",
                www_authenticate=WWWAuthenticate("basic", {"realm": "pipeforge"}),
            )
        return view(*args, **kwargs)

    return guarded


def requires_token(view):
    """Answer 403 (JSON) unless the X-Token header carries the token."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not hmac.compare_digest(request.headers.get("X-Token", ""), TOKEN):
            raise Forbidden("missing or wrong X-Token header")
        return view(*args, **kwargs)

    return guarded


def log_calls(view):
    @functools.wraps(view)
    def logged(*args, **kwargs):
        CALLS.append(f"{request.method} {request.path}")
        return view(*args, **kwargs)

    return logged


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client():
    CALLS.clear()
    app = memory_app(
        EchoModel(),
        PredictService([("x", "float")]),
        PredictService(
            [("x", "float")], entry_point="/open", decorator_list_name="open_decorators"
        ),
        predict_decorators=[
            "tests.test_server_auth.log_calls",
            "tests.test_server_auth.requires_basic_auth",
        ],
        alive_decorators=["tests.test_server_auth.requires_token"],
        activate_decorators=["tests.test_server_auth.requires_token"],
        flask_add_url_rules=[
            add_url_rule("/activate", view_func="pipeforge.server.activate", methods=["POST"])
        ],
    )
    return app.test_client()


def test_basic_auth_guards_predict(client):
    response = client.get("/predict?x=1")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")
    assert response.json["metadata"]["status"] == "ERROR"
    assert client.get("/predict?x=1", headers=basic("admin", "wrong")).status_code == 401
    assert client.get("/predict?x=1", headers=basic("nobody", "secret")).status_code == 401
    response = client.get("/predict?x=1", headers=basic("admin", "secret"))
    assert response.status_code == 200
    assert response.json["result"] == 1.0


def test_first_decorator_listed_is_outermost(client):
    client.get("/predict?x=1")
    assert CALLS == ["GET /predict"]  # logged although auth refused it


def test_each_service_has_its_own_list(client):
    assert client.get("/open?x=2").json["result"] == 2.0
    assert CALLS == []


def test_token_guards_alive_and_activate(client):
    assert client.get("/alive").status_code == 403
    assert "X-Token" in client.get("/alive").json["metadata"]["error_message"]
    assert client.get("/alive", headers={"X-Token": "nope"}).status_code == 403
    assert client.get("/alive", headers={"X-Token": TOKEN}).status_code == 200
    assert client.post("/activate", json={"model_version": 1}).status_code == 403
    answer = client.post("/activate", json={"model_version": 1}, headers={"X-Token": TOKEN})
    assert answer.status_code == 200
    assert client.get("/list").status_code == 200  # no list_decorators configured


@pytest.mark.slow
def test_decorators_under_gunicorn(tmp_path, gunicorn_server):
    from pipeforge import training
    from pipeforge.config import load_config

    path = iris_config(
        tmp_path,
        predict_decorators=["tests.test_server_auth.requires_basic_auth"],
        alive_decorators=["tests.test_server_auth.requires_token"],
    )
    config = load_config([str(path)])
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    url = gunicorn_server(path)
    sample = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
    assert requests.get(url + "/predict", params=sample, timeout=10).status_code == 401
    response = requests.get(url + "/predict", params=sample, auth=("admin", "secret"), timeout=10)
    assert response.json()["result"] == "Iris-setosa"
    assert requests.get(url + "/alive", timeout=10).status_code == 403
    assert requests.get(url + "/alive", headers={"X-Token": TOKEN}, timeout=10).status_code == 200
