"""MLflow models: folders and registries the real MLflow wrote, served by pipeforge on gunicorn,
and pipeforge's models exported for ``mlflow models serve``; the answers match MLflow's own."""

from __future__ import annotations

import json
import os
import pprint
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pipeforge.errors import ConfigError, UnknownVersionError, UntrustedModelError
from pipeforge.persistence import MLflowModels
from pipeforge.persistence.mlflow_export import signature_from_mapping, write_mlflow_folder
from pipeforge.persistence.mlflow_folder import mapping_from_signature, model_mapping
from pipeforge.persistence.mlflow_models import ReadOnlyStoreError
from tests.fixtures.gunicorn import IRIS_DATA, IRIS_FEATURES, iris_config

BIN = Path(sys.executable).parent
IRIS_MAPPING = [(name, "float") for name in IRIS_FEATURES]
# rows of iris.data: setosa, versicolor, virginica, and two that models tell apart less easily
ROWS = [0, 50, 100, 70, 133, 119]

# Run by MLflow's own Python: what an MLflow user has, and what MLflow itself predicts with it.
MLFLOW_SIDE = """
import json
import mlflow, mlflow.pyfunc, mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

names = {names!r}
data = pd.read_csv({data!r}, names=[*names, "species"])
X, y = data[names], data["species"]
samples = X.iloc[{rows!r}]
first = LogisticRegression(C=0.3, max_iter=1000).fit(X, y)
second = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
signature = infer_signature(X, first.predict(X))

mlflow.sklearn.save_model(first, "skops-folder", signature=signature)  # MLflow's default: skops
mlflow.sklearn.save_model(
    second, "cloudpickle-folder", signature=signature, serialization_format="cloudpickle"
)
expected = {{}}
for folder in ("skops-folder", "cloudpickle-folder"):
    expected[folder] = mlflow.pyfunc.load_model(folder).predict(samples).tolist()

for uri in ("file:./mlruns", "sqlite:///mlflow.db"):
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for model, form in ((first, "skops"), (second, "cloudpickle")):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model, name="model", signature=signature, registered_model_name="iris",
                serialization_format=form,
            )
    mlflow.MlflowClient().set_registered_model_alias("iris", "champion", 1)
    for ref in ("champion", "2"):
        target = "models:/iris@champion" if ref == "champion" else "models:/iris/2"
        expected[uri + " " + ref] = mlflow.pyfunc.load_model(target).predict(samples).tolist()
print(json.dumps(expected))
"""


@pytest.fixture(scope="module")
def mlflow_made(mlflow_venv, tmp_path_factory):
    """Model folders and registries MLflow wrote, and what MLflow's pyfunc predicts with each."""
    folder = tmp_path_factory.mktemp("mlflow-made")
    code = MLFLOW_SIDE.format(names=IRIS_FEATURES, data=str(IRIS_DATA), rows=ROWS)
    out = mlflow_venv.python(code, folder, env={"MLFLOW_ALLOW_FILE_STORE": "true"})
    return folder, json.loads(out.strip().splitlines()[-1])


def samples() -> list[dict]:
    lines = IRIS_DATA.read_text().splitlines()
    rows = [lines[i].split(",") for i in ROWS]
    return [{n: float(v) for n, v in zip(IRIS_FEATURES, row, strict=False)} for row in rows]


def serving_config(tmp_path: Path, persister: dict, mapping) -> Path:
    """A config serving ``persister`` (an MLflowModels entry) on /predict.

    Without ``mapping`` the service takes the one of the model's signature.
    """
    config = {
        "service_metadata": {"service_name": "iris", "service_version": "0.1"},
        "model_persister": {
            "__factory__": "pipeforge.persistence.CachedUpdatePersister",
            "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
            "impl": {"__factory__": "pipeforge.persistence.MLflowModels", **persister},
        },
        "predict_service": {"__factory__": "pipeforge.server.PredictService"},
    }
    if mapping is not None:
        config["predict_service"]["mapping"] = [list(pair) for pair in mapping]
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat(config, sort_dicts=False))
    return path


