"""The prediction log, the shadow, feedback and live scores, through the app's HTTP routes.

Each test serves the iris example with a real SQLite (or PostgreSQL) model
store; the log is written by the service's background thread and read back
through the public reader (``pipeforge.release.prediction_log``), the
dataset loader and the HTTP routes. Waiting is on conditions (a flush of the
sink's queues), never on sleeps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.release.aliases import set_alias
from pipeforge.release.prediction_log import logs_in, read_log
from pipeforge.server import create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config

SAMPLE = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
OTHER = {"sepal length": 6.7, "sepal width": 3.0, "petal length": 5.2, "petal width": 2.3}
TOKEN = "feedback-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _service(**release) -> dict:
    return {
        "__factory__": "pipeforge.server.PredictService",
        "mapping": [[name, "float"] for name in IRIS_FEATURES],
        **release,
    }


def _config(tmp_path, monkeypatch, *, store_url=None, **release):
    monkeypatch.setenv("PIPEFORGE_TOKENS", TOKEN)
    entries = {
        "predict_service": _service(**release),
        "feedback": {"enabled": True},
        "feedback_decorators": ["pipeforge.guards.require_token"],
        "scoring": "accuracy",
    }
    path = iris_config(tmp_path, **entries)
    config = load_config([str(path)], __mode__="predict")
    if store_url is not None:
        config["model_persister"].impl.url = store_url
    return config


def _fit(config, model=None) -> int:
    from sklearn.linear_model import LogisticRegression

    from pipeforge import training

    model = model if model is not None else LogisticRegression(C=0.3, max_iter=1000)
    return training.fit(config["dataset_loader_train"], model, config["model_persister"]).version


@pytest.fixture
def serve(tmp_path, monkeypatch):
    apps = []

    def start(config):
        app = create_app(config)
        apps.append(app)
        return app, app.test_client()

    yield start
    for app in apps:
        app.extensions["pipeforge"].stop()


def _flush(app) -> None:
    records = app.extensions["pipeforge_release_records"]
    for sink in records.sinks.values():
        assert sink.flush(timeout=20.0)


def _predict(client, sample=SAMPLE, request_id=None):
    headers = {"X-Request-ID": request_id} if request_id else {}
    query = "&".join(f"{k}={v}" for k, v in sample.items())
    answer = client.get(f"/predict?{query}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer


def test_answers_are_logged_with_their_inputs_and_read_back(tmp_path, monkeypatch, sql_url, serve):
    config = _config(tmp_path, monkeypatch, store_url=sql_url, prediction_log=True)
    version = _fit(config)
    app, client = serve(config)
    one = _predict(client, request_id="req-one")
    many = client.post("/predict", json=[SAMPLE, OTHER])
    assert many.status_code == 200
    generated = many.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "req-one"
    _flush(app)

    log = logs_in(config)["predict_service"]
    entries = read_log(log, service="/predict")
    assert [e.request_id for e in entries] == ["req-one", generated]
    first, second = entries
    assert first.single and first.inputs == [SAMPLE] and first.outputs == [one.json["result"]]
    assert first.version == version and first.alias is None and first.ground_truth is None
    assert not second.single and second.inputs == [SAMPLE, OTHER]
    assert second.outputs == many.json["result"]
    assert read_log(log, service="/other") == []
    assert [e.request_id for e in read_log(log, newest_first=True, limit=1)] == [generated]


def test_feedback_is_taken_once_and_unknown_ids_are_404(tmp_path, monkeypatch, serve, capsys):
    config = _config(tmp_path, monkeypatch, prediction_log={"flush_seconds": 0.05})
    _fit(config)
    app, client = serve(config)
    answer = _predict(client, request_id="fb-1")
    truth = answer.json["result"]
    first = client.post("/feedback", json={"id": "fb-1", "ground_truth": truth}, headers=AUTH)
    assert first.status_code == 200, first.json  # found after this process flushed its queue
    assert first.json["result"]["id"] == "fb-1"
    again = client.post("/feedback", json={"id": "fb-1", "ground_truth": truth}, headers=AUTH)
    assert again.status_code == 409
    assert again.json["metadata"]["status"] == "ERROR"
    unknown = client.post("/feedback", json={"id": "nope", "ground_truth": truth}, headers=AUTH)
    assert unknown.status_code == 404 and "nope" in unknown.json["metadata"]["error_message"]
    unguarded = client.post("/feedback", json={"id": "fb-1", "ground_truth": truth})
    assert unguarded.status_code == 401
    [entry] = read_log(logs_in(config)["predict_service"], with_feedback=True)
    assert entry.ground_truth == [truth]
    _shows_the_live_score(tmp_path, monkeypatch, capsys)


def _shows_the_live_score(tmp_path, monkeypatch, capsys) -> None:
    from pipeforge.cli.listing import list_main

    monkeypatch.setenv("PIPEFORGE_CONFIG", str(tmp_path / "config.py"))
    capsys.readouterr()
    assert list_main([]) == 0
    assert "    live score  Accuracy=1.0000 over 1 samples with feedback" in capsys.readouterr().out
    assert list_main(["--json"]) == 0
    [model] = json.loads(capsys.readouterr().out)["models"]
    assert model["live_score"]["score"] == 1.0 and model["live_score"]["n"] == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ({"id": "fb-2"}, "ground_truth"),
        ({"id": "", "ground_truth": "x"}, "'id'"),
        ({"id": "fb-2", "ground_truth": ["a", "b"]}, "one ground truth"),
        ({"id": "fb-2", "ground_truth": "x", "extra": 1}, "unknown field 'extra'"),
        ([], "empty list"),
        ("text", "JSON object or a JSON list"),
    ],
)
def test_bad_feedback_is_400_with_the_error_body(tmp_path, monkeypatch, serve, body, message):
    config = _config(tmp_path, monkeypatch, prediction_log=True)
    _fit(config)
    app, client = serve(config)
    _predict(client, request_id="fb-2")
    answer = client.post("/feedback", json=body, headers=AUTH)
    assert answer.status_code == 400
    assert message in answer.json["metadata"]["error_message"]


def test_a_batch_of_feedback_says_each_outcome(tmp_path, monkeypatch, serve):
    config = _config(tmp_path, monkeypatch, prediction_log=True)
    _fit(config)
    app, client = serve(config)
    labels = client.post("/predict", json=[SAMPLE, OTHER], headers={"X-Request-ID": "b-1"})
    _predict(client, request_id="b-2")
    body = [
        {"id": "b-1", "ground_truth": labels.json["result"]},
        {"id": "b-2", "ground_truth": "Iris-virginica"},
        {"id": "b-2", "ground_truth": "Iris-virginica"},
        {"id": "b-9", "ground_truth": "Iris-virginica"},
        {"id": "b-1"},
    ]
    answer = client.post("/feedback", json=body, headers=AUTH)
    assert answer.status_code == 200
    assert [o["status"] for o in answer.json["result"]] == [200, 200, 409, 404, 400]


def test_live_scores_per_version_and_for_the_shadow(tmp_path, monkeypatch, sql_url, serve):
    config = _config(
        tmp_path,
        monkeypatch,
        store_url=sql_url,
        prediction_log={"flush_seconds": 0.05},
        shadow={"alias": "challenger", "fraction": 1.0},
    )
    from sklearn.dummy import DummyClassifier

    champion = _fit(config)
    challenger = _fit(config, DummyClassifier(strategy="most_frequent"))  # one class: 1 in 3
    persister = config["model_persister"]
    persister.activate(champion)
    set_alias(persister, "challenger", challenger)
    app, client = serve(config)
    rows = _iris_rows()
    for i, (sample, _) in enumerate(rows):
        _predict(client, sample, request_id=f"s-{i}")
    _flush(app)
    body = [{"id": f"s-{i}", "ground_truth": label} for i, (_, label) in enumerate(rows)]
    assert client.post("/feedback", json=body, headers=AUTH).status_code == 200

    scores = client.get("/live-scores").json["result"]
    by_role = {s["role"]: s for s in scores}
    primary, shadow = by_role["primary"], by_role["shadow"]
    assert (primary["version"], shadow["version"]) == (champion, challenger)
    assert shadow["alias"] == "challenger" and primary["metric"] == "Accuracy"
    assert primary["n"] == shadow["n"] == len(rows)
    assert primary["score"] > 0.9 > 0.5 > shadow["score"]
    versions = client.get("/live-scores?by=version").json["result"]
    assert {s["version"] for s in versions} == {champion, challenger}
    assert client.get("/live-scores?by=nope").status_code == 400

    metrics = client.get("/metrics").get_data(as_text=True)
    line = f'pipeforge_live_score{{alias="challenger",metric="Accuracy",role="shadow",service="/predict",version="{challenger}"}}'
    assert line in metrics


def _iris_rows() -> list[tuple[dict, str]]:
    from tests.fixtures.gunicorn import IRIS_DATA

    rows = []
    for line in IRIS_DATA.read_text().splitlines()[::10]:
        *values, label = line.split(",")
        rows.append((dict(zip(IRIS_FEATURES, map(float, values), strict=True)), label))
    return rows


def test_json_lines_log_and_its_feedback(tmp_path, monkeypatch, serve):
    folder = tmp_path / "predictions"
    config = _config(tmp_path, monkeypatch, prediction_log={"path": str(folder)})
    _fit(config)
    app, client = serve(config)
    answer = _predict(client, request_id="j-1")
    _flush(app)
    [file] = folder.glob("predictions-*.jsonl")
    line = json.loads(file.read_text())
    # the file keeps the samples as rows of the mapping's columns; readers get dicts back
    assert line["request_id"] == "j-1"
    assert line["inputs"] == {"columns": list(SAMPLE), "data": [list(SAMPLE.values())]}
    truth = answer.json["result"]
    assert (
        client.post(
            "/feedback", json={"id": "j-1", "ground_truth": truth}, headers=AUTH
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/feedback", json={"id": "j-1", "ground_truth": truth}, headers=AUTH
        ).status_code
        == 409
    )
    [entry] = read_log(logs_in(config)["predict_service"], with_feedback=True)
    assert entry.ground_truth == [truth]


def test_retention_keeps_the_newest_rows(tmp_path):
    from pipeforge.release.log_store import SQLLog
    from pipeforge.release.prediction_log import LoggedPrediction
    from pipeforge.sql import create_engine

    log = SQLLog(create_engine(f"sqlite:///{tmp_path / 'log.db'}"))
    now = time.time()
    log.write(
        [
            LoggedPrediction(
                f"r{i}", now - 86400 * (10 - i), "/predict", 1, None, [SAMPLE], [0], True, 0.0
            )
            for i in range(10)
        ]
    )
    assert log.add_feedback("r0", [0], now)
    assert log.prune(before=now - 86400 * 5.5, keep=None) == 5
    assert [e.request_id for e in read_log(log)] == ["r5", "r6", "r7", "r8", "r9"]
    assert log.prune(before=None, keep=2) == 3
    assert [e.request_id for e in read_log(log)] == ["r8", "r9"]
    assert log.add_feedback("r0", [0], now)  # its prediction and feedback went together


@pytest.mark.parametrize(
    "release, message",
    [
        ({"prediction_log": {"bach_size": 3}}, "predict_service.prediction_log.bach_size"),
        ({"prediction_log": {"queue": 0}}, "parameter 'queue' of prediction_log"),
        ({"prediction_log": "yes"}, "must be true, false or a mapping"),
        ({"prediction_log": {"scoring": "nope"}}, "parameter 'scoring' of prediction_log"),
        ({"shadow": {"fraction": 0.5}}, "parameter 'alias' of shadow"),
        ({"shadow": {"alias": "c", "fraction": 2}}, "parameter 'fraction' of shadow"),
    ],
)
def test_a_wrong_entry_stops_the_start_naming_file_and_key(tmp_path, monkeypatch, release, message):
    config = _config(tmp_path, monkeypatch, **release)
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert message in str(caught.value)
    assert str(Path(tmp_path) / "config.py") in str(caught.value)


def test_the_dataset_loader_reads_what_was_answered_with_its_feedback(tmp_path, monkeypatch, serve):
    from pipeforge.dataset import PredictionLog

    config = _config(tmp_path, monkeypatch, prediction_log=True)
    _fit(config)
    app, client = serve(config)
    client.post("/predict", json=[SAMPLE, OTHER], headers={"X-Request-ID": "d-1"})
    _predict(client, OTHER, request_id="d-2")
    _flush(app)
    truths = ["Iris-setosa", "Iris-versicolor"]  # the second differs from the answer
    assert (
        client.post(
            "/feedback", json={"id": "d-1", "ground_truth": truths}, headers=AUTH
        ).status_code
        == 200
    )

    loader = PredictionLog()
    loader.initialize_component(config)
    X, y = loader()
    assert X.to_dict("records") == [SAMPLE, OTHER] and list(y) == truths
    everything = PredictionLog(with_feedback=False, ndarray=True)
    everything.initialize_component(config)
    X, y = everything()
    assert X.shape == (3, 4) and list(y[:2]) == truths and y[2] == "Iris-virginica"
