"""Palladium's model functions that take their arguments from the config.

``palladium.fit.fit``, ``palladium.eval.test``, ``palladium.eval.list``,
``palladium.fit.grid_search``, ``activate``, ``delete``,
``palladium.util.upgrade`` and ``export``: users' scripts call them with no
arguments, and :func:`~.legacy.args_from_config` fills them in from the
process's config, as Palladium did. Each runs pipeforge's own function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from ..config import get_config
from .legacy import args_from_config

__all__ = [
    "fit",
    "test",
    "print_listing",
    "list_models",
    "grid_search",
    "activate",
    "delete",
    "upgrade",
    "export",
]

logger = logging.getLogger("palladium")  # Palladium's logger name: users' logging configs use it


@args_from_config
def fit(
    dataset_loader_train: Callable[[], Any],
    model: Any,
    model_persister: Any = None,
    persist: bool = True,
    activate: bool = True,
    dataset_loader_test: Callable[[], Any] | None = None,
    evaluate: bool = False,
    persist_if_better_than: float | None = None,
    scoring: Any = None,
) -> Any:
    """Fit, evaluate and store the config's model; returns the model (as Palladium's ``fit``)."""
    from .. import training
    from ..factory import decorate

    run = decorate(training.fit, get_config(), "fit_decorators")
    return run(
        dataset_loader_train,
        model,
        model_persister,
        persist=persist,
        activate=activate,
        dataset_loader_test=dataset_loader_test,
        evaluate=evaluate or persist_if_better_than is not None,
        # Palladium stored a model whose score equals the threshold; pipeforge wants "better".
        persist_if_better_than=None
        if persist_if_better_than is None
        else math.nextafter(persist_if_better_than, -math.inf),
        scoring=scoring,
    ).model


@args_from_config
def test(
    dataset_loader_test: Callable[[], Any],
    model_persister: Any,
    scoring: Any = None,
    model_version: int | None = None,
) -> list[str]:
    """Score a stored model on the test data; returns Palladium's ``["name: score", ...]`` lines."""
    from .. import training

    if scoring is not None and not isinstance(scoring, dict):
        scoring = {"score": scoring}
    scores = training.test(
        dataset_loader_test, model_persister, scoring=scoring, model_version=model_version
    )
    return [f"{name}: {value}" for name, value in scores.items()]


# a library function, not a test for pytest to collect
test.__test__ = False  # type: ignore[attr-defined]


def print_listing(persister: Any) -> None:
    """Print ``Models:`` and ``Properties:`` each followed by its pretty-printed value, as Palladium."""
    from pprint import pprint

    print("Models:")
    pprint(persister.list_models())
    print("Properties:")
    pprint(persister.list_properties())


@args_from_config
def list_models(model_persister: Any) -> None:
    """Print the stored models and the store's properties as ``pld-list`` does."""
    print_listing(model_persister)


@args_from_config
def grid_search(
    dataset_loader_train: Callable[[], Any],
    model: Any,
    grid_search: Any,
    scoring: Any = None,
    save_results: str | None = None,
    persist_best: bool = False,
    model_persister: Any = None,
) -> Any:
    """Run the config's grid search; returns the fitted search object."""
    from .. import training

    return training.grid_search(
        dataset_loader_train,
        model,
        grid_search,
        scoring=scoring,
        save_results=save_results,
        persist_best=persist_best,
        model_persister=model_persister,
    )


@args_from_config
def activate(model_persister: Any, model_version: int) -> None:
    model_persister.activate(model_version)
    logger.info("Activated model with version %s.", model_version)


@args_from_config
def delete(model_persister: Any, model_version: int) -> None:
    model_persister.delete(model_version)
    logger.info("Deleted model with version %s.", model_version)


@args_from_config
def upgrade(
    model_persister: Any, from_version: str | None = None, to_version: str | None = None
) -> list[str] | None:
    """Run the model store's upgrade steps; returns the steps that ran."""
    return model_persister.upgrade(from_version=from_version, to_version=to_version)


@args_from_config
def export(
    model_persister: Any,
    model_persister_export: Any,
    model_version: int | None = None,
    activate: bool = True,
) -> int:
    """Copy a model to ``model_persister_export``; returns its version there."""
    model = model_persister.read(version=model_version)
    version = model_persister_export.write(model)
    if activate:
        model_persister_export.activate(version)
    return version
