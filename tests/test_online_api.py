"""chantilly's /api routes on pipeforge's app, on every store (SQLite, PostgreSQL, Redis):
each route's body, each bad input (a 4xx with the JSON error body, nothing stored changed),
uploads off unless enabled behind decorators, and the SSE streams' messages."""

from __future__ import annotations

import json
import pickle

import pytest
from river import linear_model, preprocessing

from pipeforge.config import load_config
from pipeforge.online import pipeline
from pipeforge.server import create_app
from tests.fixtures.online import online_config
from tests.test_server_auth import TOKEN

X = {"a": 1.0, "b": 2.0}
#: the admin and data routes switched on and named unguarded (tests/test_security_guards.py
#: guards them); ``online`` and ``security`` entries for make_client
ALL_ON = {"allow_init": True, "allow_delete": True, "allow_download": True, "allow_events": True}
UNGUARDED = {"unguarded": ["online.init", "online.delete", "online.download", "online.events"]}
#: how an upload is sent (a type no cross-site form can send)
BINARY = {"content_type": "application/octet-stream"}


def make_client(folder, store, **entries):
    app = create_app(
        load_config([str(online_config(folder, store, **entries))], __mode__="predict")
    )
    return app, app.test_client()


@pytest.fixture
def api(tmp_path, online_store):
    app, client = make_client(tmp_path, online_store, online=ALL_ON, security=UNGUARDED)
    yield client
    app.extensions["pipeforge_online"].store.close()


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    metadata = response.json["metadata"]
    assert metadata["status"] == "ERROR" and metadata["service_name"] == "online"
    assert set(response.json) == {"metadata"}
    return metadata["error_message"]


def state(client) -> dict:
    """Everything a client can see of the store."""
    models = client.get("/api/models").json
    return {
        "models": models,
        "metrics": {
            name: client.get(f"/api/metrics?model={name}").json for name in models["models"]
        },
        "stats": {k: v["n_calls"] for k, v in client.get("/api/stats").json.items()},
        "init": client.get("/api/init").json,
    }


def test_init(api):
    answer = api.get("/api/init").json
    assert answer["flavor"] == "regression"  # the default model's
    assert answer["storage"] in ("sql", "redis")
    assert answer["river_version"]
    api.post("/api/predict", json={"features": X, "id": 1})
    api.post("/api/learn", json={"features": X, "ground_truth": 3.0})
    response = api.post("/api/init", json={"flavor": "binary"})
    assert response.status_code == 201
    assert response.json["flavor"] == "binary"
    assert api.get("/api/init").json["flavor"] == "binary"
    models = api.get("/api/models").json
    assert models["models"] == ["reg", "sk", "spam"]  # the config's models, back unlearnt
    assert models["info"]["reg"]["n_learnt"] == 0
    assert api.get("/api/stats").json["learn"]["n_calls"] == 0
    assert "nothing is stored for id '1'" in error_of(
        api.post("/api/learn", json={"id": 1, "ground_truth": 3.0}), 404
    )


def test_predict_then_learn_by_id(api):
    response = api.post("/api/predict", json={"features": X, "id": 42})
    assert response.status_code == 201
    assert response.json == {"model": "reg", "prediction": 0.0}
    response = api.post("/api/learn", json={"id": 42, "ground_truth": 10.5})
    assert response.status_code == 201
    assert response.json == {"model": "reg"}
    message = error_of(api.post("/api/learn", json={"id": 42, "ground_truth": 10.5}), 404)
    assert "learnt already" in message
    assert api.get("/api/metrics").json == {"MAE": 10.5, "RMSE": 10.5, "R2": 0.0, "SMAPE": 200.0}
    assert api.get("/api/models").json["info"]["reg"]["n_learnt"] == 1
    assert api.post("/api/predict", json={"features": X}).json["prediction"] != 0.0


def test_id_wins_over_features_and_string_ids_are_the_same_as_numbers(sqlite_api):
    api = sqlite_api
    api.post("/api/predict", json={"features": X, "id": "7", "model": "spam"})
    response = api.post("/api/learn", json={"id": 7, "features": {"a": 9}, "ground_truth": True})
    assert response.json == {"model": "spam"}  # the model that predicted id 7
    assert api.get("/api/models").json["info"]["spam"]["n_learnt"] == 1


