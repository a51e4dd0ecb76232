"""fit / test / grid_search with real loaders, models and persisters."""

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV
from sklearn.tree import DecisionTreeClassifier

from pipeforge.dataset import CSV
from pipeforge.errors import ConfigError, PredictError, UnknownVersionError
from pipeforge.persistence import Database, File
from pipeforge.progress import Progress
from pipeforge.training import FitResult, fit, grid_search, test

IRIS = "examples/iris/iris.data"
NAMES = ["sepal length", "sepal width", "petal length", "petal width", "species"]


@pytest.fixture
def train():
    return CSV(IRIS, names=NAMES, target_column="species", nrows=100)


@pytest.fixture
def test_loader():
    return CSV(IRIS, names=NAMES, target_column="species", skiprows=100)


@pytest.fixture(params=["file", "database"])
def persister(request, tmp_path):
    if request.param == "file":
        return File(str(tmp_path / "model-{version}.pickle"))
    return Database(f"sqlite:///{tmp_path / 'models.db'}")


def _model():
    return LogisticRegression(C=0.3, max_iter=1000)


def test_fit_persists_and_activates(train, persister):
    result = fit(train, _model(), persister)
    assert isinstance(result, FitResult)
    assert result.version == 1 and result.scores == {}
    assert persister.list_properties()["active-model"] == "1"
    metadata = persister.list_models()[0]
    assert metadata["version"] == 1 and "train_timestamp" in metadata
    assert fit(train, _model(), persister).version == 2


def test_fit_without_persisting_or_activating(train, persister):
    result = fit(train, _model(), persister, persist=False)
    assert result.version is None and persister.list_models() == []
    assert hasattr(result.model, "coef_")
    result = fit(train, _model(), persister, activate=False)
    assert result.version == 1
    assert "active-model" not in persister.list_properties()


def test_fit_needs_a_persister_to_persist(train):
    with pytest.raises(ConfigError, match="model_persister"):
        fit(train, _model())
    assert fit(train, _model(), persist=False).version is None


def test_fit_evaluate_annotates_scores(train, test_loader, persister):
    result = fit(
        train,
        _model(),
        persister,
        dataset_loader_test=test_loader,
        evaluate=True,
        scoring="accuracy",
    )
    assert set(result.scores) == {"score_train", "score_test"}
    assert result.scores["score_test"] == pytest.approx(0.96)
    stored = persister.list_models()[0]
    assert stored["score_test"] == pytest.approx(0.96)
    assert persister.read().__metadata__["score_train"] == result.scores["score_train"]


def test_fit_evaluate_without_test_loader_scores_training_data(train, persister):
    result = fit(train, _model(), persister, evaluate=True)  # default: the model's score
    assert list(result.scores) == ["score_train"]


def test_fit_with_dict_scoring_names_every_score(train, test_loader):
    result = fit(
        train,
        _model(),
        persist=False,
        dataset_loader_test=test_loader,
        evaluate=True,
        scoring={"acc": "accuracy", "f1": "f1_macro"},
    )
    assert set(result.scores) == {
        "score_train_acc",
        "score_train_f1",
        "score_test_acc",
        "score_test_f1",
    }


def test_persist_if_better_than(train, test_loader, persister):
    worse = fit(
        train, _model(), persister, dataset_loader_test=test_loader, persist_if_better_than=0.99
    )
    assert worse.version is None and persister.list_models() == []
    assert worse.scores["score_test"] == pytest.approx(0.96)
    equal = fit(
        train, _model(), persister, dataset_loader_test=test_loader, persist_if_better_than=0.96
    )
    assert equal.version is None  # strictly better only
    better = fit(
        train, _model(), persister, dataset_loader_test=test_loader, persist_if_better_than=0.9
    )
    assert better.version == 1
    with pytest.raises(ConfigError, match="dataset_loader_test"):
        fit(train, _model(), persister, persist_if_better_than=0.9)


def test_unknown_scorer_is_a_config_error(train, test_loader):
    with pytest.raises(ConfigError, match=r"scoring: unknown scorer 'acuracy'"):
        fit(train, _model(), persist=False, evaluate=True, scoring="acuracy")


def test_callable_scoring(train, test_loader, persister):
    def half(estimator, X, y):
        return 0.5

    fit(train, _model(), persister)
    assert test(test_loader, persister, scoring=half) == {"half": 0.5}


