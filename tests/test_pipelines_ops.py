"""Ops, version rules, runners, callbacks and nesting, declared in config files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from pipeforge.config import load_config
from pipeforge.errors import ConfigError, VersionError
from pipeforge.pipelines import (
    NodeError,
    OpCallback,
    PipelineCallback,
    TimingCallback,
    TrainableOp,
    Version,
    build_op_store,
    build_pipelines,
)

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
SAMPLE = [[5.1, 3.5, 1.4, 0.2]]


def _config(tmp_path: Path, entries: dict, name: str = "config.yaml"):
    entries = {"op_store": {"url": f"sqlite:///{tmp_path / 'ops.db'}"}, **entries}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(entries))
    return load_config([str(path)])


def _iris(tmp_path: Path, name: str = "iris.yaml", **overrides):
    """The iris example's entries with some ops' estimator parameters replaced."""
    entries = yaml.safe_load((IRIS / "pipelines.yaml").read_text())
    entries["ops"]["iris"]["loader"]["path"] = str(IRIS / "iris.data")
    for op, values in overrides.items():
        for key, value in values.items():
            target = entries["ops"][op]
            if key in ("versioning", "training_level"):
                target[key] = value
            else:
                target["estimator"][key] = value
    return _config(tmp_path, entries, name)


def _version(config, pipeline: str, node: str) -> Version:
    return Version.parse(build_pipelines(config)[pipeline].versions()[node])


def test_versions_follow_the_declared_levels(tmp_path):
    base = _version(_iris(tmp_path), "predict_iris", "pca")
    more = _version(_iris(tmp_path, pca={"n_components": 3}), "predict_iris", "pca")
    solver = _version(_iris(tmp_path, pca={"svd_solver": "full"}), "predict_iris", "pca")
    assert more.major != base.major  # estimator parameters are major by default
    assert (solver.major, solver.minor) == (base.major, base.minor)  # declared patch
    assert solver.patch != base.patch
    c_minor = {"versioning": {"C": "minor"}}
    a = _version(_iris(tmp_path, classifier={**c_minor, "C": 1.0}), "predict_iris", "classifier")
    b = _version(_iris(tmp_path, classifier={**c_minor, "C": 2.0}), "predict_iris", "classifier")
    assert a.major == b.major and a.minor != b.minor
    with pytest.raises(ConfigError, match="names unknown parameters"):
        _version(_iris(tmp_path, pca={"versioning": {"nope": "major"}}), "predict_iris", "pca")


def test_training_level_decides_whether_downstream_must_retrain(tmp_path):
    config = _iris(tmp_path, pca={"training_level": "patch"})
    pipelines, store = build_pipelines(config), build_op_store(config)
    try:
        pipelines["train_iris"].run()
        pipelines["train_iris"].save(store)
        predict = pipelines["predict_iris"]
        first = predict.load(store)
        pipelines["train_pca"].run()
        pipelines["train_pca"].save(store)
        second = predict.load(store)  # a patch-level retrain keeps the major version: still linked
        assert second["pca"] != first["pca"]
        assert second["pca"].split(".")[0] == first["pca"].split(".")[0]
        assert second["classifier"] == first["classifier"]
    finally:
        store.dispose()


def test_changed_configuration_needs_retraining(tmp_path):
    config = _iris(tmp_path)
    pipelines, store = build_pipelines(config), build_op_store(config)
    pipelines["train_iris"].run()
    pipelines["train_iris"].save(store)
    changed = build_pipelines(_iris(tmp_path, "changed.yaml", pca={"n_components": 3}))
    with pytest.raises(
        VersionError, match="'pca' has trained versions, but none for its current configuration"
    ):
        changed["predict_iris"].load(store)
    # A patch-level change of configuration keeps the trained versions usable.
    patched = build_pipelines(_iris(tmp_path, "patched.yaml", pca={"svd_solver": "full"}))
    assert patched["predict_iris"].load(store) == pipelines["predict_iris"].load(store)
    assert patched["predict_iris"].run(SAMPLE)[0] == "Iris-setosa"
    store.dispose()


class Events(PipelineCallback, OpCallback):
    """Records the order of callback calls (named by the config as a class)."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def _add(self, *event):
        with self.lock:
            self.events.append(event)

    def before_pipeline(self, pipeline, pipeline_input):
        self._add("before_pipeline", pipeline.name)

    def after_pipeline(self, pipeline, pipeline_output):
        self._add("after_pipeline", pipeline.name, pipeline_output)

    def before_node(self, pipeline, node, inputs):
        self._add("before_node", node.name)

    def after_node(self, pipeline, node, output):
        self._add("after_node", node.name)

    def before_op(self, op, inputs):
        self._add("before_op", op.op_name)

    def after_op(self, op, inputs, output):
        self._add("after_op", op.op_name)


# Both branches of the "both" pipeline wait here for each other: run one after the
# other, the first would wait alone until the barrier breaks and its node fails.
_BRANCHES = threading.Barrier(2, timeout=30)


def meet_the_other_branch(value):
    _BRANCHES.wait()
    return value


def add(a, b):
    return a + b


def _fn(function, **kw):
    return {"__factory__": "pipeforge.pipelines.FunctionOp", "function": function, **kw}


