"""R models and dataset loaders (pipeforge.R / palladium.R), run for real with R and randomForest."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeforge.cli import scripts
from pipeforge.errors import ConfigError, DataError
from pipeforge.palladium_compat.scripts import pld_fit_main
from pipeforge.persistence import File
from pipeforge.R import ClassificationModel, DatasetLoader, RegressionModel, to_python, to_r
from tests.fixtures.gunicorn import _wait_for_url, stop_process

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VIRGINICA = {"sepal length": 7.7, "sepal width": 3.0, "petal length": 6.1, "petal width": 2.3}
SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}


@pytest.fixture
def project(tmp_path):
    """A copy of examples/palladium-R: Palladium's R iris example."""
    folder = tmp_path / "R"
    shutil.copytree(
        REPO / "examples" / "palladium-R", folder, ignore=shutil.ignore_patterns("*.db")
    )
    return folder


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


@pytest.mark.slow
def test_r_example_fits_tests_and_is_served_by_gunicorn(project, tmp_path):
    result = subprocess.run(
        ["bash", "-ec", "pld-fit && pld-test"],
        cwd=project,
        env=_env(PALLADIUM_CONFIG="config.py"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "INFO:palladium:Wrote model with version 1." in result.stderr
    assert "INFO:palladium:Score: score: 1.0." in result.stderr  # a forest on its training data
    assert "randomForest 4" not in result.stderr  # library() banners are not news

    # A new process unpickles the model from the store: its R side must come back.
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*command, "--no-control-socket", "palladium.wsgi:app"],
            cwd=project,
            env=_env(PALLADIUM_CONFIG="config.py"),
            stdout=log,
            stderr=log,
        )
    try:
        url = _wait_for_url(proc, log_path, 90)
        query = "&".join(f"{k.replace(' ', '%20')}={v}" for k, v in VIRGINICA.items())
        with urllib.request.urlopen(f"{url}/predict?{query}", timeout=30) as response:
            assert json.load(response)["result"] == "virginica"
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps([SETOSA, VIRGINICA]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.load(response)["result"] == ["setosa", "virginica"]
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_r_model_with_a_python_dataset_loader_through_pf_scripts(project, monkeypatch, capsys):
    # Palladium's example also pairs the R model with a Python loader (a second config file).
    shutil.copy(REPO / "examples" / "iris" / "iris.data", project / "iris.data")
    (project / "config-python-data.py").write_text(
        "{'dataset_loader_train': {'__factory__': 'palladium.dataset.CSV', 'path': 'iris.data',"
        " 'names': ['sepal length', 'sepal width', 'petal length', 'petal width', 'species'],"
        " 'target_column': 'species', 'nrows': 100},"
        " 'dataset_loader_test': {'__copy__': 'dataset_loader_train', 'nrows': None,"
        " 'skiprows': 100}}"
    )
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    monkeypatch.setenv(
        "PIPEFORGE_CONFIG", f"{project / 'config.py'},{project / 'config-python-data.py'}"
    )
    assert scripts.fit_main(["--evaluate"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Wrote model with version 1" in out and "score_test: 0.9" in out
    assert (project / "iris-model.db").exists()  # pipeforge's rule: the config's folder
    lines = [json.dumps([VIRGINICA]), "[{}]", json.dumps([SETOSA])]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("\n".join(lines) + "\n"))
    assert scripts.stream_main([]) == 0
    first, bad, third = capsys.readouterr().out.splitlines()
    assert (json.loads(first), json.loads(third)) == (["Iris-virginica"], ["Iris-setosa"])
    assert json.loads(bad)["metadata"]["status"] == "ERROR"


def test_r_model_round_trip_through_a_model_store(project, tmp_path):
    loader = DatasetLoader(str(project / "iris.R"), "dataset")
    X, y = loader()
    assert isinstance(X, pd.DataFrame) and list(X.columns)[:2] == ["Sepal.Length", "Sepal.Width"]
    assert list(y[:2]) == ["setosa", "setosa"]  # a factor becomes its labels
    model = ClassificationModel(str(project / "iris.R"), "train.randomForest", encode_labels=True)
    store = File(str(tmp_path / "model-{version}.pickle"))
    store.activate(store.write(model.fit(X, y)))
    del model
    back = store.read()
    assert back._rmodel is None  # comes back serialized; R unserializes it at first use
    rows = np.array([list(SETOSA.values()), list(VIRGINICA.values())])
    assert list(back.predict(rows)) == ["setosa", "virginica"]
    probabilities = back.predict_proba(rows)
    assert probabilities.shape == (2, 3) and list(back.classes_) == list(np.unique(y))
    assert probabilities[0].argmax() == 0 and back.score(X, y) == 1.0
    assert pickle.loads(pickle.dumps(back)).predict(rows[:1])[0] == "setosa"


def test_regression_model_with_python_data(tmp_path):
    (tmp_path / "forest.R").write_text(
        "library(randomForest)\ntrain <- function(x, y, trees) randomForest(x, y, ntree = trees)\n"
    )
    X = pd.DataFrame({"a": np.linspace(0, 1, 60), "b": np.linspace(1, 0, 60) ** 2})
    y = 3 * X["a"] + 1
    model = RegressionModel(str(tmp_path / "forest.R"), "train", trees=50).fit(X, y)
    predicted = model.predict(X.to_numpy())
    assert predicted.dtype == float and np.abs(predicted - y).max() < 0.5
    assert model.score(X, y) > 0.9


def test_conversions_both_ways():
    frame = pd.DataFrame(
        {"n": [1.5, 2.5], "k": pd.Categorical(["x", "y"], categories=["y", "x"]), "s": ["p", "q"]}
    )
    back = to_python(to_r(frame))
    assert list(back["n"]) == [1.5, 2.5] and list(back["s"]) == ["p", "q"]
    assert list(back["k"]) == ["x", "y"] and list(back["k"].cat.categories) == ["y", "x"]
    assert list(to_python(to_r(pd.Categorical(["b", "a", "b"])))) == ["b", "a", "b"]
    matrix = to_python(to_r(np.array([[1.0, 2.0], [3.0, 4.0]])))
    assert matrix.shape == (2, 2) and matrix[1, 0] == 3.0
    mixed = to_python(to_r(np.array([["OJ", 0.5], ["VC", 1.0]], dtype=object)))
    assert list(mixed.iloc[:, 1]) == [0.5, 1.0] and list(mixed.iloc[:, 0]) == ["OJ", "VC"]
    assert list(to_python(to_r(np.array(["a", "b"], dtype=object)))) == ["a", "b"]


def test_missing_script_is_a_one_line_config_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.py").write_text(
        "{'dataset_loader_train': {'__factory__': 'palladium.R.DatasetLoader',"
        " 'scriptname': 'nowhere.R', 'funcname': 'dataset'},"
        " 'model': {'__factory__': 'sklearn.dummy.DummyClassifier'},"
        " 'model_persister': {'__factory__': 'palladium.persistence.File',"
        " 'path': 'm-{version}.pickle'}}"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.setenv("PALLADIUM_CONFIG", "config.py")
    assert pld_fit_main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pld-fit: error: ") and "\n" not in err
    assert f"cannot read the R script {tmp_path / 'nowhere.R'}" in err


def test_r_errors_name_the_function(tmp_path):
    (tmp_path / "bad.R").write_text("dataset <- function() stop('no data today')\n")
    with pytest.raises(DataError, match=r"R function 'dataset' of .*bad.R failed: .*no data today"):
        DatasetLoader(str(tmp_path / "bad.R"), "dataset")()
    with pytest.raises(ConfigError, match=r"defines no function 'nothing'"):
        DatasetLoader(str(tmp_path / "bad.R"), "nothing")()


def test_programs_started_after_r_get_the_environment_they_had():
    # rpy2 puts R's library folders (with the system's libpython) on LD_LIBRARY_PATH, which
    # broke every Python started afterwards (gunicorn, pf-* scripts) with another libpython.
    code = (
        "import os, subprocess, sys; before = os.environ.get('LD_LIBRARY_PATH'); "
        "from pipeforge.R import to_r; to_r(1.0); "
        "assert os.environ.get('LD_LIBRARY_PATH') == before, os.environ['LD_LIBRARY_PATH']; "
        "subprocess.run([sys.executable, '-c', 'import ssl, sqlite3'], check=True)"
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