def test_learn_with_features_scores_the_prediction_made_then(api):
    for i in range(5):
        response = api.post(
            "/api/learn", json={"features": {"a": i, "b": 1}, "ground_truth": 2.0 * i}
        )
        assert response.status_code == 201
    info = api.get("/api/models").json["info"]["reg"]
    assert info["n_learnt"] == 5 and info["n_scored"] == 5
    api.post("/api/learn", json={"features": X, "ground_truth": 1.0, "prediction": 4.0})
    assert api.get("/api/models").json["info"]["reg"]["n_scored"] == 6


def test_classifiers_answer_probabilities(sqlite_api):
    api = sqlite_api
    answer = api.post("/api/predict", json={"features": X, "model": "spam"}).json
    assert answer == {"model": "spam", "prediction": {"false": 0.5, "true": 0.5}}
    assert (
        api.post("/api/predict", json={"features": X, "model": "sk", "id": "s"}).json["prediction"]
        is None
    )
    assert api.post("/api/learn", json={"id": "s", "ground_truth": 1}).status_code == 201
    proba = api.post("/api/predict", json={"features": X, "model": "sk"}).json["prediction"]
    assert set(proba) == {"0", "1"}
    metrics = api.get("/api/metrics?model=sk").json
    assert set(metrics) == {"Accuracy", "LogLoss", "Precision", "Recall", "F1"}
    assert api.get("/api/models").json["info"]["sk"]["n_scored"] == 0  # nothing to score at first


def test_models_and_stats(api):
    models = api.get("/api/models").json
    assert models["models"] == ["reg", "sk", "spam"] and models["default"] == "reg"
    assert models["info"]["spam"] == {
        "flavor": "binary",
        "n_learnt": 0,
        "n_scored": 0,
        "version": 0,
        "source": "config",
        "created": models["info"]["spam"]["created"],
    }
    for i in range(3):
        api.post("/api/predict", json={"features": X, "id": i})
    api.post("/api/learn", json={"id": 0, "ground_truth": 1.0})
    stats = api.get("/api/stats").json
    assert stats["predict"]["n_calls"] == 3 and stats["learn"]["n_calls"] == 1
    for entry in stats.values():
        assert set(entry) == {
            "n_calls",
            "mean_duration",
            "mean_duration_human",
            "ewm_duration",
            "ewm_duration_human",
        }
        assert entry["mean_duration"] > 0 and entry["mean_duration_human"].endswith("ns")


def test_download_and_delete(api):
    api.post("/api/learn", json={"features": X, "ground_truth": 3.0})
    response = api.get("/api/model")
    assert response.mimetype == "application/octet-stream"
    model = pickle.loads(response.data)
    assert model.predict_one(X) == api.post("/api/predict", json={"features": X}).json["prediction"]
    assert isinstance(
        pickle.loads(api.get("/api/model/spam").data), linear_model.LogisticRegression
    )
    assert api.delete("/api/model/spam").status_code == 204
    assert "no online model named 'spam'" in error_of(api.get("/api/model/spam"), 404)
    error_of(api.delete("/api/model/spam"), 404)
    assert api.get("/api/models").json["models"] == ["reg", "sk"]
    assert api.delete("/api/model/reg").status_code == 204
    assert api.get("/api/models").json["default"] is None
    assert "no default online model" in error_of(
        api.post("/api/predict", json={"features": X}), 404
    )
    assert api.post("/api/predict", json={"features": X, "model": "sk"}).status_code == 200


@pytest.fixture
def sqlite_api(tmp_path):
    """For what does not depend on the store."""
    app, client = make_client(tmp_path, None)
    yield client
    app.extensions["pipeforge_online"].store.close()


def test_upload_is_off_unless_enabled(sqlite_api):
    api = sqlite_api
    body = pickle.dumps(linear_model.LinearRegression())
    error_of(api.post("/api/model", data=body, **BINARY), 404)  # the route is not there
    error_of(api.post("/api/model/other", data=body, **BINARY), 404)
    assert api.get("/api/models").json["models"] == ["reg", "sk", "spam"]


def _admin_client(folder, store):
    return make_client(
        folder,
        store,
        online={"allow_upload": True, "allow_init": True, "allow_delete": True},
        online_admin_decorators=["tests.test_server_auth.requires_token"],
    )


@pytest.fixture
def admin(tmp_path):
    app, client = _admin_client(tmp_path, None)
    yield client
    app.extensions["pipeforge_online"].store.close()


@pytest.fixture
def admin_on_each_store(tmp_path, online_store):
    app, client = _admin_client(tmp_path, online_store)
    yield client
    app.extensions["pipeforge_online"].store.close()


