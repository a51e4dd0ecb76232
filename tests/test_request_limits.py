"""Every error a client can provoke is JSON: strict fields, lone surrogates, body and URL limits.

The app's own answers are tested with the Flask test client (and a raw WSGI
environ for a chunked body); what gunicorn decides itself is tested through
a real gunicorn started with the limits pipeforge's Dockerfile passes.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pipeforge import training
from pipeforge.cli.dockerize import GUNICORN_LIMITS, dockerfiles
from pipeforge.cli.fast_serve import command_line, serve_settings
from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.server import PredictService
from pipeforge.server.front_door import BODY_LIMIT, QUERY_LIMIT
from pipeforge.server.openapi import openapi_document
from tests.fixtures.gunicorn import IRIS_FEATURES, ROOT, iris_config
from tests.test_server import memory_app

ERROR_KEYS = {"service_name", "service_version", "status", "error_code", "error_message"}


def error_of(response, status: int) -> str:
    """The error message of a JSON error answer with ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    metadata = json.loads(response.get_data(as_text=True))["metadata"]
    assert set(metadata) >= ERROR_KEYS and metadata["status"] == "ERROR"
    return metadata["error_message"]


class _TopModel:
    """Two features, and the ``top`` keyword the services' ``params`` pass."""

    def __init__(self):
        X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
        self.estimator = LogisticRegression().fit(X, [0, 1, 0, 1])

    def predict(self, X, top=None):
        return self.estimator.predict(X)


def two_field_model():
    return _TopModel()


def service(**options):
    return PredictService(
        mapping=[("a", "float"), ("b", "float")], params=[("top", "int")], **options
    )


@pytest.fixture(params=["hot", "flask"])
def strict_client(request):
    """A strict service answered by the front door itself, or through Flask (a decorator list)."""
    entries = {"strict_decorators": ["tests.test_request_limits.passthrough"]}
    app = memory_app(
        two_field_model(),
        service(strict=True, decorator_list_name="strict_decorators"),
        **(entries if request.param == "flask" else {}),
    )
    return app.test_client()


def passthrough(view):
    return view


# -- strict services -------------------------------------------------------------------


def test_strict_service_refuses_an_unknown_query_parameter_naming_it(strict_client):
    message = error_of(strict_client.get("/predict?a=1&b=2&bb=3"), 400)
    assert (
        message
        == "unknown query parameter 'bb'; did you mean 'b'? (this service takes 'a', 'b', 'top')"
    )
    assert strict_client.get("/predict?a=1&b=2&top=1").status_code == 200


