"""Grid searches on a Dask cluster through a joblib backend (``pipeforge.fit.with_parallel_backend``)."""

from __future__ import annotations

import pickle
import pprint

import pandas as pd
import pytest

from pipeforge.cli.scripts import grid_search_main
from pipeforge.errors import ConfigError
from pipeforge.factory import resolve_dotted_name
from pipeforge.fit import with_parallel_backend
from tests.fixtures.gunicorn import iris_config_dict

MODEL = {"__factory__": "sklearn.linear_model.SGDClassifier", "random_state": 0, "tol": None}
GRID = {"alpha": [1e-4, 1e-2], "penalty": ["l2", "l1"]}
CV = {"__factory__": "sklearn.model_selection.KFold", "n_splits": 3, "shuffle": True}
CV["random_state"] = 1


def search(tmp_path, monkeypatch, name, grid_search) -> pd.DataFrame:
    """Run ``pf-grid-search --save-results`` (in this process) and read the results back."""
    config = tmp_path / f"{name}.py"
    entries = iris_config_dict(tmp_path, model=MODEL, grid_search=grid_search)
    config.write_text(pprint.pformat(entries, sort_dicts=False))
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    assert grid_search_main([f"--save-results={name}.csv"]) == 0
    results = pd.read_csv(tmp_path / f"{name}.csv")
    return results.drop(columns=[c for c in results if c.endswith("_time")])


@pytest.mark.slow
def test_the_search_runs_on_the_cluster_with_the_local_results(tmp_path, monkeypatch, dask_cluster):
    local = search(tmp_path, monkeypatch, "on_this_host", {"param_grid": GRID, "cv": CV})
    on_dask = {
        "__factory__": "palladium.fit.with_parallel_backend",  # Palladium's name works
        "estimator": {
            "__factory__": "sklearn.model_selection.GridSearchCV",
            "estimator": {"__copy__": "model"},
            "param_grid": GRID,
            "cv": CV,
            "n_jobs": -1,
        },
        "backend": "dask",
    }
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_cluster)
    remote = search(tmp_path, monkeypatch, "on_dask", on_dask)
    assert len(local) == 4
    pd.testing.assert_frame_equal(local, remote)

    from distributed import Client

    with Client(dask_cluster) as client:
        ran = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert any("fit_and_score" in prefix for prefix in ran), ran


def test_without_a_scheduler_address_it_says_what_to_set(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    estimator = with_parallel_backend(LogisticRegression(), "dask")
    with pytest.raises(ConfigError, match="DASK_SCHEDULER_ADDRESS"):
        estimator.fit([[0.0], [1.0]], [0, 1])


def test_any_joblib_backend_wraps_the_same_estimator_and_it_still_pickles():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV

    assert resolve_dotted_name("palladium.fit.with_parallel_backend") is with_parallel_backend
    from sklearn.linear_model import LogisticRegression

    grid = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=3, n_jobs=2)
    wrapped = with_parallel_backend(grid, "threading")
    assert wrapped is grid
    X, y = load_iris(return_X_y=True)
    wrapped.fit(X, y)
    copy = pickle.loads(pickle.dumps(wrapped))
    assert copy.best_params_ == wrapped.best_params_
    assert (copy.predict(X) == wrapped.predict(X)).all()
