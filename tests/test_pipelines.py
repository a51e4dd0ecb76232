"""Versioned pipelines through config files and the pf-pipeline script (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeforge.cli.pipelines import main
from pipeforge.config import load_config
from pipeforge.errors import ConfigError, VersionError
from pipeforge.pipelines import build_op_store, build_pipelines

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture
def iris_env(tmp_path, monkeypatch, sql_url):
    """The iris example's pipelines.yaml, with the op store at ``sql_url``."""
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(IRIS / "pipelines.yaml"))
    monkeypatch.setenv("PIPEFORGE_OP_STORE", sql_url)
    monkeypatch.chdir(tmp_path)
    return sql_url


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_iris_walkthrough(iris_env, capsys):
    # Nothing trained yet: the predict pipeline cannot load.
    status, out, err = run(capsys, "load", "predict_iris")
    assert status == 1
    assert "'pca' has never been trained" in err.splitlines()[-1]

    status, out, _ = run(capsys, "run", "train_iris", "--save")
    assert status == 0
    trained = json.loads(out)
    assert trained["pipeline_output"] is None
    assert set(trained["versions"]) == {"iris", "pca", "classifier"}
    assert len(trained["saved"]) == 3

    status, out, _ = run(capsys, "run", "predict_iris", f"--input={json.dumps(SAMPLE)}")
    assert status == 0
    predicted = json.loads(out)
    assert predicted["pipeline_output"] == ["Iris-setosa", "Iris-virginica"]
    assert predicted["versions"]["pca"] == trained["versions"]["pca"]
    assert predicted["versions"]["classifier"] == trained["versions"]["classifier"]

    # Retrain only the PCA: the classifier was trained on the old PCA.
    status, out, _ = run(capsys, "run", "train_pca", "--save")
    assert status == 0
    new_pca = json.loads(out)["versions"]["pca"]
    assert new_pca.split(".")[0] != trained["versions"]["pca"].split(".")[0]
    status, out, err = run(capsys, "load", "predict_iris")
    assert status == 1
    message = err.strip().splitlines()[-1]
    assert message.startswith("pf-pipeline: error: ")
    assert "VersionError" not in message and "retrain 'classifier'" in message
    assert "'pca'" in message

    # Retrain the classifier on the new PCA: loading works again.
    status, out, _ = run(capsys, "run", "train_classifier", "--save")
    assert status == 0
    new_classifier = json.loads(out)["versions"]["classifier"]
    status, out, _ = run(capsys, "load", "predict_iris")
    assert status == 0
    loaded = json.loads(out)
    assert loaded == {
        "pipeline": "predict_iris",
        "is_loaded": True,
        "versions": {"pca": new_pca, "classifier": new_classifier},
    }

    status, out, _ = run(capsys, "versions", "predict_iris")
    assert status == 0
    stored = json.loads(out)
    assert [v["version"] for v in stored["pca"]] == [new_pca, trained["versions"]["pca"]]
    assert stored["classifier"][0]["version"] == new_classifier
    assert stored["classifier"][0]["trained_on"] == {"pca": new_pca}
    assert stored["classifier"][1]["trained_on"] == {"pca": trained["versions"]["pca"]}


def test_refused_load_leaves_previous_pipeline_serving(iris_env):
    config = load_config([str(IRIS / "pipelines.yaml")])
    pipelines, store = build_pipelines(config), build_op_store(config)
    pipelines["train_iris"].run()
    pipelines["train_iris"].save(store)
    predict = pipelines["predict_iris"]
    before = predict.load(store)
    expected = list(predict.run(SAMPLE))

    pipelines["train_pca"].run()
    pipelines["train_pca"].save(store)
    with pytest.raises(VersionError, match="retrain 'classifier'"):
        predict.load(store)
    assert predict.is_loaded
    assert predict.versions() == before
    assert list(predict.run(SAMPLE)) == expected

    # A pipeline never loaded stays not loaded after a refusal.
    fresh = build_pipelines(config)["predict_iris"]
    with pytest.raises(VersionError):
        fresh.load(store)
    assert not fresh.is_loaded
    store.dispose()


def test_script_usage_and_unknown_pipeline(iris_env, capsys):
    status, out, _ = run(capsys, "-h")
    assert status == 0 and "pf-pipeline run <name>" in out
    status, _, err = run(capsys, "frobnicate")
    assert status == 2 and err
    status, _, err = run(capsys, "run", "nope")
    assert status == 2
    assert "unknown pipeline 'nope'" in err and "predict_iris" in err
    status, _, err = run(capsys, "run", "train_iris", "--input={not json")
    assert status == 2 and "--input must be JSON" in err
    status, out, _ = run(capsys, "list")
    assert status == 0
    assert out.split() == ["train_iris", "predict_iris", "train_pca", "train_classifier"]