def test_strict_service_refuses_an_unknown_field_of_a_posted_sample(strict_client):
    samples = [{"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}]
    message = error_of(strict_client.post("/predict", json=samples), 400)
    assert message == "sample 1: unknown field 'c' (this service takes 'a', 'b')"
    assert strict_client.post("/predict", json=samples[:1]).status_code == 200


def test_strict_service_takes_only_params_in_a_posts_query_string(strict_client):
    message = error_of(strict_client.post("/predict?a=1", json=[{"a": 1, "b": 2}]), 400)
    assert message == "unknown query parameter 'a' (this service takes 'top')"
    assert strict_client.post("/predict?top=1", json=[{"a": 1, "b": 2}]).status_code == 200


def test_a_service_that_is_not_strict_ignores_unknown_fields():
    client = memory_app(two_field_model(), service()).test_client()
    assert client.get("/predict?a=1&b=2&c=3").status_code == 200
    assert client.post("/predict", json=[{"a": 1, "b": 2, "c": 3}]).status_code == 200


def test_strict_must_be_a_boolean():
    with pytest.raises(
        ConfigError, match="parameter 'strict' of PredictService must be true or false"
    ):
        memory_app(two_field_model(), service(strict="yes"))


def test_openapi_says_a_strict_service_takes_no_other_properties():
    app = memory_app(two_field_model(), service(strict=True), service(entry_point="/loose"))
    paths = openapi_document(app)["paths"]

    def items(path):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return body["items"]

    assert items("/predict")["additionalProperties"] is False
    assert "additionalProperties" not in items("/loose")
    assert "refused (400)" in paths["/predict"]["get"]["description"]


def test_strict_through_a_config_file(tmp_path):
    path = iris_config(
        tmp_path,
        predict_service={
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [[name, "float"] for name in IRIS_FEATURES],
            "strict": True,
        },
    )
    config = load_config([str(path)])
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    from pipeforge.server import create_app

    client = create_app(config).test_client()
    sample = dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    assert client.post("/predict", json=[sample]).status_code == 200
    typo = {**sample, "petal lenght": 1.4}
    message = error_of(client.post("/predict", json=[typo]), 400)
    assert message.startswith(
        "sample 0: unknown field 'petal lenght'; did you mean 'petal length'?"
    )


# -- lone surrogates --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '[{"a": 1, "b": 2, "\\ud800": 3}]',  # in a key
        '[{"a": 1, "b": "\\udfff"}]',  # in a value
        '[{"a": 1, "b": 2}, {"a": 1, "b": 2, "x": ["ok", {"y": "\\ud800"}]}]',  # deep down
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(body):
    client = memory_app(two_field_model(), service()).test_client()
    response = client.post("/predict", data=body, content_type="application/json")
    assert "lone surrogate" in error_of(response, 400)


def test_every_json_route_refuses_lone_surrogates():
    """The online API's ``id`` and ``model`` go through the same reader as ``/predict``."""
    from werkzeug.wrappers import Request

    from pipeforge import web
    from pipeforge.errors import RequestError

    for body in ('{"id": "\\ud800", "features": {}}', '{"model": "a\\udc00"}'):
        request = Request.from_values(data=body, content_type="application/json")
        with pytest.raises(RequestError, match="lone surrogate"):
            web.read_json(request, expect=dict)
    fine = Request.from_values(
        data='{"id": "caf\\u00e9 \\\\ud800"}', content_type="application/json"
    )
    assert web.read_json(fine, expect=dict) == {"id": "café \\ud800"}  # an escaped backslash


def test_a_lone_surrogate_sent_as_bytes_is_a_400():
    client = memory_app(two_field_model(), service()).test_client()
    body = b'[{"a": 1, "b": "' + "\ud800".encode("utf-8", "surrogatepass") + b'"}]'
    response = client.post("/predict", data=body, content_type="application/json")
    assert "lone surrogate" in error_of(response, 400)


def test_a_surrogate_pair_is_text_like_any_other():
    text_model = _TextModel()
    client = memory_app(text_model, PredictService(mapping=[("text", "str")])).test_client()
    response = client.post(
        "/predict", data='[{"text": "\\ud83d\\ude00"}]', content_type="application/json"
    )
    assert response.status_code == 200 and response.json["result"] == [1]
    assert text_model.seen == ["\U0001f600"]


def test_a_lone_surrogate_in_a_str_field_never_reaches_the_model():
    from pipeforge.server.fields import to_str

    with pytest.raises(Exception, match="lone surrogate") as info:
        to_str("text", "a\udc80b")
    assert type(info.value).__name__ == "RequestError"


def test_undecodable_query_strings_are_answered_not_crashed():
    client = memory_app(two_field_model(), service(strict=True)).test_client()
    assert client.get("/predict?a=1&b=%ED%A0%80").status_code == 400
    assert client.get("/predict?a=1&b=2&%ED%A0%80=1").status_code == 400


class _TextModel:
    def __init__(self):
        self.seen: list[str] = []

    def predict(self, X):
        self.seen.extend(row[0] for row in X)
        return np.ones(len(X), dtype=int)


# -- body and query-string limits (the app's own) ----------------------------------------


def _chunked(app, body: bytes):
    environ = EnvironBuilder(
        path="/predict", method="POST", content_type="application/json"
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True  # as gunicorn and werkzeug's server say for chunked
    chunks, status, _ = run_wsgi_app(app, environ)
    return int(status.split()[0]), json.loads(b"".join(chunks))


def _numbers(size: int) -> bytes:
    """A JSON list of samples of about ``size`` bytes."""
    sample = b'{"a": 1, "b": 2},'
    return b"[" + sample * (size // len(sample)) + b'{"a": 1, "b": 2}]'


LIMIT_WORDS = f"over this service's limit of {BODY_LIMIT} bytes (16 MiB)"


@pytest.mark.parametrize("flask_route", [False, True])
def test_a_body_over_the_limit_is_a_413_naming_it_with_a_content_length(flask_route):
    extra = {"predict_decorators": ["tests.test_request_limits.passthrough"]} if flask_route else {}
    client = memory_app(two_field_model(), service(), **extra).test_client()
    response = client.post(
        "/predict", data=_numbers(BODY_LIMIT + 10), content_type="application/json"
    )
    assert error_of(response, 413) == f"Request Entity Too Large: the request body is {LIMIT_WORDS}"


@pytest.mark.parametrize("flask_route", [False, True])
def test_a_chunked_body_over_the_limit_is_a_413_naming_it(flask_route):
    extra = {"predict_decorators": ["tests.test_request_limits.passthrough"]} if flask_route else {}
    app = memory_app(two_field_model(), service(), **extra)
    status, body = _chunked(app, _numbers(BODY_LIMIT + 10))
    assert status == 413
    assert body["metadata"]["error_message"].endswith(LIMIT_WORDS)
    status, body = _chunked(app, _numbers(BODY_LIMIT - 100))  # under the limit: answered
    assert status == 200 and len(body["result"]) > 900_000


def test_a_chunked_body_of_exactly_the_limit_is_taken():
    app = memory_app(two_field_model(), service())
    body = _numbers(BODY_LIMIT - 20)
    body = body[:-1] + b" " * (BODY_LIMIT - len(body)) + b"]"
    assert len(body) == BODY_LIMIT
    assert _chunked(app, body)[0] == 200
    assert _chunked(app, body + b" ")[0] == 413


@pytest.mark.parametrize("path", ["/predict", "/alive", "/nowhere"])
def test_a_query_string_over_the_limit_is_a_414_naming_it(path):
    client = memory_app(two_field_model(), service()).test_client()
    query = "a=1&b=2&pad=" + "x" * QUERY_LIMIT
    message = error_of(client.get(f"{path}?{query}"), 414)
    assert message == (
        f"Request URI Too Long: the query string has {len(query)} bytes, over this service's "
        f"limit of {QUERY_LIMIT}; send the values in a POST body"
    )
    assert client.get(f"/predict?a=1&b=2&pad={'x' * (QUERY_LIMIT - 12)}").status_code == 200


# -- where pipeforge starts gunicorn -------------------------------------------------------


def test_the_predict_image_and_the_demo_raise_gunicorns_limits():
    predict = dockerfiles(str(ROOT / "examples" / "iris"), "base", "me/iris:1")[
        "Dockerfile-predict"
    ]
    command = json.loads(re.search(r"^CMD (\[.*\])$", predict, re.MULTILINE).group(1))
    assert command == ["pf-serve"]  # which raises them when it runs gunicorn:
    args = {"--server": "gunicorn", "--bind": "0.0.0.0:8000", "--no-preload": False}
    args.update({option: None for option in ("--workers", "--threads", "--timeout")})
    gunicorn = " ".join(command_line(serve_settings({**args, "--graceful-timeout": None})))
    assert " ".join(GUNICORN_LIMITS) in gunicorn
    demo = (ROOT / "bootstrap.sh").read_text()  # the demo serves with pf-serve too
    assert 'exec pf-serve --workers 2 --bind "127.0.0.1:$port"' in demo


@pytest.fixture
def served(tmp_path, gunicorn_server):
    """A fitted iris model served by gunicorn with and without pipeforge's limits."""
    path = iris_config(tmp_path)
    config = load_config([str(path)])
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    return {
        "limits": gunicorn_server(path, args=GUNICORN_LIMITS),
        "defaults": gunicorn_server(path),
    }


def _json_error(response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["metadata"]["error_message"]


@pytest.mark.slow
def test_through_gunicorn_every_limit_of_the_app_is_json(served):
    url = served["limits"]
    big = _numbers(20 * 2**20)

    def chunks():
        for start in range(0, len(big), 2**16):
            yield big[start : start + 2**16]

    json_type = {"Content-Type": "application/json"}
    response = requests.post(f"{url}/predict", data=chunks(), headers=json_type, timeout=60)
    assert _json_error(response, 413).endswith(LIMIT_WORDS)
    response = requests.post(f"{url}/predict", data=big, headers=json_type, timeout=60)
    assert _json_error(response, 413).endswith(LIMIT_WORDS)
    query = "&".join(f"{name}=1" for name in IRIS_FEATURES).replace(" ", "%20")
    response = requests.get(f"{url}/predict?{query}&pad={'x' * 5000}", timeout=10)
    assert "over this service's limit of 4096" in _json_error(response, 414)
    # Headers up to the raised limits reach the app.
    headers = {"X-Big": "x" * 9000, **{f"X-Extra-{i}": "1" for i in range(120)}}
    assert requests.get(f"{url}/alive", headers=headers, timeout=10).status_code == 200
    # What stays gunicorn's own answer: a request line over its maximum of 8190 bytes.
    response = requests.get(f"{url}/predict?pad={'x' * 9000}", timeout=10)
    assert response.status_code == 414 and "text/html" in response.headers["Content-Type"]


@pytest.mark.slow
def test_without_the_flags_gunicorn_answers_a_long_query_itself(served):
    response = requests.get(f"{served['defaults']}/predict?pad={'x' * 5000}", timeout=10)
    assert response.status_code == 414 and "text/html" in response.headers["Content-Type"]
    response = requests.get(f"{served['limits']}/predict?pad={'x' * 5000}", timeout=10)
    assert response.headers["Content-Type"] == "application/json"


def test_docs_name_the_flags_and_the_limits():
    serving = (ROOT / "docs" / "serving.md").read_text()
    assert " ".join(GUNICORN_LIMITS) in serving
    assert f"over {QUERY_LIMIT} bytes" in serving and "16 MiB" in serving
    assert Path(ROOT / "bootstrap.sh").exists()
