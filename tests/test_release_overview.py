"""``GET /release``: aliases, traffic, live scores over time and drift in one answer.

The iris service (SQLite and PostgreSQL model stores) splits its traffic
between a champion and a challenger, logs its answers and takes feedback;
``/release`` must agree with ``/list``, ``/live-scores`` and ``pf-drift``'s
report, and its live-score series must end on the live score itself.
"""

from __future__ import annotations

import pytest

from pipeforge.release.aliases import set_alias, set_tags, set_traffic
from pipeforge.release.timeline import score_timeline
from tests.test_release_log import AUTH, _config, _fit, _flush, _iris_rows, _predict

pytest_plugins = ["tests.test_release_log"]  # its serve fixture


def _evaluated(config, model=None) -> int:
    from sklearn.linear_model import LogisticRegression

    from pipeforge import training

    model = model if model is not None else LogisticRegression(C=0.3, max_iter=1000)
    loader, persister = config["dataset_loader_train"], config["model_persister"]
    return training.fit(loader, model, persister, evaluate=True).version


def _served(tmp_path, monkeypatch, sql_url, serve):
    from sklearn.dummy import DummyClassifier

    config = _config(
        tmp_path,
        monkeypatch,
        store_url=sql_url,
        prediction_log={"flush_seconds": 0.05},
        traffic={"champion": 1, "challenger": 1},
        sticky_key="X-User-ID",
        shadow={"alias": "challenger", "fraction": 1.0},
    )
    config["drift"] = {"min_rows": 5, "every": 0}
    champion = _evaluated(config)
    challenger = _evaluated(config, DummyClassifier(strategy="most_frequent"))
    persister = config["model_persister"]
    persister.activate(champion)
    set_alias(persister, "champion", champion)
    set_alias(persister, "challenger", challenger)
    set_tags(persister, challenger, {"reviewed": "no"})
    app, client = serve(config)
    rows = _iris_rows()
    for i, (sample, _) in enumerate(rows):
        headers = {"X-Request-ID": f"r-{i}", "X-User-ID": f"user-{i}"}
        query = "&".join(f"{k}={v}" for k, v in sample.items())
        assert client.get(f"/predict?{query}", headers=headers).status_code == 200
    _flush(app)
    body = [{"id": f"r-{i}", "ground_truth": label} for i, (_, label) in enumerate(rows)]
    assert client.post("/feedback", json=body, headers=AUTH).status_code == 200
    return config, app, client, champion, challenger


def test_release_agrees_with_the_other_routes(tmp_path, monkeypatch, sql_url, serve):
    config, app, client, champion, challenger = _served(tmp_path, monkeypatch, sql_url, serve)
    answer = client.get("/release")
    assert answer.status_code == 200
    body = answer.json
    listed = client.get("/list").json
    assert body["aliases"] == listed["aliases"]
    assert body["aliases"]["champion"] == champion and body["aliases"]["challenger"] == challenger
    versions = {v["version"]: v for v in body["versions"]}
    assert versions[challenger]["tags"] == {"reviewed": "no"}
    assert versions[champion]["aliases"] == ["active", "champion"]
    stored = {m["version"]: m for m in listed["models"]}
    assert versions[champion]["scores"]["score_train"] == stored[champion]["score_train"]
    assert (
        versions[champion]["scores"]["score_train"] > versions[challenger]["scores"]["score_train"]
    )

    [service] = body["services"]
    assert service["service"] == "/predict" and service["stored"] is False
    assert service["shares"] == {"challenger": 0.5, "champion": 0.5}
    assert service["shadow"] == {"alias": "challenger", "fraction": 1.0}

    arms = client.get("/live-scores").json["result"]
    assert sorted(body["live_scores"], key=str) == sorted(arms, key=str)
    by_version = {s["version"]: s for s in client.get("/live-scores?by=version").json["result"]}
    mine = {s["version"]: s for s in body["version_scores"]}
    assert {v: (s["score"], s["n"]) for v, s in mine.items()} == {
        v: (s["score"], s["n"]) for v, s in by_version.items()
    }
    assert mine[champion]["score"] > 0.9 > 0.5 > mine[challenger]["score"]

    # Each version's series ends on its live score.
    lines = {line["version"]: line for line in body["timeline"]}
    assert set(lines) == {champion, challenger}
    for version, line in lines.items():
        last = line["points"][-1]
        assert (last["score"], last["n"]) == (mine[version]["score"], mine[version]["n"])
        times = [p["time"] for p in line["points"]]
        assert times == sorted(times)

    # Drift per (service, version) and feature, as the monitor reports it.
    report = app.extensions["pipeforge_drift"].report()
    assert body["drift"]["versions"] == report["versions"]
    features = {f["name"] for v in body["drift"]["versions"] for f in v["features"]}
    assert features == {"sepal length", "sepal width", "petal length", "petal width"}

    # A stored split shows at once, with its shares.
    set_traffic(config["model_persister"], "/predict", {"champion": 3, "challenger": 1})
    [service] = client.get("/release").json["services"]
    assert service["stored"] is True and service["shares"] == {"challenger": 0.25, "champion": 0.75}


def test_a_series_grows_with_the_feedback(tmp_path, monkeypatch, serve):
    config = _config(tmp_path, monkeypatch, prediction_log={"flush_seconds": 0.05})
    version = _fit(config)
    app, client = serve(config)
    rows = _iris_rows()[:8]
    for i, (sample, _) in enumerate(rows):
        _predict(client, sample, request_id=f"t-{i}")
    _flush(app)
    wrong = [{"id": f"t-{i}", "ground_truth": "Iris-nope"} for i in range(4)]
    right = [{"id": f"t-{i}", "ground_truth": label} for i, (_, label) in enumerate(rows)][4:]
    assert client.post("/feedback", json=wrong + right, headers=AUTH).status_code == 200
    log = app.extensions["pipeforge_release_records"].logs["predict_service"]
    [line] = score_timeline(log, points=8)
    assert line["version"] == version and line["metric"] == "Accuracy"
    counts = [p["n"] for p in line["points"]]
    scores = [p["score"] for p in line["points"]]
    assert len(counts) >= 2 and counts == sorted(set(counts)) and counts[-1] == 8
    # the first four answers got a wrong ground truth, the last four a right one
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 0.5
    with pytest.raises(ValueError, match="points"):
        score_timeline(log, points=0)


def test_release_without_a_model_store_is_a_404(tmp_path):
    from pipeforge.config import load_config
    from pipeforge.server import create_app
    from tests.fixtures.online import online_config

    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/o.db"}
    app = create_app(load_config([str(online_config(tmp_path, store))]))
    answer = app.test_client().get("/release")
    assert answer.status_code == 404
    assert answer.json["metadata"]["status"] == "ERROR"
