"""Online learning without HTTP: metrics against River's, flavor checks, the partial_fit
adapter, config errors, and the service against each store."""

from __future__ import annotations

import pickle
import random

import pytest
from river import linear_model, metrics, naive_bayes, preprocessing, tree
from sklearn.linear_model import Perceptron, SGDClassifier, SGDRegressor

from pipeforge.config import load_config
from pipeforge.errors import ConfigError, RequestError
from pipeforge.online import PartialFitModel, as_online_model, pipeline
from pipeforge.online import metrics as mt
from pipeforge.online.config import read_settings
from pipeforge.online.flavors import ground_truth, model_problem
from pipeforge.online.service import OnlineService, humanize_ns
from tests.fixtures.online import online_config

# -- metrics -------------------------------------------------------------------------------


def _stream(n, seed=0):
    rng = random.Random(seed)
    return [({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}, rng.gauss(0, 1)) for _ in range(n)]


def test_regression_metrics_match_river():
    state = mt.new_state("regression")
    ours_vs_river = {"MAE": metrics.MAE(), "RMSE": metrics.RMSE(), "R2": metrics.R2()}
    rng = random.Random(1)
    for _ in range(200):
        y, p = rng.gauss(3, 2), rng.gauss(3, 2)
        state = mt.update(state, "regression", y, p)
        for metric in ours_vs_river.values():
            metric.update(y, p)
    values = mt.values(state, "regression")
    for name, metric in ours_vs_river.items():
        assert values[name] == pytest.approx(metric.get(), rel=1e-9)
    assert mt.count(state) == 200


def test_binary_metrics_match_river():
    state = mt.new_state("binary")
    river = {
        "Accuracy": metrics.Accuracy(),
        "LogLoss": metrics.LogLoss(),
        "Precision": metrics.Precision(),
        "Recall": metrics.Recall(),
        "F1": metrics.F1(),
    }
    rng = random.Random(2)
    for _ in range(300):
        y = rng.random() < 0.4
        p_true = rng.random()
        proba = {True: p_true, False: 1 - p_true}
        state = mt.update(state, "binary", y, proba)
        for name, metric in river.items():
            metric.update(y, proba if name == "LogLoss" else p_true > 0.5)
    values = mt.values(state, "binary")
    for name, metric in river.items():
        assert values[name] == pytest.approx(metric.get(), rel=1e-9), name


def test_multiclass_metrics_match_river():
    state = mt.new_state("multiclass")
    river = {
        "Accuracy": metrics.Accuracy(),
        "CrossEntropy": metrics.CrossEntropy(),
        "MacroPrecision": metrics.MacroPrecision(),
        "MacroRecall": metrics.MacroRecall(),
        "MacroF1": metrics.MacroF1(),
        "MicroF1": metrics.MicroF1(),
    }
    rng = random.Random(3)
    labels = ["a", "b", "c"]
    for _ in range(300):
        y = rng.choice(labels)
        weights = [rng.random() for _ in labels]
        proba = {label: w / sum(weights) for label, w in zip(labels, weights, strict=True)}
        guess = max(proba, key=proba.get)
        state = mt.update(state, "multiclass", y, proba)
        for name, metric in river.items():
            metric.update(y, proba if name == "CrossEntropy" else guess)
    values = mt.values(state, "multiclass")
    for name, metric in river.items():
        assert values[name] == pytest.approx(metric.get(), rel=1e-9), name


def test_deltas_add_up_to_the_same_state_in_any_grouping():
    rows = [(y, p) for (_, y), (_, p) in zip(_stream(50), _stream(50, seed=9), strict=True)]
    one_by_one = mt.new_state("regression")
    for y, p in rows:
        one_by_one = mt.update(one_by_one, "regression", y, p)
    halves = [mt.new_state("regression"), mt.new_state("regression")]
    for i, (y, p) in enumerate(rows):
        halves[i % 2] = mt.merge(halves[i % 2], mt.delta("regression", y, p))
    merged = mt.merge(halves[0], halves[1])
    assert mt.values(merged, "regression") == pytest.approx(mt.values(one_by_one, "regression"))


def test_no_prediction_is_not_scored():
    state = mt.update(mt.new_state("binary"), "binary", True, {})
    state = mt.update(state, "binary", True, None)
    assert mt.count(state) == 0
    assert mt.values(state, "binary")["Accuracy"] == 0.0