def test_nested_pipeline_concurrent_runner_and_callbacks(tmp_path):
    config = _config(
        tmp_path,
        {
            "ops": {
                "neg": _fn(
                    "operator.neg", callbacks=[{"__factory__": "tests.test_pipelines_ops.Events"}]
                ),
                "branch_a": _fn("tests.test_pipelines_ops.meet_the_other_branch", name="branch_a"),
                "branch_b": _fn("tests.test_pipelines_ops.meet_the_other_branch", name="branch_b"),
                "add": _fn("tests.test_pipelines_ops.add"),
            },
            "pipelines": {
                "negate": {
                    "nodes": [
                        {
                            "op": "neg",
                            "inputs": "__pipeline_input__",
                            "outputs": "__pipeline_output__",
                        }
                    ]
                },
                "both": {
                    "runner": "concurrent",
                    "callbacks": [
                        {"__factory__": "tests.test_pipelines_ops.Events"},
                        "pipeforge.pipelines.TimingCallback",
                    ],
                    "nodes": [
                        {"op": "branch_a", "inputs": "__pipeline_input__", "outputs": "a"},
                        {"op": "branch_b", "inputs": "__pipeline_input__", "outputs": "b"},
                        {"pipeline": "negate", "inputs": "a", "outputs": "minus_a"},
                        {"op": "add", "inputs": ["minus_a", "b"], "outputs": "__pipeline_output__"},
                    ],
                },
            },
        },
    )
    pipelines = build_pipelines(config)
    both = pipelines["both"]
    _BRANCHES.reset()
    assert both.run(5) == 0  # the independent branches ran at the same time
    events, timing = both.__dict__["_pipeline_callbacks"]
    assert isinstance(timing, TimingCallback)
    assert {"both", "both/branch_a", "both/negate", "both/add"} <= set(timing.last)
    names = events.events
    assert names[0] == ("before_pipeline", "both") and names[-1] == ("after_pipeline", "both", 0)
    assert names.index(("after_node", "negate")) < names.index(("before_node", "add"))
    assert set(both.versions()) == {"branch_a", "branch_b", "negate/neg", "add"}
    # The op callback of 'neg' ran inside the nested pipeline.
    inner = both.__dict__["_current"].subs["negate"]
    op_events = inner.__dict__["_op_callbacks"]["neg"][0].events
    assert op_events == [("before_op", "neg"), ("after_op", "neg")]


class MaxScaler(TrainableOp):
    """A user op: learns the maximum of its input and divides by it."""

    def __init__(self, *, mode="predict", name=None):
        super().__init__(mode=mode, name=name)

    def fit(self, X, y=None):
        self.maximum = max(max(row) for row in X)

    def predict(self, X):
        return [[v / self.maximum for v in row] for row in X]

    def get_state(self):
        return {"maximum": self.maximum}

    def set_state(self, state, version):
        self.maximum = state["maximum"]
        super().set_state(state, version)


def test_own_op_class_trains_saves_and_loads(tmp_path):
    config = _config(
        tmp_path,
        {
            "ops": {"scaler": {"__factory__": "tests.test_pipelines_ops.MaxScaler"}},
            "pipelines": {
                "fit": {
                    "nodes": [
                        {
                            "op": "scaler",
                            "mode": "fit_predict",
                            "inputs": "__pipeline_input__",
                            "outputs": "__pipeline_output__",
                        }
                    ]
                },
                "scale": {
                    "nodes": [
                        {
                            "op": "scaler",
                            "inputs": "__pipeline_input__",
                            "outputs": "__pipeline_output__",
                        }
                    ]
                },
                "split": {
                    "nodes": [
                        {
                            "op": _fn("builtins.list"),
                            "inputs": "__pipeline_input__",
                            "outputs": ["x", "y"],
                        },
                        {
                            "op": _fn("builtins.max"),
                            "inputs": ["x", "y"],
                            "outputs": "__pipeline_output__",
                        },
                    ]
                },
            },
        },
    )
    pipelines, store = build_pipelines(config), build_op_store(config)
    try:
        assert pipelines["fit"].run([[1, 2], [4, 8]]) == [[0.125, 0.25], [0.5, 1.0]]
        pipelines["fit"].save(store)
        fresh = build_pipelines(config)["scale"]
        fresh.load(store)
        assert fresh.run([[2, 4]]) == [[0.25, 0.5]]
        assert fresh.versions()["scaler"] == pipelines["fit"].versions()["scaler"]
        assert pipelines["split"].run([1, 7]) == 7
        with pytest.raises(
            NodeError, match="pipeline 'split', node 'list' failed: .*need a tuple of 2 values"
        ):
            pipelines["split"].run([1, 2, 3])
    finally:
        store.dispose()


def test_op_store_defaults_to_the_model_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'models.db'}"
    config = _config(
        tmp_path,
        {
            "model_persister": {"__factory__": "pipeforge.persistence.Database", "url": url},
            "pipelines": {},
        },
    )
    del config["op_store"]
    assert build_op_store(config).url == url
    del config["model_persister"]
    with pytest.raises(ConfigError, match="no 'op_store' entry"):
        build_op_store(config)


def test_public_names():
    import pipeforge.pipelines as pipelines
    from pipeforge.pipelines import http

    assert sorted(pipelines.__all__) == sorted(
        [
            "PIPELINE_INPUT",
            "PIPELINE_OUTPUT",
            "BaseRunner",
            "DataOp",
            "EstimatorOp",
            "FunctionOp",
            "Node",
            "NodeError",
            "Op",
            "OpCallback",
            "OpError",
            "OpStore",
            "Pipeline",
            "PipelineCallback",
            "SequentialRunner",
            "ThreadRunner",
            "TimingCallback",
            "TrainableOp",
            "Version",
            "VersionType",
            "build_op_store",
            "build_pipelines",
        ]
    )
    for name in pipelines.__all__:
        assert getattr(pipelines, name) is not None
    assert callable(http.register_routes)
