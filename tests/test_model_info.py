"""What each stored version records (parameters, scores, fit time, data size) and pf-list shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeforge.cli import scripts
from pipeforge.errors import UnknownVersionError
from pipeforge.model_info import class_name, compare, data_size, estimator_params
from pipeforge.persistence import CachedUpdatePersister, Database, File
from tests.test_scripts import assert_one_line_error, project, run  # noqa: F401


def test_params_of_a_pipeline_are_flat_and_json_safe():
    model = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=0.5, tol=np.float64(1e-3)))]
    )
    params = estimator_params(model)
    assert params["clf__C"] == 0.5 and params["clf__tol"] == 0.001
    assert params["scale"] == "StandardScaler" and params["clf"] == "LogisticRegression"
    assert params["steps"] == [["scale", "StandardScaler"], ["clf", "LogisticRegression"]]
    assert json.loads(json.dumps(params, allow_nan=False)) == params


def test_param_values_that_json_cannot_hold():
    class Odd:
        def get_params(self, deep=True):
            return {
                "nan": float("nan"),
                "big": np.zeros((50, 3)),
                "small": np.arange(3),
                "func": np.log,
                "kind": LogisticRegression,
                "other": object(),
            }

        def fit(self, X, y):
            return self

    params = estimator_params(Odd())
    assert params["nan"] == "nan"
    assert params["big"] == "<ndarray of shape (50, 3)>"
    assert params["small"] == [0, 1, 2]
    assert params["func"] == "numpy.log"
    assert params["kind"].endswith("LogisticRegression")
    assert params["other"].startswith("<object object")
    json.dumps(params, allow_nan=False)
    assert estimator_params(object()) == {}


def test_public_class_name_and_data_size():
    assert class_name(LogisticRegression) == "sklearn.linear_model.LogisticRegression"
    assert data_size(np.zeros((7, 3))) == {"train_rows": 7, "train_features": 3}
    assert data_size([[1, 2], [3, 4]]) == {"train_rows": 2, "train_features": 2}
    assert data_size(None) == {}


def test_compare_marks_differences_in_order():
    rows = compare(
        [
            {"version": 3, "score_test": 0.9, "params": {"C": 0.1, "tol": 1}, "x": 1},
            {"version": 5, "score_test": 0.95, "params": {"C": 1.0, "tol": 1}},
        ],
        active="5",
    )
    table = {row.key: (row.values, row.differs) for row in rows}
    assert [row.key for row in rows] == ["active", "score_test", "params.C", "params.tol", "x"]
    assert table["active"] == ([False, True], True)
    assert table["params.C"] == ([0.1, 1.0], True)
    assert table["params.tol"] == ([1, 1], False)
    assert table["x"] == ([1, None], True)


# -- update_metadata on every persister ------------------------------------------


@pytest.fixture(params=["sqlite", "postgres", "file"])
def persister(request, tmp_path):
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'models.db'}")
    if request.param == "postgres":
        return Database(request.getfixturevalue("postgres_database_url"))
    return File(str(tmp_path / "models" / "model-{version}.pickle"))


def test_update_metadata_merges_into_one_version(persister):
    for C in (0.1, 1.0):
        persister.write(LogisticRegression(C=C))
    merged = persister.update_metadata(2, {"score_test": 0.75})
    assert merged["score_test"] == 0.75 and merged["version"] == 2
    first, second = persister.list_models()
    assert "score_test" not in first and second["score_test"] == 0.75
    assert second["train_timestamp"] == merged["train_timestamp"]
    with pytest.raises(UnknownVersionError):
        persister.update_metadata(9, {"score_test": 1.0})
    with pytest.raises(ValueError, match="version cannot be changed"):
        persister.update_metadata(2, {"version": 1})
    assert [m["version"] for m in persister.list_models()] == [1, 2]


def test_cached_persister_updates_the_cached_model(tmp_path):
    cached = CachedUpdatePersister(Database(f"sqlite:///{tmp_path / 'models.db'}"))
    cached.activate(cached.write(LogisticRegression()))
    served = cached.read()
    cached.update_metadata(1, {"score_test": 0.5})
    assert served.__metadata__["score_test"] == 0.5
    assert cached.read() is served


# -- the scripts --------------------------------------------------------------------


def _models(capsys) -> list[dict]:
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert code == 0
    return json.loads(out)["models"]


def test_fit_test_and_grid_search_record_what_they_measured(project, capsys):  # noqa: F811
    assert run(scripts.fit_main, ["-e"], capsys)[0] == 0
    project.write(model={"__factory__": "sklearn.linear_model.LogisticRegression", "C": 0.01})
    assert run(scripts.fit_main, [], capsys)[0] == 0
    code, tested, _ = run(scripts.test_main, ["--model-version=2"], capsys)
    assert code == 0 and tested.startswith("accuracy: ")
    assert run(scripts.grid_search_main, ["--persist-best"], capsys)[0] == 0

    first, second, third = _models(capsys)
    assert first["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert first["params"]["C"] == 0.3 and first["params"]["max_iter"] == 1000
    assert first["train_rows"] == 100 and first["train_features"] == 4
    assert first["fit_seconds"] > 0
    assert first["score_train"] == 0.98 and first["score_test"] == 0.96
    assert second["params"]["C"] == 0.01
    assert f"accuracy: {second['score_test']:.4f}" == tested.strip()
    assert second["score_test"] < first["score_test"] and "test_timestamp" in second
    assert "score_train" not in second
    assert third["params"]["C"] == 1.0 and third["train_rows"] == 100
    assert 0.9 < third["score_grid_search"] <= 1.0 and third["fit_seconds"] > 0


def test_list_shows_scores_and_parameters(project, capsys):  # noqa: F811
    run(scripts.fit_main, ["-e"], capsys)
    code, out, _ = run(scripts.list_main, [], capsys)
    assert code == 0
    assert "version 1 (active)" in out
    assert "estimator   sklearn.linear_model.LogisticRegression" in out
    assert "100 rows x 4 features" in out
    assert "score_train=0.9800  score_test=0.9600" in out
    assert "C=0.3" in out and "max_iter=1000" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_list_compare_side_by_side(project, capsys):  # noqa: F811
    for C in (0.3, 1.0, 0.3):
        project.write(model={"__factory__": "sklearn.linear_model.LogisticRegression", "C": C})
        run(scripts.fit_main, ["-e"], capsys)
    code, out, _ = run(scripts.list_main, ["--compare", "1", "3", "2"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["version", "1", "version", "3", "version", "2"]
    row = {line[3:].split()[0]: line for line in lines[1:-1]}
    assert row["params.C"].startswith("*") and row["params.C"].split()[2:] == ["0.3", "0.3", "1.0"]
    assert row["params.max_iter"].startswith(" ")
    assert row["active"].split()[2:] == ["no", "yes", "no"]
    assert lines[-1].endswith("rows differ (marked *)")

    code, out, _ = run(scripts.list_main, ["--compare", "1", "3", "--json"], capsys)
    body = json.loads(out)
    assert body["versions"] == [1, 3]
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["params.C"] == {"key": "params.C", "values": [0.3, 0.3], "differs": False}
    assert rows["train_timestamp"]["values"][0] is not None


def test_list_compare_errors(project, capsys):  # noqa: F811
    run(scripts.fit_main, [], capsys)
    code, _, err = run(scripts.list_main, ["--compare", "1", "7"], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-list", "no model with version 7", "available versions: 1")
    code, _, err = run(scripts.list_main, ["--compare", "1"], capsys)
    assert code == 2
    code, _, err = run(scripts.list_main, ["--compare", "1", "x"], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-list", "must be an integer model version")