def test_humanize_ns_like_chantilly():
    assert humanize_ns(3408682) == "3ms408μs682ns"
    assert humanize_ns(0) == "0ns"
    assert humanize_ns(61_000_000_005) == "1m1s5ns"


# -- flavors and models ------------------------------------------------------------------------


def test_flavor_checks_models_methods_and_kinds():
    regression = pipeline([preprocessing.StandardScaler(), linear_model.LinearRegression()])
    assert model_problem(regression, "regression") is None
    assert "classifier" in model_problem(regression, "binary")
    assert "regressor" in model_problem(linear_model.LogisticRegression(), "regression")
    assert model_problem(linear_model.LogisticRegression(), "binary") is None
    assert "binary classifier" in model_problem(linear_model.LogisticRegression(), "multiclass")
    assert model_problem(tree.HoeffdingTreeClassifier(), "multiclass") is None
    assert model_problem(naive_bayes.GaussianNB(), "multiclass") is None
    assert "learn_one" in model_problem(object(), "regression")


def test_partial_fit_model_learns_and_predicts():
    model = as_online_model(SGDRegressor(random_state=0, learning_rate="constant", eta0=0.05))
    assert model.predict_one({"a": 1.0}) is None  # nothing learnt yet
    for x, y in _stream(200):
        model.learn_one(x, 2 * x["a"] - x["b"] + y * 0.01)
    assert model.predict_one({"a": 1.0, "b": 0.0}) == pytest.approx(2.0, abs=0.3)
    assert model.feature_names_ == ["a", "b"]
    with pytest.raises(ValueError, match="feature 'b' is missing"):
        model.predict_one({"a": 1.0})
    with pytest.raises(ValueError, match="finite number"):
        model.predict_one({"a": "x", "b": 1.0})
    copy = pickle.loads(pickle.dumps(model))
    assert copy.predict_one({"a": 1.0, "b": 0.0}) == model.predict_one({"a": 1.0, "b": 0.0})


def test_partial_fit_classifier_needs_classes_and_has_probabilities_only_where_sklearn_does():
    with pytest.raises(ValueError, match="classes"):
        as_online_model(SGDClassifier(loss="log_loss"))
    logistic = as_online_model(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1])
    assert callable(logistic.predict_proba_one)
    hinge = as_online_model(Perceptron(), classes=["no", "yes"])
    assert not hasattr(hinge, "predict_proba_one")
    assert model_problem(hinge, "binary") is None
    assert "classifier" in model_problem(hinge, "regression")
    logistic.learn_one({"a": 1.0}, 1)
    proba = logistic.predict_proba_one({"a": 1.0})
    assert set(proba) == {0, 1} and sum(proba.values()) == pytest.approx(1.0)
    assert logistic.positive_label == 1
    assert pickle.loads(pickle.dumps(logistic)).predict_proba_one({"a": 1.0}) == proba


def test_ground_truth_types_by_flavor():
    river_binary = linear_model.LogisticRegression()
    assert ground_truth(river_binary, "binary", True) is True
    assert ground_truth(river_binary, "binary", 0) is False
    sk = PartialFitModel(SGDClassifier(), classes=[0, 1])
    assert ground_truth(sk, "binary", 1) == 1
    for model, flavor, value in [
        (None, "regression", "3.5"),
        (None, "regression", True),
        (None, "regression", None),
        (river_binary, "binary", "yes"),
        (river_binary, "binary", 2),
        (sk, "binary", 2),
        (sk, "binary", True),
        (None, "multiclass", {"a": 1}),
        (None, "multiclass", 1.5),
    ]:
        with pytest.raises(RequestError):
            ground_truth(model, flavor, value)