def _write(tmp_path: Path, pipelines: dict, ops: dict | None = None) -> Path:
    import yaml

    ops = ops or {
        "double": {
            "__factory__": "pipeforge.pipelines.FunctionOp",
            "function": "operator.mul",
            "kwargs": {},
        },
        "neg": {"__factory__": "pipeforge.pipelines.FunctionOp", "function": "operator.neg"},
    }
    path = tmp_path / "bad.yaml"
    config = {
        "op_store": {"url": f"sqlite:///{tmp_path / 'ops.db'}"},
        "ops": ops,
        "pipelines": pipelines,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _node(op, inputs=None, outputs=None, **kw):
    return {"op": op, "inputs": inputs, "outputs": outputs, **kw}


INVALID = {
    "unknown input": (
        {"p": {"nodes": [_node("neg", "nowhere", "__pipeline_output__")]}},
        ["pipeline 'p'", "node 'neg'", "input 'nowhere' is written by no node"],
    ),
    "cycle": (
        {
            "p": {
                "nodes": [
                    _node("neg", "b", "a"),
                    _node("neg", "a", "b", name="neg2"),
                    _node("neg", "a", "__pipeline_output__", name="neg3"),
                ]
            }
        },
        ["pipeline 'p'", "'neg', 'neg2'", "form a cycle"],
    ),
    "output never consumed": (
        {"p": {"nodes": [_node("neg", "__pipeline_input__", "lost")]}},
        ["pipeline 'p'", "node 'neg'", "output 'lost' is never consumed"],
    ),
    "two writers": (
        {
            "p": {
                "nodes": [
                    _node("neg", "__pipeline_input__", "__pipeline_output__"),
                    _node("neg", "__pipeline_input__", "__pipeline_output__", name="again"),
                ]
            }
        },
        ["pipeline 'p'", "node 'again'", "already written by node 'neg'"],
    ),
    "unknown op": (
        {"p": {"nodes": [_node("nope", "__pipeline_input__", "__pipeline_output__")]}},
        ["unknown op 'nope'", "pipelines.p.nodes.0.op"],
    ),
    "pipelines contain each other": (
        {
            "p": {
                "nodes": [
                    {
                        "pipeline": "q",
                        "inputs": "__pipeline_input__",
                        "outputs": "__pipeline_output__",
                    }
                ]
            },
            "q": {
                "nodes": [
                    {
                        "pipeline": "p",
                        "inputs": "__pipeline_input__",
                        "outputs": "__pipeline_output__",
                    }
                ]
            },
        },
        ["pipelines contain each other: p -> q -> p"],
    ),
    "bad mode": (
        {
            "p": {
                "nodes": [
                    _node(
                        {
                            "__factory__": "pipeforge.pipelines.EstimatorOp",
                            "estimator": {"__factory__": "sklearn.decomposition.PCA"},
                        },
                        "__pipeline_input__",
                        "__pipeline_output__",
                        mode="train",
                    )
                ]
            }
        },
        [
            "pipeline 'p'",
            "node 'pca'",
            "mode must be one of fit, predict, fit_predict; got 'train'",
        ],
    ),
    "unknown node key": (
        {"p": {"nodes": [_node("neg", "__pipeline_input__", "__pipeline_output__", input="x")]}},
        ["pipeline 'p'", "unknown keys ['input']"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_graphs_are_config_errors(case, tmp_path, monkeypatch, capsys):
    pipelines, expected = INVALID[case]
    path = _write(tmp_path, pipelines)
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
    status, out, err = run(capsys, "list")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pf-pipeline: error: {path}")
    for fragment in expected:
        assert fragment in lines[0]
    with pytest.raises(ConfigError):
        build_pipelines(load_config([str(path)]))


def _versions_in_subprocess(env: dict) -> dict:
    code = (
        "import json, sys\n"
        "from pipeforge.config import load_config\n"
        "from pipeforge.pipelines import build_pipelines, build_op_store\n"
        "config = load_config([sys.argv[1]])\n"
        "pipelines = build_pipelines(config)\n"
        "store = build_op_store(config)\n"
        "result = {'config': {n: p.versions() for n, p in pipelines.items()}}\n"
        "pipelines['predict_iris'].load(store)\n"
        "result['loaded'] = pipelines['predict_iris'].versions()\n"
        "store.dispose()\n"
        "print(json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(IRIS / "pipelines.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_version_strings_are_the_same_in_every_process(iris_env):
    config = load_config([str(IRIS / "pipelines.yaml")])
    pipelines, store = build_pipelines(config), build_op_store(config)
    pipelines["train_iris"].run()
    pipelines["train_iris"].save(store)
    env = dict(os.environ, PYTHONHASHSEED="random")
    first = _versions_in_subprocess(dict(env, PYTHONHASHSEED="1"))
    second = _versions_in_subprocess(dict(env, PYTHONHASHSEED="2"))
    assert first == second
    assert first["config"]["predict_iris"] == build_pipelines(config)["predict_iris"].versions()
    assert first["loaded"] == {
        k: pipelines["train_iris"].versions()[k] for k in ("pca", "classifier")
    }
    store.dispose()


def test_examples_folder_copy_runs_from_elsewhere(tmp_path, monkeypatch, capsys):
    """The example works from a copy of its folder, as a newcomer would use it."""
    for name in ("pipelines.yaml", "iris.data"):
        shutil.copy(IRIS / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEFORGE_CONFIG", "pipelines.yaml")
    monkeypatch.delenv("PIPEFORGE_OP_STORE", raising=False)
    status, _, err = run(capsys, "run", "train_iris", "--save")
    assert status == 0, err
    assert (tmp_path / "iris-ops.db").exists()
