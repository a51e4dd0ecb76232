"""No input poisons an online model, on every store (SQLite, PostgreSQL, Redis), through /api/*.

Inputs are bounded before they touch a model (numbers, features per request, feature names per
model, strings that encode); a learn after which the model answers its own sample with a number
that is not finite is rolled back with a 422, leaving every stored byte as it was. The stream
routes are in tests/test_online_streams.py.
"""

from __future__ import annotations

import json
import math

import pytest

from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.online.config import read_settings
from pipeforge.server import create_app
from tests.fixtures.online import MODELS, online_config
from tests.test_online_api import error_of, state

X = {"a": 1.0, "b": 2.0}
PLAIN = {"model": {"__factory__": "river.linear_model.LinearRegression"}, "flavor": "regression"}
# gradient clipping off: a few large (allowed) samples make its weights overflow
UNCLIPPED = {
    "model": {"__factory__": "river.linear_model.LinearRegression", "clip_gradient": 1e300},
    "flavor": "regression",
}


@pytest.fixture
def open_app(tmp_path, online_store):
    """``open_app(**entries) -> (client, store)`` on this test's store; closed at the end."""
    apps = []

    def make(**entries):
        entries.setdefault("online_models", {**MODELS, "plain": PLAIN, "unclipped": UNCLIPPED})
        path = online_config(tmp_path, online_store, **entries)
        app = create_app(load_config([str(path)], __mode__="predict"))
        apps.append(app)
        client = app.test_client()
        assert client.get("/api/models").status_code == 200  # the config's models are stored
        return client, app.extensions["pipeforge_online"].store

    yield make
    for app in apps:
        app.extensions["pipeforge_online"].store.close()


def stored(store, name: str) -> tuple:
    """Every stored byte of model ``name``: identity, version, snapshot and log entries."""
    catch = store.catch_up(name, None, -1)
    return catch.uid, catch.version, catch.snapshot, catch.snapshot_version, catch.entries


def stored_size(store, name: str) -> int:
    """Bytes stored for model ``name``: its snapshot and its log entries."""
    _uid, _version, snapshot, _at, entries = stored(store, name)
    return len(snapshot or b"") + sum(len(features) + len(y) for _v, features, y in entries)