def script(name: str, *args: str, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [str(BIN / name), *args], env=env, capture_output=True, text=True, timeout=300
    )


CASES = {
    # name: (persister parameters, the key of MLflow's own predictions, the version served)
    "skops-folder": ({"path": "skops-folder"}, "skops-folder", 1),
    "cloudpickle-folder": (
        {"path": "cloudpickle-folder", "allow_pickle": True},
        "cloudpickle-folder",
        1,
    ),
    "mlruns-alias": ({"path": "mlruns", "alias": "champion"}, "file:./mlruns champion", 1),
    "mlruns-newest": (
        {"path": "mlruns", "name": "iris", "allow_pickle": True},
        "file:./mlruns 2",
        2,
    ),
    "mlflow.db-alias": (
        {"path": "mlflow.db", "alias": "champion"},
        "sqlite:///mlflow.db champion",
        1,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pipeforge_serves_what_mlflow_wrote_with_mlflows_predictions(
    case, mlflow_made, tmp_path, gunicorn_server
):
    made, expected = mlflow_made
    params, key, version = CASES[case]
    params = {**params, "path": str(made / params["path"])}
    listed = MLflowModels(**params).list_models()
    served = next(m for m in listed if m["version"] == version)
    # the signature MLflow inferred from the training frame becomes the mapping
    assert mapping_from_signature(served["signature"]) == IRIS_MAPPING
    assert served["mapping"] == [list(pair) for pair in IRIS_MAPPING]
    # the alias cases leave the mapping to the signature; the others give it in the config
    mapping = None if case.endswith("-alias") else served["mapping"]
    url = gunicorn_server(serving_config(tmp_path, params, mapping), workers=1)
    answer = requests.post(url + "/predict", json=samples(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == expected[key]
    assert len(set(expected[key])) > 1  # the samples tell the models apart
    listing = requests.get(url + "/list", timeout=10).json()
    assert listing["properties"]["active-model"] == str(version)


def test_the_two_registered_versions_answer_differently(mlflow_made):
    _, expected = mlflow_made
    assert expected["file:./mlruns champion"] != expected["file:./mlruns 2"]
    assert expected["sqlite:///mlflow.db champion"] == expected["file:./mlruns champion"]


def test_a_loaded_model_carries_its_signature_and_mapping(mlflow_made):
    made, _ = mlflow_made
    model = MLflowModels(path=str(made / "mlruns"), alias="champion").read()
    metadata = model.__metadata__
    assert metadata["version"] == 1
    assert metadata["mlflow"]["aliases"] == ["champion"]
    assert metadata["mlflow"]["serialization_format"] == "skops"
    assert metadata["signature"]["inputs"][0] == {
        "type": "double",
        "name": "sepal length",
        "required": True,
    }
    assert model_mapping(model) == IRIS_MAPPING
    with pytest.raises(UnknownVersionError):
        MLflowModels(path=str(made / "mlruns")).read(7)


def test_pickles_load_only_when_allowed(mlflow_made):
    made, _ = mlflow_made
    with pytest.raises(UntrustedModelError, match="allow_pickle"):
        MLflowModels(path=str(made / "cloudpickle-folder")).read()
    with pytest.raises(UntrustedModelError, match="allow_pickle"):
        MLflowModels(path=str(made / "mlflow.db")).read(2)  # version 2 is a cloudpickle
    model = MLflowModels(path=str(made / "cloudpickle-folder"), allow_pickle=True).read()
    assert model.__metadata__["mlflow"]["serialization_format"] == "cloudpickle"


def test_a_moved_tracking_folder_is_still_found(mlflow_made, tmp_path):
    made, _ = mlflow_made
    moved = tmp_path / "elsewhere" / "mlruns"
    shutil.copytree(made / "mlruns", moved)
    shutil.rmtree(made / "mlruns")  # the absolute paths MLflow recorded are gone
    try:
        model = MLflowModels(path=str(moved), alias="champion").read()
        assert str(moved) in model.__metadata__["mlflow"]["folder"]
    finally:
        shutil.copytree(moved, made / "mlruns")


def test_the_scripts_list_the_registry_and_refuse_to_change_it(mlflow_made, tmp_path):
    made, _ = mlflow_made
    config = serving_config(
        tmp_path, {"path": str(made / "mlruns"), "alias": "champion"}, IRIS_MAPPING
    )
    listed = script("pf-list", config=config)
    assert listed.returncode == 0, listed.stderr
    assert "champion" in listed.stdout
    refused = script("pf-admin", "activate", "2", config=config)
    assert refused.returncode == 1
    assert "read-only" in refused.stderr and "set_registered_model_alias" in refused.stderr
    with pytest.raises(ReadOnlyStoreError):
        MLflowModels(path=str(made / "mlruns")).write(object())


def test_a_registry_of_several_models_needs_a_name(tmp_path):
    for name in ("iris", "wine"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "meta.yaml").write_text(f"name: {name}\n")
    with pytest.raises(ConfigError, match="parameter 'name' of MLflowModels.*iris, wine"):
        MLflowModels(path=str(tmp_path)).list_models()
    assert MLflowModels(path=str(tmp_path), name="wine").list_models() == []


def test_pf_export_to_mlflow_is_served_by_mlflow_with_pipeforges_predictions(
    tmp_path, gunicorn_server, mlflow_server
):
    config = iris_config(tmp_path)
    fitted = script("pf-fit", config=config)
    assert fitted.returncode == 0, fitted.stderr
    ours = requests.post(
        gunicorn_server(config, workers=1) + "/predict", json=samples(), timeout=30
    )
    assert len(set(ours.json()["result"])) == 3
    rows = [list(sample.values()) for sample in samples()]
    body = {"dataframe_split": {"columns": IRIS_FEATURES, "data": rows}}
    for form in ("pickle", "skops"):
        exported = tmp_path / f"iris-{form}"
        done = script("pf-export", "--to-mlflow", str(exported), "--format", form, config=config)
        assert done.returncode == 0, done.stderr
        assert "as the MLflow model" in done.stdout
        theirs = requests.post(mlflow_server(exported) + "/invocations", json=body, timeout=30)
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["predictions"] == ours.json()["result"]
        # and back: pipeforge reads the folder it wrote, with the mapping as its signature
        model = MLflowModels(path=str(exported), allow_pickle=True).read()
        assert model_mapping(model) == IRIS_MAPPING
        assert model.__metadata__["mlflow"]["serialization_format"] == form
    again = script("pf-export", "--to-mlflow", str(exported), config=config)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_pf_export_format_needs_to_mlflow(tmp_path):
    config = iris_config(tmp_path)
    done = script("pf-export", "--format", "skops", config=config)
    assert done.returncode == 2
    assert "--format goes with --to-mlflow" in done.stderr


def test_signatures_and_mappings_translate_both_ways(tmp_path):
    mapping = [("age", "int"), ("income", "float"), ("city", "str"), ("member", "bool")]
    assert mapping_from_signature(signature_from_mapping(mapping)) == mapping
    tensor = {
        "inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]'
    }
    assert mapping_from_signature(tensor) == [("x0", "float"), ("x1", "float"), ("x2", "float")]
    with pytest.raises(ConfigError, match="'photo' of type 'binary'"):
        mapping_from_signature({"inputs": '[{"type": "binary", "name": "photo"}]'})
    with pytest.raises(ConfigError, match="no input signature"):
        mapping_from_signature({"inputs": None})
    with pytest.raises(ConfigError, match="'when' has type 'date'"):
        write_mlflow_folder(object(), str(tmp_path / "x"), [("when", "date")])
    assert not (tmp_path / "x").exists()