def test_upload_behind_decorators(admin_on_each_store):
    admin = admin_on_each_store
    model = pipeline([preprocessing.StandardScaler(), linear_model.LinearRegression()])
    error_of(admin.post("/api/model/new", data=pickle.dumps(model), **BINARY), 403)  # no token
    error_of(admin.post("/api/init", json={"flavor": "binary"}), 403)
    error_of(admin.delete("/api/model/reg"), 403)
    token = {"X-Token": TOKEN}
    response = admin.post("/api/model/new", data=pickle.dumps(model), headers=token, **BINARY)
    assert response.status_code == 201 and response.json == {"name": "new"}
    assert admin.get("/api/models").json["default"] == "new"  # the newest upload is the default
    assert admin.post("/api/predict", json={"features": X}).json["model"] == "new"
    named = admin.post("/api/model", data=pickle.dumps(model), headers=token, **BINARY).json["name"]
    assert named in admin.get("/api/models").json["models"]
    classifier = pickle.dumps(linear_model.LogisticRegression())
    assert "does not fit flavor 'regression'" in error_of(
        admin.post("/api/model/c", data=classifier, headers=token, **BINARY), 400
    )
    answer = admin.post("/api/model/c?flavor=binary", data=classifier, headers=token, **BINARY)
    assert answer.status_code == 201
    assert admin.get("/api/models").json["info"]["c"]["flavor"] == "binary"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not a pickle", "not a pickled model"),
        (b"", "empty body"),
        (pickle.dumps({"a": 1}), "not an online model"),
    ],
)
def test_upload_of_no_model_is_400_and_changes_nothing(admin, body, words):
    before = state(admin)
    token = {"X-Token": TOKEN}
    assert words in error_of(admin.post("/api/model/x", data=body, headers=token, **BINARY), 400)
    assert error_of(admin.post("/api/model/bad%20name", data=body, headers=token, **BINARY), 400)
    assert state(admin) == before


BAD = [
    ("/api/predict", "not json", "does not parse"),
    ("/api/predict", [X], "must be a JSON object; got a JSON list"),
    ("/api/predict", {"id": 1}, "needs 'features'"),
    ("/api/predict", {"features": [1, 2], "id": 2}, "must be an object"),
    ("/api/predict", {"features": "a=1", "id": 3}, "must be an object"),
    ("/api/predict", {"features": X, "id": True}, "'id' must be"),
    ("/api/predict", {"features": X, "id": 1.5}, "'id' must be"),
    ("/api/predict", {"features": X, "id": ""}, "'id' must have"),
    ("/api/predict", {"features": X, "model": 5}, "'model' must be"),
    ("/api/predict", {"features": X, "model": "nope", "id": 4}, "no online model named 'nope'"),
    (
        "/api/predict",
        {"features": {"a": "x", "b": 1}, "model": "sk", "id": 5},
        "cannot predict from",
    ),
    ("/api/learn", "{", "does not parse"),
    ("/api/learn", {"ground_truth": 1.0}, "needs 'id'"),
    ("/api/learn", {"features": X}, "needs 'ground_truth'"),
    ("/api/learn", {"features": [1], "ground_truth": 1.0}, "must be an object"),
    ("/api/learn", {"id": "pending", "ground_truth": "1.5"}, "must be a finite number"),
    ("/api/learn", {"id": "pending", "ground_truth": None}, "must not be null"),
    ("/api/learn", {"id": "pending", "ground_truth": True}, "finite number"),
    ("/api/learn", {"id": "unknown", "ground_truth": 1.0}, "nothing is stored for id 'unknown'"),
    ("/api/learn", {"features": X, "model": "nope", "ground_truth": 1.0}, "no online model named"),
    ("/api/learn", {"features": X, "model": "spam", "ground_truth": "yes"}, "true or false"),
    ("/api/learn", {"features": X, "model": "sk", "ground_truth": 3}, "one of the model's classes"),
    ("/api/learn", {"features": {"a": "x"}, "ground_truth": 1.0}, "cannot learn from"),
    (
        "/api/learn",
        {"features": {"b": 1}, "model": "sk", "ground_truth": 1},
        "feature 'a' is missing",
    ),
    ("/api/init", {"flavor": "ranking"}, "flavor must be one of"),
    ("/api/init", {}, "needs 'flavor'"),
]