def send(client, path: str, body):
    """POST ``body`` (a dict, or JSON text for what ``json.dumps`` cannot write)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data=text, content_type="application/json")


def finite_prediction(client, features: dict, model: str) -> float:
    response = send(client, "/api/predict", {"features": features, "model": model})
    assert response.status_code == 200, response.get_data(as_text=True)
    prediction = response.json["prediction"]
    assert isinstance(prediction, float) and math.isfinite(prediction), prediction
    return prediction


HUGE = "1" + "0" * 400  # 10**400: JSON allows it, no float holds it
BAD = [
    ("/api/predict", {"features": {"age": 1e308}}, "online.max_magnitude"),
    ("/api/predict", {"features": {"age": -1e16}}, "online.max_magnitude"),
    ("/api/predict", '{"features": {"age": ' + HUGE + "}}", "online.max_magnitude"),
    ("/api/learn", {"features": {"age": 1e308}, "ground_truth": 150}, "online.max_magnitude"),
    ("/api/learn", '{"features": {"a": 1}, "ground_truth": ' + HUGE + "}", "'ground_truth'"),
    ("/api/learn", {"features": X, "ground_truth": 1e300}, "'ground_truth' must be a finite"),
    (
        "/api/learn",
        '{"features": {"a": 1}, "ground_truth": 1, "prediction": ' + HUGE + "}",
        "'prediction' must be a finite number",
    ),
    ("/api/learn", {"features": X, "ground_truth": 1, "prediction": "x"}, "finite number"),
    ("/api/learn", {"id": "pending", "ground_truth": -(10**20)}, "online.max_magnitude"),
    # lone surrogates: JSON can spell them, no store can keep them (refused as the body is read,
    # and again before a store sees them)
    ("/api/predict", {"features": X, "id": "\ud800"}, "lone surrogate"),
    ("/api/predict", {"features": X, "model": "\ud800"}, "lone surrogate"),
    ("/api/learn", {"features": X, "model": "\udfff", "ground_truth": 1}, "lone surrogate"),
    ("/api/learn", {"id": "x\ud800", "ground_truth": 1.0}, "lone surrogate"),
    ("/api/predict", {"features": {"\ud800": 1.0}}, "lone surrogate"),
    ("/api/predict", {"features": {"a": "\ud800"}}, "lone surrogate"),
    (
        "/api/learn",
        {"features": X, "model": "sk", "ground_truth": "\ud800"},
        "lone surrogate",
    ),
    (
        "/api/learn",
        {"features": X, "model": "spam", "ground_truth": True, "prediction": {"\ud800": 0.5}},
        "lone surrogate",
    ),
    # shapes and sizes
    ("/api/predict", {"features": {"a": [1, 2]}}, "must be a number, a string, true/false"),
    ("/api/learn", {"features": {"a": {"b": 1}}, "ground_truth": 1}, "must be a number"),
    ("/api/predict", {"features": {"n" * 256: 1}}, "at most 255 characters"),
    ("/api/predict", {"features": {f"f{i}": 1 for i in range(1001)}}, "online.max_features"),
    (
        "/api/learn",
        {"features": X, "model": "spam", "ground_truth": True, "prediction": [0.5]},
        "must be a label",
    ),
    (
        "/api/learn",
        {"features": X, "model": "spam", "ground_truth": True, "prediction": {"true": 1.5}},
        "probability between 0 and 1",
    ),
]


def test_out_of_bounds_input_is_a_400_and_changes_nothing(open_app):
    client, store = open_app()
    assert send(client, "/api/predict", {"features": X, "id": "pending"}).status_code == 201
    assert send(client, "/api/learn", {"features": X, "ground_truth": 1.0}).status_code == 201
    before, model_before = state(client), stored(store, "reg")
    for path, body, words in BAD:
        message = error_of(send(client, path, body), 400)
        assert words in message, (body, message)
    assert state(client) == before
    assert stored(store, "reg") == model_before
    # the id is still there, and the bounds let ordinary values through
    assert send(client, "/api/learn", {"id": "pending", "ground_truth": 2.0}).status_code == 201
    body = {"features": {"t": 1.7e12, "é": -5, "flag": True}, "ground_truth": 1e15}
    assert send(client, "/api/learn", body).status_code == 201


def test_a_learn_that_makes_the_answer_non_finite_is_rolled_back(open_app):
    """The issue's sample, with the magnitude bound raised so that it reaches the model."""
    client, store = open_app(online={"max_magnitude": 1e308})
    for i in range(3):
        body = {"features": {"age": 0.1 * i}, "ground_truth": 1.0 + i, "model": "plain"}
        assert send(client, "/api/learn", body).status_code == 201
    hostile = {"features": {"age": 1e308}, "model": "plain", "id": "hostile"}
    assert send(client, "/api/predict", hostile).status_code == 201
    before, model_before = state(client), stored(store, "plain")

    body = {"features": {"age": 1e308}, "ground_truth": 150, "model": "plain"}
    message = error_of(send(client, "/api/learn", body), 422)
    assert "not finite" in message and "it was not learnt" in message
    for _ in range(2):  # by id: refused each time, the id stays
        message = error_of(send(client, "/api/learn", {"id": "hostile", "ground_truth": 150}), 422)
        assert "not finite" in message
    assert stored(store, "plain") == model_before
    assert state(client) == before

    finite_prediction(client, {"age": 0.5}, "plain")
    body = {"features": {"age": 0.5}, "ground_truth": 2.0, "model": "plain"}
    assert send(client, "/api/learn", body).status_code == 201
    finite_prediction(client, {"age": 0.5}, "plain")
    assert client.get("/api/models").json["info"]["plain"]["n_learnt"] == 4
    assert math.isfinite(client.get("/api/metrics?model=plain").json["RMSE"])


def test_allowed_numbers_that_still_overflow_a_model_are_rolled_back(open_app):
    """Within the default bound (1e15), a model without gradient clipping still overflows."""
    client, store = open_app()
    assert "online.max_magnitude" in error_of(
        send(client, "/api/learn", {"features": {"a": 1e308}, "ground_truth": 1}), 400
    )
    refused = None
    for i in range(30):
        model_before, before = stored(store, "unclipped"), state(client)
        body = {"features": {"a": 1e15}, "ground_truth": 1e15 * (i % 2), "model": "unclipped"}
        response = send(client, "/api/learn", body)
        if response.status_code != 201:
            refused = i
            assert "not finite" in error_of(response, 422)
            break
    assert refused is not None and refused > 0  # some learns went through first
    assert stored(store, "unclipped") == model_before
    assert state(client) == before
    assert client.get("/api/models").json["info"]["unclipped"]["n_learnt"] == refused
    finite_prediction(client, {"a": 1.0}, "unclipped")
    finite_prediction(client, X, "reg")  # the other models are untouched


