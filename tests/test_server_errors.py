"""Bad requests never give a 5xx or an HTML page: the error matrix and generated requests."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeforge import training
from pipeforge.config import load_config
from pipeforge.server import PredictService, create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config
from tests.test_server import ModelAll, memory_app

SAMPLE = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
ERROR_KEYS = {"service_name", "service_version", "status", "error_code", "error_message"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("errors")
    config = load_config([str(iris_config(tmp_path))], __mode__="predict")
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    app = create_app(config)
    yield app
    app.extensions["pipeforge"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def flags():
    service = PredictService(
        mapping=[("on", "bool"), ("n", "int"), ("name", "str")], entry_point="/flags"
    )
    return memory_app(ModelAll(), service).test_client()


def assert_error(response, status, service_name="iris"):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    meta = response.json["metadata"]
    assert set(meta) == ERROR_KEYS
    assert meta["status"] == "ERROR"
    assert meta["service_name"] == service_name
    assert meta["error_code"] == -1
    assert "result" not in response.json
    return meta["error_message"]


def with_(**changes):
    sample = dict(SAMPLE)
    for key, value in changes.items():
        key = key.replace("_", " ")
        if value is KeyError:
            del sample[key]
        else:
            sample[key] = value
    return sample


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (with_(petal_width=KeyError), "missing value for 'petal width'"),
        (with_(petal_width="abc"), "'petal width' must be a number"),
        (with_(petal_width=""), "'petal width'"),
        (with_(petal_width="nan"), "finite"),
        (with_(petal_width="-inf"), "finite"),
        (with_(petal_width="1e400"), "finite"),
        ({}, "missing value"),
    ],
)
def test_bad_get_requests(client, params, needle):
    message = assert_error(client.get("/predict?" + urlencode(params)), 400)
    assert needle in message


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([with_(sepal_length=KeyError)], "sample 0: missing value for 'sepal length'"),
        ([SAMPLE, with_(sepal_width=None)], "sample 1: value of 'sepal width' must not be null"),
        ([with_(sepal_width=True)], "'sepal width' must be a number; got True"),
        ([with_(sepal_width="wide")], "must be a number"),
        ([with_(sepal_width=[1.0])], "must be a number"),
        ([with_(sepal_width={"v": 1})], "must be a number"),
        ([with_(sepal_width=10**400)], "must be a number"),
        (SAMPLE, "must be a JSON list of samples; got a JSON object"),
        ([], "empty list"),
        ([1, 2], "sample 0 must be a JSON object"),
        ([[5.1, 3.5, 1.4, 0.2]], "sample 0 must be a JSON object"),
        ("text", "got a JSON string"),
        (None, "got a JSON null"),
    ],
)
def test_bad_post_bodies(client, body, needle):
    response = client.post("/predict", data=json.dumps(body), content_type="application/json")
    message = assert_error(response, 400)
    assert needle in message


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[{", b"", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b"[NaN]"],
)
def test_non_json_bodies(client, data):
    response = client.post("/predict", data=data, content_type="application/json")
    assert_error(response, 400)


def test_nan_and_infinity_literals_are_rejected(client):
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = json.dumps([SAMPLE]).replace("0.2", literal)
        message = assert_error(
            client.post("/predict", data=body, content_type="application/json"), 400
        )
        assert "finite" in message


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type(client, content_type):
    # SPEC section 8: a body that is not (declared) JSON is a 400.
    response = client.post("/predict", data=json.dumps([SAMPLE]), content_type=content_type)
    message = assert_error(response, 400)
    assert "Content-Type: application/json" in message


def test_json_without_content_type_is_taken(client):
    response = client.post("/predict", data=json.dumps([SAMPLE]))
    assert response.status_code == 200
    assert response.json["result"] == ["Iris-setosa"]


@pytest.mark.parametrize(
    ("query", "status", "expected"),
    [
        ("on=true&n=1&name=a", 200, [True, 1, "a"]),
        ("on=FALSE&n=-3&name=", 200, [False, -3, ""]),
        ("on=1&n=0&name=x", 200, [True, 0, "x"]),
        ("on=0&n=7&name=x", 200, [False, 7, "x"]),
        ("on=yes&n=1&name=a", 400, "true/false/1/0"),
        ("on=&n=1&name=a", 400, "true/false/1/0"),
        ("on=2&n=1&name=a", 400, "true/false/1/0"),
        ("on=true&n=1.5&name=a", 400, "integer"),
        ("on=true&n=99999999999999999999&name=a", 400, "64-bit"),
        # A query string over pipeforge's limit (4096 bytes) is refused whole (414).
        ("on=true&n=" + "9" * 5000 + "&name=a", 414, "limit of 4096"),
    ],
)
def test_typed_fields_via_get(flags, query, status, expected):
    response = flags.get("/flags?" + query)
    if status == 200:
        assert response.status_code == 200
        assert response.json["result"] == expected
    else:
        assert expected in assert_error(response, status, service_name="test")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        # SPEC section 8: JSON true/false in a POST; a number is not a boolean.
        (True, True),
        (False, True),
        (1, False),
        (0, False),
        ("true", True),
        ("FALSE", True),
        ("1", True),
        ("0", True),
        (2, False),
        (None, False),
        ("yes", False),
        (1.0, False),
        ([True], False),
    ],
)
def test_bool_via_post(flags, value, ok):
    response = flags.post("/flags", json=[{"on": value, "n": 1, "name": "a"}])
    if ok:
        assert response.status_code == 200
        expected = value if isinstance(value, bool) else value.lower() in ("true", "1")
        assert response.json["result"][0][0] is expected
    else:
        assert "'on'" in assert_error(response, 400, service_name="test")


def test_unknown_path_and_wrong_method(client):
    assert "Not Found" in assert_error(client.get("/nowhere"), 404)
    assert "Not Found" in assert_error(client.post("/predict/extra"), 404)
    response = client.put("/predict", json=[SAMPLE])
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_error(client.delete("/alive"), 405)
    assert_error(client.post("/list"), 405)


def test_too_large_body(client):
    response = client.post(
        "/predict", data=b"[" + b" " * (17 * 2**20) + b"]", content_type="application/json"
    )
    assert_error(response, 413)


# -- generated requests ----------------------------------------------------------

FIELD_NAMES = st.sampled_from([*IRIS_FEATURES, "other", ""]) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(FIELD_NAMES, children, max_size=5)
    ),
    max_leaves=20,
)
NUMBERS = st.floats() | st.integers() | st.floats().map(repr)
SAMPLES = (
    st.fixed_dictionaries({name: NUMBERS for name in IRIS_FEATURES})
    | st.fixed_dictionaries({}, optional={name: JSON_VALUES for name in IRIS_FEATURES})
    | st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6)
)
BODIES = st.lists(SAMPLES, max_size=5) | JSON_VALUES
QUERY_VALUES = st.text(max_size=12) | st.floats().map(repr) | st.integers().map(str)
FULL_QUERIES = st.fixed_dictionaries({name: QUERY_VALUES for name in IRIS_FEATURES})


def check_response(response):
    assert response.status_code < 500, response.get_data()
    assert response.mimetype == "application/json"
    body = response.json
    if response.status_code == 200:
        assert body["metadata"]["status"] == "OK"
    else:
        assert set(body["metadata"]) == ERROR_KEYS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=FULL_QUERIES | st.dictionaries(FIELD_NAMES, QUERY_VALUES, max_size=6))
def test_generated_get_requests_never_fail(app, params):
    path = "/predict?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    check_response(app.test_client().get(path))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=BODIES,
    content_type=st.sampled_from(["application/json", "text/plain", "application/vnd+json"]),
)
def test_generated_post_requests_never_fail(app, body, content_type):
    data = json.dumps(body)
    check_response(app.test_client().post("/predict", data=data, content_type=content_type))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=64), path=st.sampled_from(["/predict", "/alive", "/list", "/x"]))
def test_generated_raw_bodies_never_fail(app, data, path):
    client = app.test_client()
    check_response(client.post(path, data=data, content_type="application/json"))


def test_huge_finite_values_are_predicted_not_failed(client):
    """1e308 overflows inside the model's matmul; that is no reason for a 500."""
    sample = {
        "sepal length": 1e308,
        "sepal width": -1e308,
        "petal length": 1e308,
        "petal width": 1e308,
    }
    response = client.post("/predict", json=[sample])
    assert response.status_code == 200, response.get_data()
    assert response.json["result"][0] in {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}
