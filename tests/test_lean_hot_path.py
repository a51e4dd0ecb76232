"""The hot path's lean parts: the JSON codec (orjson and the standard library alike), the
lean request of the front door on odd inputs, prebuilt answers, the latency tally, and
batching that never holds back a large request."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import io
import json
import threading

import numpy as np
import pandas as pd
import pytest
from werkzeug.wrappers import Request

from pipeforge import json_codec, web
from pipeforge.lean import Answer, LeanRequest, json_answer
from pipeforge.server import PredictService
from pipeforge.server.batching import Batcher
from tests.test_fast_routes import MAPPING, flask_requests, model
from tests.test_server import memory_app
from tests.test_web_metrics import samples, value


class Colour(enum.Enum):
    RED = "red"


VALUES = [
    {"result": ["Iris-setosa", "Iris-virginica"], "metadata": {"status": "OK", "error_code": 0}},
    {"nan": float("nan"), "inf": float("inf"), "minus": float("-inf"), "ok": 1.5},
    np.array([1.0, np.nan, np.inf, -2.5e-7, 1e300]),
    np.array([[1, 2], [3, 4]], dtype=np.int64),
    np.array([True, False]),
    np.array([0.1, np.nan], dtype=np.float32),
    np.float32(0.1),
    np.array(["a", None], dtype=object),
    np.array(["2024-05-01", "NaT"], dtype="datetime64[D]"),
    np.datetime64("2024-05-01T12:30"),
    {1: "one", 2.5: "x", False: "f", None: "n"},
    2**70,
    {"deep": [{"x": (1, 2)}, {3}], "dec": decimal.Decimal("1.25"), "colour": Colour.RED},
    dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
    pd.Series([1.0, None]),
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    "caf\u00e9 \ud800",
]


def test_orjson_is_what_the_test_environment_writes_with():
    assert json_codec.CODEC == "orjson"  # the 'test' extra installs the 'fast' one's codec


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_orjson_and_the_standard_library_give_the_same_values(value):
    fast = json.loads(json_codec.dumpb(value))
    plain = json.loads(json_codec._stdlib_dumps(value))
    assert fast == plain
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        assert json.loads(json_codec.dumpb(value, numeric_arrays=True)) == plain


def test_the_nan_rule_holds_for_numbers_arrays_and_answers():
    body = {"x": float("nan"), "y": np.array([np.inf, 1.0]), "z": np.float64("nan")}
    for text in (web.dumps(body), json_answer(body).get_data(as_text=True)):
        assert "NaN" not in text and "Infinity" not in text
        assert json.loads(text) == {"x": None, "y": [None, 1.0], "z": None}
    numeric = json_codec.dumpb({"y": np.array([np.nan, -np.inf, 2.0])}, numeric_arrays=True)
    assert json.loads(numeric) == {"y": [None, None, 2.0]}
    assert json.loads(json_codec.dumpb(np.array([0.1], dtype=np.float32))) == [0.1]


def test_reading_json_refuses_what_it_did_and_keeps_big_integers():
    def read(raw: bytes):
        environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(raw))}
        environ.update({"CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(raw)})
        return web.read_json(LeanRequest(environ))

    assert read(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    assert read(b'{"a": 1, "a": 2}') == {"a": 2}
    assert read('"caf\u00e9"'.encode("utf-16")) == "caf\u00e9"
    for raw, problem in (
        (b"[NaN]", "holds NaN"),
        (b'["\\ud800"]', "lone surrogate"),
        (b"[1,", "does not parse"),
        (b"\xff", "does not parse"),
    ):
        with pytest.raises(web.RequestError, match=problem):
            read(raw)


def environ(query: str = "", body: bytes = b"", **extra) -> dict:
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "wsgi.input": io.BytesIO(body)}
    env.update({"SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http"})
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "query",
    [
        "a=1&a=2&b",
        "a=%20x+y&c=%C3%A9",
        "x=%ff%fe&y=%zz&z=%",
        "=v&&k=",
        "a%3Db=c%26d",
        "a=b=c;d",
        "caf\u00c3\u00a9=1",  # UTF-8 bytes as a WSGI server hands them over (latin-1)
    ],
)
def test_the_lean_query_reads_as_werkzeugs(query):
    lean, full = LeanRequest(environ(query)).args, Request(environ(query)).args
    assert dict(lean) == full.to_dict()
    assert all(lean.getlist(name) == full.getlist(name) for name in full)
    assert lean.get("a", type=int) == full.get("a", type=int)


def test_a_query_string_that_is_not_utf8_is_a_400_with_the_error_body():
    app = memory_app(model(), PredictService(mapping=MAPPING))
    answer = b"".join(
        app(environ("a=\xff&b=1", REQUEST_METHOD="GET", PATH_INFO="/predict"), _start)
    )
    body = json.loads(answer)
    assert _started["status"].startswith("400")
    assert "UTF-8" in body["metadata"]["error_message"] and "result" not in body


_started: dict = {}


def _start(status, headers, exc_info=None):
    _started.update(status=status, headers=dict(headers))


def test_the_lean_body_short_chunked_and_handed_over():
    short = environ(body=b"[1, 2", CONTENT_LENGTH="10", REQUEST_METHOD="POST")
    from werkzeug.exceptions import ClientDisconnected

    with pytest.raises(ClientDisconnected):
        LeanRequest(short).get_data()
    chunked = environ(body=b"[1]", HTTP_TRANSFER_ENCODING="chunked", REQUEST_METHOD="POST")
    chunked["wsgi.input_terminated"] = True
    assert LeanRequest(chunked, 100).get_data() == b"[1]"
    sent = environ(
        "q=1", body=b'{"a": 1}', CONTENT_LENGTH="8", CONTENT_TYPE="Application/JSON; charset=utf-8"
    )
    sent.update(REQUEST_METHOD="POST", HTTP_COOKIE="who=me", HTTP_X_THING="yes")
    lean = LeanRequest(sent)
    assert lean.mimetype == "application/json"
    assert web.read_json(lean) == {"a": 1}
    # what the lean request does not have itself comes from a werkzeug Request, body and all
    assert lean.get_json() == {"a": 1} and lean.cookies["who"] == "me"
    assert lean.headers["x-thing"] == "yes" and lean.path == "/"


def test_hot_answers_have_their_heads_and_flask_keeps_its_own():
    app = memory_app(model(), PredictService(mapping=MAPPING))
    client = app.test_client()
    through_flask = flask_requests(app)
    got = client.get("/predict?a=1&b=1")
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/json"
    assert int(got.headers["Content-Length"]) == len(got.data)
    assert got.json == {
        "result": "high",
        "metadata": {
            "service_name": "test",
            "service_version": "9",
            "status": "OK",
            "error_code": 0,
        },
    }
    posted = client.post("/predict", json=[{"a": 1, "b": 1}] * 3)
    assert posted.json["result"] == ["high"] * 3
    assert client.head("/predict?a=1&b=1").status_code == 200  # HEAD: Flask's
    assert through_flask == ["/predict"]
    answer = Answer(b'{"x": 1}', 201, [("X-Extra", "1")])
    assert answer.status == "201 CREATED" and answer.get_json() == {"x": 1}
    assert ("X-Extra", "1") in answer.headers


def test_numeric_predictions_are_written_from_the_array():
    X = np.array([[0.0, 0.0], [1.0, 1.0]] * 5)

    class Regressor:
        def predict(self, X):
            return np.where(X[:, 0] > 0.5, np.nan, X[:, 0] + 0.25)

    app = memory_app(Regressor(), PredictService(mapping=MAPPING))
    client = app.test_client()
    assert client.get("/predict?a=0&b=0").json["result"] == 0.25
    assert client.post("/predict", json=[{"a": 0, "b": 0}, {"a": 1, "b": 1}]).json["result"] == [
        0.25,
        None,
    ]
    assert X.shape == (10, 2)


def test_the_latency_histogram_counts_every_request():
    app = memory_app(model(), PredictService(mapping=MAPPING))
    client = app.test_client()
    for _ in range(7):
        assert client.get("/predict?a=1&b=0").status_code == 200
    scrape = samples(client.get("/metrics").text)
    labels = {"route": "/predict", "method": "GET"}
    assert value(scrape, "pipeforge_request_duration_seconds_count", **labels) == 7
    assert value(scrape, "pipeforge_request_duration_seconds_bucket", le="+Inf", **labels) == 7
    assert value(scrape, "pipeforge_request_duration_seconds_sum", **labels) > 0


def test_a_large_request_never_waits_for_a_batch():
    batcher = Batcher(max_batch_size=8, max_wait_ms=10_000)
    announced = threading.Event()
    release = threading.Event()

    def someone_else():  # announced, and never joins while the large request runs
        batcher.arrive(threaded=True)
        announced.set()
        release.wait(30)
        batcher.leave()

    other = threading.Thread(target=someone_else)
    other.start()
    assert announced.wait(10)
    calls: list[int] = []
    done: list[np.ndarray] = []

    def large():
        done.append(batcher.run("k", np.ones((5, 2)), lambda X: calls.append(len(X)) or X[:, 0]))

    worker = threading.Thread(target=large)
    worker.start()
    worker.join(10)
    finished = not worker.is_alive()
    release.set()
    other.join(10)
    worker.join(10)
    assert finished, "a request of more than half max_batch_size rows waited for another"
    assert calls == [5] and done[0].tolist() == [1.0] * 5