def test_feature_names_per_model_are_capped(open_app):
    """500,000 names in one learn, or 1,000 at a time: the stored model stops growing at the cap."""
    client, store = open_app()
    size = stored_size(store, "reg")
    hostile = {"features": {f"f{i}": 1.0 for i in range(500_000)}, "ground_truth": 1.0}
    assert "online.max_features" in error_of(send(client, "/api/learn", hostile), 400)
    assert stored_size(store, "reg") == size

    for batch in range(10):  # the default caps: 1,000 per request, 10,000 per model
        features = {f"b{batch}_{i}": float(i % 7) for i in range(1000)}
        response = send(client, "/api/learn", {"features": features, "ground_truth": 1.0})
        assert response.status_code == 201, response.get_data(as_text=True)
    full, before = stored(store, "reg"), state(client)
    message = error_of(
        send(client, "/api/learn", {"features": {"one_more": 1.0}, "ground_truth": 1}), 422
    )
    assert "knows 10000 feature names" in message and "online.max_model_features" in message
    message = error_of(send(client, "/api/predict", {"features": {"one_more": 1.0}, "id": 9}), 422)
    assert "online.max_model_features" in message
    assert stored(store, "reg") == full
    assert state(client) == before
    # known names still learn
    body = {"features": {"b0_1": 2.0, "b9_999": 1.0}, "ground_truth": 3.0}
    assert send(client, "/api/learn", body).status_code == 201
    finite_prediction(client, {"b0_1": 2.0}, "reg")


def test_names_made_from_string_values_count_too(open_app):
    """A one-hot encoder makes a name of each value it sees: the cap holds after the learn."""
    encoder = {
        "model": {
            "__factory__": "pipeforge.online.pipeline",
            "steps": [
                {"__factory__": "river.preprocessing.OneHotEncoder"},
                {"__factory__": "river.linear_model.LinearRegression"},
            ],
        },
        "flavor": "regression",
        "default": True,
    }
    client, store = open_app(
        online_models={"cities": encoder},
        online={"max_features": 5, "max_model_features": 5},
    )
    for city in "abcde":
        body = {"features": {"city": city}, "ground_truth": 1.0}
        assert send(client, "/api/learn", body).status_code == 201
    full, before = stored(store, "cities"), state(client)
    message = error_of(
        send(client, "/api/learn", {"features": {"city": "f"}, "ground_truth": 1}), 422
    )
    assert "more than 5 feature names" in message
    assert stored(store, "cities") == full
    assert state(client) == before
    assert (
        send(client, "/api/learn", {"features": {"city": "a"}, "ground_truth": 2}).status_code
        == 201
    )


@pytest.mark.parametrize(
    ("online", "key", "words"),
    [
        ({"max_magnitude": 0}, "online.max_magnitude", "positive finite number"),
        ({"max_magnitude": -1e15}, "online.max_magnitude", "positive finite number"),
        ({"max_magnitude": "big"}, "online.max_magnitude", "positive finite number"),
        ({"max_features": 0}, "online.max_features", "positive integer"),
        ({"max_features": 2.5}, "online.max_features", "positive integer"),
        ({"max_model_features": True}, "online.max_model_features", "positive integer"),
        (
            {"max_features": 50, "max_model_features": 10},
            "online.max_model_features",
            "at least online.max_features (50)",
        ),
        ({"max_streams": -1}, "online.max_streams", "positive integer"),
        ({"max_magnitud": 10}, "online.max_magnitud", "unknown key"),
    ],
)
def test_bad_limits_are_one_config_error(tmp_path, online, key, words):
    path = online_config(tmp_path, None, online=online)
    with pytest.raises(ConfigError) as caught:
        read_settings(load_config([str(path)]))
    message = str(caught.value)
    assert str(path) in message and key in message and words in message
    assert "\n" not in message
