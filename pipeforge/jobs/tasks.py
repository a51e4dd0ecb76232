"""The jobs the web service and the scripts queue, and the config entries they read.

:func:`fit_job` and :func:`grid_search_job` do what ``pf-fit`` and
``pf-grid-search`` do, in a thread of the server or in a ``pf-worker``
(:mod:`pipeforge.jobs.interface`), and answer plain JSON-able data for the
job record. After a fit is activated, every model cache of the config is
refreshed (:func:`refresh_model_caches`), so the process that ran it serves
the new model at once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "fit_job",
    "grid_search_job",
    "model_caches",
    "refresh_model_caches",
    "require",
    "unique",
]


def _fresh_model(model):
    """An unfitted copy of the config's model, so jobs never share estimator state."""
    try:
        from sklearn.base import clone

        return clone(model)
    except Exception:  # not a scikit-learn estimator
        return copy.deepcopy(model)


def unique(values: Iterable[Any]) -> Iterator[Any]:
    """The distinct objects of ``values`` (by identity), in order; components may repeat."""
    seen = set()
    for value in values:
        if id(value) not in seen:
            seen.add(id(value))
            yield value


def require(config: Mapping[str, Any], key: str) -> Any:
    """``config[key]``, or a ConfigError naming the missing entry (also for plain dicts)."""
    if hasattr(config, "require"):
        return config.require(key)
    if key not in config:
        raise ConfigError(f"missing required entry {key!r}; add it to the configuration")
    return config[key]


def model_caches(config: Mapping[str, Any]) -> list[Any]:
    """The config's components that keep a refreshable model cache (``refresh()`` + ``read()``)."""
    found = []
    for component in unique([config.get("model_persister"), *config.values()]):
        if component is None or isinstance(component, type):
            continue
        if callable(getattr(component, "refresh", None)) and callable(
            getattr(component, "read", None)
        ):
            found.append(component)
    return found


def refresh_model_caches(config: Mapping[str, Any]) -> list[str]:
    """Refresh every model cache of ``config``; return their class names."""
    from ..factory import decorate

    refreshed = []
    for cache in model_caches(config):
        decorate(cache.refresh, config, "update_model_decorators")()
        refreshed.append(type(cache).__name__)
    return refreshed


def fit_job(
    config: Mapping[str, Any],
    *,
    persist: bool = True,
    activate: bool = True,
    evaluate: bool = False,
    persist_if_better_than: float | None = None,
) -> dict[str, Any]:
    """Fit a fresh copy of the config's model like ``pf-fit``; refresh the caches after."""
    from .. import training
    from ..factory import decorate

    result = training.fit(
        decorate(require(config, "dataset_loader_train"), config, "load_data_decorators"),
        _fresh_model(require(config, "model")),
        require(config, "model_persister") if persist else config.get("model_persister"),
        persist=persist,
        activate=activate,
        dataset_loader_test=config.get("dataset_loader_test"),
        evaluate=evaluate,
        persist_if_better_than=persist_if_better_than,
        scoring=config.get("scoring"),
    )
    if result.version is not None and activate:
        refresh_model_caches(config)
    return {"model_version": result.version, "scores": dict(result.scores or {})}


def grid_search_job(config: Mapping[str, Any], *, persist_best: bool = False) -> dict[str, Any]:
    """Run the config's grid search like ``pf-grid-search``; return its results as plain data."""
    from .. import training
    from ..factory import decorate

    search = training.grid_search(
        decorate(require(config, "dataset_loader_train"), config, "load_data_decorators"),
        require(config, "model"),
        require(config, "grid_search"),
        scoring=config.get("scoring"),
        persist_best=persist_best,
        model_persister=require(config, "model_persister") if persist_best else None,
    )
    result = {"cv_results": _plain(dict(search.cv_results_)), "model_version": None}
    if hasattr(search, "best_params_"):
        result["best_params"] = _plain(search.best_params_)
        result["best_score"] = float(search.best_score_)
    if persist_best:
        metadata = getattr(search.best_estimator_, "__metadata__", None) or {}
        result["model_version"] = metadata.get("version")
    return result


def _plain(value):
    """numpy arrays/scalars and masked arrays as lists and Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "mask") and hasattr(value, "tolist"):  # masked array: keep the values
        return [_plain(v) for v in value.data.tolist()]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return repr(value)
