"""pipeforge and a real MLServer answer the same protocol request alike, field by field.

The model is fitted and stored by pipeforge; the stored version is written
out with joblib, as an MLServer user keeps it, and MLServer's scikit-learn
runtime serves that file (tests/fixtures/mlserver.py installs MLServer in
a venv of its own). Both get the very bodies MLServer's users send today:
one FP64 matrix, and one tensor per column with MLServer's pandas content
type; every field of the two answers must match.
"""

from __future__ import annotations

import joblib
import pytest
import requests

from pipeforge.config import load_config
from pipeforge.training import fit
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]
MATRIX = {
    "id": "same-request",
    "inputs": [
        {
            "name": "input-0",
            "shape": [len(ROWS), 4],
            "datatype": "FP64",
            "data": [value for row in ROWS for value in row],
        }
    ],
    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
}
COLUMNS = {
    "id": "same-columns",
    "parameters": {"content_type": "pd"},
    "inputs": [
        {
            "name": name,
            "shape": [len(ROWS), 1],
            "datatype": "FP64",
            "data": [row[i] for row in ROWS],
        }
        for i, name in enumerate(IRIS_FEATURES)
    ],
}


@pytest.fixture
def both(tmp_path, gunicorn_server, mlserver_server):
    """``(pipeforge URL, MLServer URL)`` serving the same stored model as ``iris``, version 1."""
    path = iris_config(tmp_path, inference_protocol={"names": {"predict_service": "iris"}})
    config = load_config([str(path)])
    version = fit(
        config["dataset_loader_train"], config["model"], config["model_persister"]
    ).version
    assert version == 1
    model_file = tmp_path / "model.joblib"
    joblib.dump(config["model_persister"].read(version), model_file)
    return gunicorn_server(path), mlserver_server(model_file, name="iris", version="1")


def _compare(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for key in ("model_name", "model_version", "id", "parameters"):
        assert ours[key] == theirs[key], key
    assert [o["name"] for o in ours["outputs"]] == [o["name"] for o in theirs["outputs"]]
    for mine, other in zip(ours["outputs"], theirs["outputs"], strict=True):
        assert set(mine) == set(other)
        for key in ("name", "shape", "datatype", "parameters"):
            assert mine[key] == other[key], (mine["name"], key)
        if mine["datatype"] == "FP64":
            assert mine["data"] == pytest.approx(other["data"], rel=1e-12, abs=1e-15)
        else:
            assert mine["data"] == other["data"]


@pytest.mark.parametrize("body", [MATRIX, COLUMNS], ids=["matrix", "one tensor per column"])
def test_pipeforge_answers_as_mlserver_does(both, body):
    ours_url, theirs_url = both
    ours = requests.post(ours_url + "/v2/models/iris/infer", json=body, timeout=30)
    theirs = requests.post(theirs_url + "/v2/models/iris/infer", json=body, timeout=30)
    assert theirs.status_code == ours.status_code == 200, (ours.text, theirs.text)
    _compare(ours.json(), theirs.json())
    assert ours.json()["outputs"][0]["data"][0] == "Iris-setosa"


def test_the_health_and_unknown_model_answers_match(both):
    ours_url, theirs_url = both
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"):
        ours = requests.get(ours_url + path, timeout=10)
        theirs = requests.get(theirs_url + path, timeout=10)
        assert ours.status_code == theirs.status_code == 200, path
    ours = requests.get(ours_url + "/v2/models/nope", timeout=10)
    theirs = requests.get(theirs_url + "/v2/models/nope", timeout=10)
    assert ours.status_code == theirs.status_code == 404
    assert isinstance(ours.json()["error"], str) and isinstance(theirs.json()["error"], str)
    assert set(requests.get(ours_url + "/v2", timeout=10).json()) == set(
        requests.get(theirs_url + "/v2", timeout=10).json()
    )