# -- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "key", "words"),
    [
        ({"online_models": {"m": {"model": {"__factory__": "river.linear_model.LinearRegression"}}}}, "online_models.m.flavor", "must be one of"),
        ({"online_models": {"m": {"model": {"__factory__": "river.linear_model.LinearRegression"}, "flavor": "binary"}}}, "online_models.m.model", "regressor"),
        ({"online_models": {"m": {"model": {"__factory__": "sklearn.linear_model.SGDClassifier"}, "flavor": "binary"}}}, "online_models.m.model", "classes"),
        ({"online_models": {"m": {"model": {"__factory__": "sklearn.linear_model.LinearRegression"}, "flavor": "regression"}}}, "online_models.m.model", "not an online model"),
        ({"online_models": {"bad name": {"model": {"__factory__": "river.linear_model.LinearRegression"}, "flavor": "regression"}}}, "online_models.bad name", "model name"),
        ({"online_models": {"m": {"model": {"__factory__": "river.linear_model.LinearRegression"}, "flavor": "regression", "colour": 1}}}, "online_models.m.colour", "unknown key"),
        ({"online": {"allow_upload": "yes"}}, "online.allow_upload", "true or false"),
        ({"online": {"snapshot_every": 0}}, "online.snapshot_every", "positive integer"),
        ({"online": {"pending_ttl": "1 day"}}, "online.pending_ttl", "number of seconds"),
        ({"online": {"pending_ttl": -1}}, "online.pending_ttl", "null or 0: keep ids"),
        ({"online": {"store": "redis"}}, "online.store", "pipeforge.online.SQLStore"),
    ],
)  # fmt: skip
def test_config_errors_name_file_and_key(tmp_path, entries, key, words):
    path = tmp_path / "bad.py"
    path.write_text(repr(entries))
    with pytest.raises(ConfigError) as info:
        read_settings(load_config([str(path)]))
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ")
    assert words in message
    assert "\n" not in message


def test_two_defaults_are_a_config_error(tmp_path):
    model = {"__factory__": "river.linear_model.LinearRegression"}
    entry = {"model": model, "flavor": "regression", "default": True}
    path = tmp_path / "two.py"
    path.write_text(repr({"online_models": {"a": entry, "b": entry}}))
    with pytest.raises(ConfigError, match="only one model can be the default"):
        read_settings(load_config([str(path)]))


# -- the service on every store ------------------------------------------------------------------


def _service(folder, store, **entries):
    return OnlineService(read_settings(load_config([str(online_config(folder, store, **entries))])))


def test_processes_see_each_others_learning(tmp_path, online_store):
    first, second = _service(tmp_path, online_store), _service(tmp_path, online_store)
    rows = _stream(150)
    for i, (x, _y) in enumerate(rows):
        (first if i % 2 else second).predict({"features": x, "id": i})
    for i, (_, y) in enumerate(rows):  # learnt by the other one, crossing snapshots (every 100)
        (second if i % 2 else first).learn({"id": i, "ground_truth": y})
    x = {"a": 0.3, "b": -1.0}
    assert first.predict({"features": x})[0] == second.predict({"features": x})[0]
    reference = pipeline([preprocessing.StandardScaler(), linear_model.LinearRegression()])
    for x_i, y_i in rows:
        reference.learn_one(x_i, y_i)
    assert first.predict({"features": x})[0]["prediction"] == pytest.approx(
        reference.predict_one(x)
    )
    info = first.models()["info"]["reg"]
    assert info["n_learnt"] == 150 and info["n_scored"] == 150
    assert first.metrics() == second.metrics()
    first.store.close()
    second.store.close()


def test_replay_matches_learning_one_by_one(tmp_path, online_store):
    service = _service(tmp_path, online_store)
    rows = _stream(260)
    answer = service.replay("reg", rows, chunk=100)
    assert answer.pop("n") == 260
    one_by_one = mt.new_state("regression")
    reference = pipeline([preprocessing.StandardScaler(), linear_model.LinearRegression()])
    for x, y in rows:
        one_by_one = mt.update(one_by_one, "regression", y, reference.predict_one(x))
        reference.learn_one(x, y)
    assert answer == pytest.approx(mt.values(one_by_one, "regression"))
    assert service.metrics("reg") == pytest.approx(answer)
    x = {"a": 1.0, "b": 2.0}
    fresh = _service(tmp_path, online_store)
    assert fresh.predict({"features": x})[0]["prediction"] == pytest.approx(
        reference.predict_one(x)
    )
    service.store.close()
    fresh.store.close()


def test_the_app_does_not_start_with_a_model_of_the_wrong_flavor(tmp_path):
    from pipeforge.server import create_app

    path = tmp_path / "config.py"
    model = {"__factory__": "river.linear_model.LogisticRegression"}
    path.write_text(repr({"online_models": {"m": {"model": model, "flavor": "regression"}}}))
    with pytest.raises(
        ConfigError, match=r"online_models\.m\.model: LogisticRegression is a classifier"
    ):
        create_app(load_config([str(path)], __mode__="predict"))
