"""Models served through ONNX Runtime (pipeforge.onnx_model.OnnxModel), through config files,
pf-fit / pf-test and /predict: the compiled copy answers only when it predicts as the original."""

from __future__ import annotations

import pytest
import yaml

from pipeforge.cli import scripts
from pipeforge.config import load_config
from pipeforge.server import create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config_dict

ROWS = [
    dict(zip(IRIS_FEATURES, values, strict=True))
    for values in (
        ["5.1", "3.5", "1.4", "0.2"],
        ["6.4", "3.2", "4.5", "1.5"],
        ["6.3", "3.3", "6.0", "2.5"],
    )
]


def write_config(tmp_path, monkeypatch, estimator: dict, **persister) -> None:
    store = {
        "__factory__": "pipeforge.persistence.Database",
        "url": f"sqlite:///{tmp_path / 'models.db'}",
        **persister,
    }
    config = iris_config_dict(tmp_path, model_persister=store)
    config["dataset_loader_test"] = config["dataset_loader_train"]
    config["model"] = {
        "__factory__": "pipeforge.onnx_model.OnnxModel",
        "estimator": estimator,
        "check_data": {"__copy__": "dataset_loader_test"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
    monkeypatch.delenv("PIPEFORGE_MODEL_KEY", raising=False)


def fit_and_serve(tmp_path, capsys):
    code = scripts.fit_main([])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = load_config([str(tmp_path / "config.yaml")], __mode__="predict")
    model = config["model_persister"].read()
    app = create_app(config)
    try:
        client = app.test_client()
        answers = [client.get("/predict", query_string=row) for row in ROWS]
    finally:
        app.extensions["pipeforge"].stop()
    assert all(a.status_code == 200 for a in answers), [a.get_json() for a in answers]
    return model, [a.get_json()["result"] for a in answers], config


@pytest.mark.parametrize(
    "estimator",
    [
        {"__factory__": "sklearn.linear_model.LogisticRegression", "C": 0.3, "max_iter": 1000},
        {
            "__factory__": "sklearn.ensemble.RandomForestClassifier",
            "n_estimators": 20,
            "random_state": 0,
        },
    ],
)
def test_onnx_copy_serves_the_same_predictions(tmp_path, monkeypatch, capsys, estimator):
    write_config(tmp_path, monkeypatch, estimator)
    model, served, config = fit_and_serve(tmp_path, capsys)
    assert model.uses_onnx and model.onnx_status_ == "onnx: checked on 150 rows"
    X, y = config["dataset_loader_test"]()
    assert list(model.predict(X)) == list(model.estimator_.predict(X))
    rows = [[float(row[name]) for name in IRIS_FEATURES] for row in ROWS]
    assert served == list(model.estimator_.predict(rows))
    assert served == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    code = scripts.test_main([])
    out, err = capsys.readouterr()
    assert code == 0 and float(out.split()[1]) > 0.9, err


def test_original_answers_when_conversion_fails(tmp_path, monkeypatch, capsys, caplog):
    # skl2onnx has no converter for this subclass: the original model is kept and serves
    estimator = {"__factory__": "tests.integrity_models.MarkedLogisticRegression", "max_iter": 1000}
    write_config(tmp_path, monkeypatch, estimator)
    model, served, _ = fit_and_serve(tmp_path, capsys)
    assert not model.uses_onnx and model.onnx_ is None
    assert model.onnx_status_.startswith("original: ONNX conversion failed (MissingShapeCalculator")
    assert "predictions come from the original model" in caplog.text
    assert served == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def test_onnx_model_in_a_skops_store(tmp_path, monkeypatch, capsys):
    estimator = {"__factory__": "sklearn.linear_model.LogisticRegression", "max_iter": 1000}
    trusted = ["pipeforge.onnx_model.OnnxModel", "pipeforge.dataset.Table"]
    write_config(tmp_path, monkeypatch, estimator, format="skops", trusted_types=trusted)
    model, served, _ = fit_and_serve(tmp_path, capsys)
    assert model.uses_onnx
    assert served == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