def test_bad_input_is_a_4xx_and_changes_nothing(api):
    api.post("/api/predict", json={"features": X, "id": "pending"})
    api.post("/api/learn", json={"features": X, "ground_truth": 1.0})
    api.post("/api/learn", json={"features": X, "model": "sk", "ground_truth": 1})
    before = state(api)
    for path, body, words in BAD:
        if isinstance(body, str):
            response = api.post(path, data=body, content_type="application/json")
        else:
            response = api.post(path, json=body)
        assert response.status_code in (400, 404), (path, body, response.get_data(as_text=True))
        assert words in error_of(response, response.status_code), (path, body)
    response = api.post("/api/predict", data=json.dumps({"features": X}), content_type="text/plain")
    assert "Content-Type: application/json" in error_of(response, 400)
    error_of(api.get("/api/metrics?model=nope"), 404)
    error_of(api.get("/api/model/nope"), 404)
    error_of(api.put("/api/learn", json={}), 405)
    assert state(api) == before
    assert api.post("/api/learn", json={"id": "pending", "ground_truth": 1.0}).status_code == 201


def _sse(data: bytes) -> list[tuple[str | None, str | None, str]]:
    """(id, event, data) of each message of an SSE body (comments and retry skipped)."""
    messages = []
    for block in data.decode().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "data" in fields:
            messages.append((fields.get("id"), fields.get("event"), fields["data"]))
    return messages


def test_sse_streams(tmp_path, online_store):
    app, client = make_client(
        tmp_path, online_store, online={"stream_seconds": 1, **ALL_ON}, security=UNGUARDED
    )
    try:
        events = client.get("/api/stream/events", buffered=False)
        metrics = client.get("/api/stream/metrics", buffered=False)
        assert events.mimetype == "text/event-stream"
        client.post("/api/predict", json={"features": X, "id": 1})
        client.post("/api/learn", json={"id": 1, "ground_truth": 2.0})
        client.post("/api/learn", json={"features": X, "model": "spam", "ground_truth": True})
        got = _sse(b"".join(events.response))
        kinds = [(event, json.loads(data)) for _id, event, data in got]
        assert kinds[0] == ("predict", {"model": "reg", "features": X, "prediction": 0.0, "id": 1})
        assert kinds[1] == (
            "learn",
            {"model": "reg", "features": X, "prediction": 0.0, "ground_truth": 2.0},
        )
        assert kinds[2][0] == "learn" and kinds[2][1]["ground_truth"] is True
        assert len(kinds) == 3 and all(event_id for event_id, _, _ in got)
        got = _sse(b"".join(metrics.response))
        named = [json.loads(data) for _id, event, data in got if event == "metrics"]
        assert [m["model"] for m in named] == ["reg", "spam"]
        assert named[0]["metrics"]["MAE"] == 2.0 and named[0]["n"] == 1
        plain = [json.loads(data) for _id, event, data in got if event is None]
        assert plain == [
            {"MAE": 2.0, "RMSE": 2.0, "R2": 0.0, "SMAPE": 200.0}
        ]  # the default model's
        last = got[-1][0]
        client.post("/api/learn", json={"features": X, "ground_truth": 1.0})
        resumed = client.get("/api/stream/metrics", headers={"Last-Event-ID": last}, buffered=False)
        assert [e for _i, e, _d in _sse(b"".join(resumed.response))] == ["metrics", None]
    finally:
        app.extensions["pipeforge_online"].store.close()


def test_an_empty_store_says_what_to_do(tmp_path):
    path = tmp_path / "config.py"
    store = {"__factory__": "pipeforge.online.SQLStore"}
    path.write_text(
        repr(
            {
                "online": {"store": store, "allow_init": True},
                "service_metadata": {"service_name": "online"},
                "security": {"unguarded": ["online.init"]},
            }
        )
    )
    app = create_app(load_config([str(path)], __mode__="predict"))
    client = app.test_client()
    try:
        assert "no flavor has been set" in error_of(client.get("/api/init"), 400)
        assert "no flavor has been set" in error_of(client.get("/api/metrics"), 400)
        assert "no default online model" in error_of(
            client.post("/api/predict", json={"features": X}), 404
        )
        assert client.get("/api/models").json == {"models": [], "default": None, "info": {}}
        assert client.post("/api/init", json={"flavor": "multiclass"}).status_code == 201
        assert client.get("/api/init").json["flavor"] == "multiclass"
        assert "no default online model" in error_of(client.get("/api/metrics"), 404)
    finally:
        app.extensions["pipeforge_online"].store.close()