def test_test_scores_the_active_or_given_version(train, test_loader, persister):
    fit(train, _model(), persister)
    fit(train, DecisionTreeClassifier(max_depth=1, random_state=0), persister)
    assert test(test_loader, persister) == {
        "score": pytest.approx(test(test_loader, persister, model_version=2)["score"])
    }
    first = test(test_loader, persister, scoring="accuracy", model_version=1)
    assert first == {"accuracy": pytest.approx(0.96)}
    assert test(test_loader, persister, scoring="accuracy")["accuracy"] < 0.9
    with pytest.raises(UnknownVersionError, match="no model with version 7"):
        test(test_loader, persister, model_version=7)


def test_predict_failure_during_test_is_a_predict_error(train, persister, tmp_path):
    fit(train, _model(), persister)
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("1.0,2.0,Iris-setosa\n")
    loader = CSV(str(narrow), names=["a", "b", "species"], target_column="species")
    with pytest.raises(PredictError) as info:
        test(loader, persister, scoring="accuracy")
    assert "scoring the model on the test data failed: ValueError" in info.value.error_message
    assert "features" in info.value.error_message


def test_progress_reports_stages_on_a_terminal(train, test_loader):
    out = io.StringIO()
    fit(
        train,
        _model(),
        persist=False,
        evaluate=True,
        dataset_loader_test=test_loader,
        progress=Progress(stream=out, enabled=True),
    )
    assert out.getvalue().splitlines() == [
        "... loading training data",
        "... fitting",
        "... evaluating",
    ]
    quiet = io.StringIO()  # not a terminal: nothing
    fit(train, _model(), persist=False, progress=Progress(stream=quiet))
    assert quiet.getvalue() == ""


def test_grid_search_with_a_dict(train, tmp_path):
    out = io.StringIO()
    results = tmp_path / "results.csv"
    search = grid_search(
        train,
        _model(),
        {"param_grid": {"C": [0.1, 1.0]}, "cv": 3},
        scoring="accuracy",
        save_results=str(results),
        progress=Progress(stream=out, enabled=True),
    )
    assert search.best_params_ in ({"C": 0.1}, {"C": 1.0})
    assert not hasattr(search, "best_estimator_")  # refit only to persist
    table = pd.read_csv(results)
    assert len(table) == 2 and "mean_test_score" in table
    assert "grid search [" in out.getvalue() and "6/6" in out.getvalue()
    assert search.scoring == "accuracy"  # the counting wrapper is removed again


def test_grid_search_persist_best(train, persister):
    search = grid_search(
        train,
        _model(),
        {"param_grid": {"C": [0.1, 1.0]}, "cv": 3},
        persist_best=True,
        model_persister=persister,
    )
    assert persister.list_properties()["active-model"] == "1"
    assert search.best_estimator_.__metadata__["version"] == 1
    assert persister.read().C == search.best_params_["C"]


def test_grid_search_with_a_search_object(train):
    model = _model()
    search = RandomizedSearchCV(model, {"C": [0.1, 0.3, 1.0]}, n_iter=2, cv=2, random_state=0)
    assert grid_search(train, model, search) is search
    assert len(search.cv_results_["params"]) == 2


def test_grid_search_bad_keyword_is_a_config_error(train):
    with pytest.raises(
        ConfigError, match=r"grid_search.folds: unknown keyword 'folds' of GridSearchCV"
    ):
        grid_search(train, _model(), {"param_grid": {"C": [1.0]}, "folds": 3})
    with pytest.raises(ConfigError, match="model_persister"):
        grid_search(train, _model(), {"param_grid": {"C": [1.0]}}, persist_best=True)


def test_grid_search_dict_scoring(train):
    search = grid_search(
        train,
        _model(),
        {
            "param_grid": {"C": [0.3, 1.0]},
            "cv": 2,
            "scoring": {"acc": "accuracy", "f1": "f1_macro"},
            "refit": "acc",
        },
    )
    assert "mean_test_f1" in search.cv_results_
    assert np.isfinite(search.best_score_)


def constant_scorer(estimator, X, y):
    """A scorer named by its dotted name in a config."""
    return 0.25


def test_scoring_by_dotted_name(train, test_loader, persister):
    fit(train, _model(), persister)
    scores = test(test_loader, persister, scoring="tests.test_training.constant_scorer")
    assert scores == {"constant_scorer": 0.25}
    with pytest.raises(ConfigError, match=r"scoring: cannot import 'tests.nope.scorer'"):
        test(test_loader, persister, scoring="tests.nope.scorer")
