"""Fitting, testing and grid-searching models: plain functions with explicit arguments.

The scripts look the collaborators up in the config and apply the
``fit_decorators`` / ``load_data_decorators`` lists; these functions know
nothing about configs. ``scoring`` is everywhere a scikit-learn scorer
name, a callable ``(estimator, X, y) -> float`` or a dict of those; ``None``
means the estimator's own ``score`` method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError, PipeforgeError, PredictError
from .interfaces import annotate
from .model_info import training_info
from .progress import Progress
from .release.summary import safe_summary

if TYPE_CHECKING:
    from .interfaces import ModelPersister

__all__ = ["FitResult", "fit", "test", "grid_search"]

logger = logging.getLogger(__name__)

#: What loads a dataset: a :class:`~pipeforge.interfaces.DatasetLoader` or any callable.
Loader = Callable[[], tuple[Any, Any]]
#: A scorer name, a callable ``(estimator, X, y) -> float``, a dict of those, or ``None``.
Scoring = str | Callable[..., float] | Mapping[str, Any] | None


class FitResult(NamedTuple):
    """What :func:`fit` produced: the fitted model, its version (or ``None``) and scores."""

    model: Any
    version: int | None
    scores: dict[str, float]


def _scorers(scoring, estimator) -> tuple[dict[str, Any], bool]:
    """Resolve ``scoring`` into ``{name: scorer}`` and whether it was a dict."""
    from sklearn.metrics import check_scoring, get_scorer

    def one(name, spec):
        if spec is None:
            if not hasattr(estimator, "score"):
                raise ConfigError(
                    f"the model {type(estimator).__name__} has no 'score' method; "
                    "set the 'scoring' entry to a scorer name such as 'accuracy'",
                    key="scoring",
                )
            return check_scoring(estimator)
        if isinstance(spec, str):
            try:
                return get_scorer(spec)
            except ValueError:
                if "." in spec or ":" in spec:  # a dotted name of a scorer function
                    from .factory import resolve_dotted_name

                    try:
                        scorer = resolve_dotted_name(spec)
                    except ConfigError as exc:
                        raise exc.located(key=name) from None
                    if callable(scorer):
                        return scorer
                raise ConfigError(
                    f"unknown scorer {spec!r}; expected a name from "
                    "sklearn.metrics.get_scorer_names(), a callable or a dict of those",
                    key=name,
                ) from None
        if callable(spec):
            return spec
        raise ConfigError(
            f"expected a scorer name, a callable or a dict of those; got {spec!r}", key=name
        )

    if isinstance(scoring, dict):
        if not scoring:
            raise ConfigError("expected at least one scorer; got an empty dict", key="scoring")
        return {str(k): one(f"scoring.{k}", v) for k, v in scoring.items()}, True
    if scoring is None:
        name = "score"
    elif isinstance(scoring, str):
        name = scoring.replace(":", ".").rsplit(".", 1)[-1]
    else:
        name = getattr(scoring, "__name__", "score")
    return {name: one("scoring", scoring)}, False


def _score(scorers: dict, model, X, y, what: str) -> dict[str, float]:
    """Apply every scorer; a model that fails to predict becomes a :class:`PredictError`."""
    scores = {}
    for name, scorer in scorers.items():
        try:
            scores[name] = float(scorer(model, X, y))
        except PipeforgeError:
            raise
        except Exception as exc:
            raise PredictError(
                f"scoring the model on the {what} data failed: {type(exc).__name__}: {exc}"
            ) from exc
    return scores


def _named(prefix: str, scores: dict[str, float], multi: bool) -> dict[str, float]:
    if not multi:
        return {prefix: next(iter(scores.values()))}
    return {f"{prefix}_{name}": value for name, value in scores.items()}


def fit(
    dataset_loader_train: Loader,
    model: Any,
    model_persister: ModelPersister | None = None,
    *,
    persist: bool = True,
    activate: bool = True,
    dataset_loader_test: Loader | None = None,
    evaluate: bool = False,
    persist_if_better_than: float | None = None,
    scoring: Scoring = None,
    progress: Progress | None = None,
) -> FitResult:
    """Load the training data, fit ``model`` and (optionally) evaluate and persist it.

    ``evaluate`` scores the model on the training data and, when a test
    loader is given, on the test data. ``persist_if_better_than`` needs
    the test loader and writes the model only if its test score is strictly
    better. Scores are annotated as ``score_train`` / ``score_test``
    (``score_test_<name>`` for dict scoring; the first entry decides
    ``persist_if_better_than``).
    """
    progress = progress or Progress(enabled=False)
    if persist and model_persister is None:
        raise ConfigError(
            "fitting with persist=True needs a model persister", key="model_persister"
        )
    if persist_if_better_than is not None and dataset_loader_test is None:
        raise ConfigError(
            "persist_if_better_than needs a test dataset loader", key="dataset_loader_test"
        )

    if persist and model_persister is not None:  # (not None when persisting: checked above)
        # A store that cannot take the model (unreachable, or holding Palladium's models not
        # yet imported by pf-upgrade) fails now rather than after a long training.
        model_persister.list_models()
    progress.stage("loading training data")
    X, y = dataset_loader_train()
    progress.stage("fitting")
    started = time.monotonic()
    model.fit(X, y)
    seconds = time.monotonic() - started
    logger.info("Fitted %s in %.2f s", type(model).__name__, seconds)
    annotate(model, {**training_info(model, X, seconds), **safe_summary(X)})

    scores: dict[str, float] = {}
    if evaluate or persist_if_better_than is not None:
        scorers, multi = _scorers(scoring, model)
        progress.stage("evaluating")
        if evaluate:
            scores.update(_named("score_train", _score(scorers, model, X, y, "training"), multi))
        if dataset_loader_test is not None:
            X_test, y_test = dataset_loader_test()
            test_scores = _score(scorers, model, X_test, y_test, "test")
            scores.update(_named("score_test", test_scores, multi))
            if persist_if_better_than is not None:
                first = next(iter(test_scores.values()))
                if not first > persist_if_better_than:
                    logger.info(
                        "Not persisting: test score %.4f is not better than %s",
                        first,
                        persist_if_better_than,
                    )
                    persist = False
        for name, value in scores.items():
            logger.info("%s: %.4f", name, value)
        annotate(model, scores)

    version = None
    if persist and model_persister is not None:
        progress.stage("saving")
        version = model_persister.write(model)
        if activate:
            model_persister.activate(version)
        logger.info("Wrote model with version %s%s", version, "" if activate else " (not active)")
    return FitResult(model, version, scores)


def test(
    dataset_loader_test: Loader,
    model_persister: ModelPersister,
    *,
    scoring: Scoring = None,
    model_version: int | None = None,
    progress: Progress | None = None,
    record: bool = True,
) -> dict[str, float]:
    """Score the stored model ``model_version`` (default: the active one) on the test data.

    Returns ``{scorer name: score}``; ``"score"`` names the model's own score method.
    With ``record`` the scores are also stored in the tested version's
    metadata (``score_test`` or ``score_test_<name>``, and ``test_timestamp``),
    where ``pf-list`` and the dashboard show them.
    """
    progress = progress or Progress(enabled=False)
    progress.stage("reading model")
    model = model_persister.read(version=model_version)
    progress.stage("loading test data")
    X, y = dataset_loader_test()
    progress.stage("scoring")
    scorers, multi = _scorers(scoring, model)
    scores = _score(scorers, model, X, y, "test")
    for name, value in scores.items():
        logger.info("Test %s: %.4f", name, value)
    if record:
        version = (getattr(model, "__metadata__", None) or {}).get("version")
        _record_test_scores(model_persister, version, _named("score_test", scores, multi))
    return scores


def _record_test_scores(model_persister, version, scores: dict[str, float]) -> None:
    """Store test scores on the tested version; a store that cannot is only logged."""
    from datetime import datetime, timezone

    from .errors import UnknownVersionError

    if version is None:
        logger.warning("the tested model has no version; its scores are not recorded")
        return
    now = datetime.now(timezone.utc)  # noqa: UP017  (datetime.UTC needs Python 3.11)
    changes = {**scores, "test_timestamp": now.isoformat(timespec="seconds")}
    try:
        model_persister.update_metadata(version, changes)
    except (NotImplementedError, AttributeError):
        logger.warning(
            "%s cannot update metadata; the test scores are not recorded",
            type(model_persister).__name__,
        )
    except UnknownVersionError:
        logger.warning("model version %s is no longer stored; scores not recorded", version)


test.__test__ = False  # type: ignore[attr-defined]  # a library function, not for pytest to collect


class _CountingScorer:
    """Wraps a scorer to advance a progress bar once per call (single process only)."""

    def __init__(self, scorer, progress: Progress):
        self.scorer = scorer
        self.progress = progress

    def __call__(self, estimator, X, y=None):
        try:
            return self.scorer(estimator, X, y)
        finally:
            self.progress.advance()


def _expected_scorer_calls(search, X, y) -> int:
    """How many times the search will call its scorer, or 0 if it cannot be known."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import ParameterGrid, check_cv

    if hasattr(search, "param_grid"):
        candidates = len(ParameterGrid(search.param_grid))
    elif hasattr(search, "n_iter"):
        candidates = int(search.n_iter)
    else:
        return 0
    try:
        splits = check_cv(search.cv, y, classifier=is_classifier(search.estimator)).get_n_splits(
            X, y
        )
    except Exception:  # an exotic cv object; show stages only
        return 0
    per_fit = 2 if getattr(search, "return_train_score", False) else 1
    return candidates * splits * per_fit


def grid_search(
    dataset_loader_train: Loader,
    model: Any,
    grid_search: dict[str, Any] | Any,
    *,
    scoring: Scoring = None,
    save_results: str | None = None,
    persist_best: bool = False,
    model_persister: ModelPersister | None = None,
    progress: Progress | None = None,
) -> Any:
    """Search hyperparameters of ``model`` by cross-validation; return the fitted search.

    ``grid_search`` is either a dict of ``GridSearchCV`` keyword arguments
    (``param_grid``, ``cv``, ``n_jobs``, ``scoring``, ``verbose``, ...) or a
    search object already built by the config (e.g. a ``RandomizedSearchCV``
    whose ``estimator`` is ``{'__copy__': 'model'}``). ``save_results`` writes
    ``cv_results_`` as CSV; ``persist_best`` refits the best candidate on all
    data and writes and activates it (its version is in its ``__metadata__``).
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    progress = progress or Progress(enabled=False)
    if persist_best and model_persister is None:
        raise ConfigError(
            "persisting the best model needs a model persister", key="model_persister"
        )

    search: Any
    if hasattr(grid_search, "fit") and hasattr(grid_search, "get_params"):
        search = grid_search
        if persist_best and search.refit is False:
            search.set_params(refit=True)
    elif isinstance(grid_search, dict):
        kwargs = dict(grid_search)
        factory = kwargs.pop("__factory__", None) or GridSearchCV
        if isinstance(factory, str):
            from .factory import resolve_dotted_name

            factory = resolve_dotted_name(factory)
        if scoring is not None:
            kwargs.setdefault("scoring", scoring)
        kwargs.setdefault("refit", persist_best)
        from .config.keys import check_keywords

        name = getattr(factory, "__name__", str(factory))
        check_keywords(factory, {"estimator": model, **kwargs}, name=name, key="grid_search")
        try:
            search = factory(clone(model), **kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"bad keyword argument for {getattr(factory, '__name__', factory)}: {exc}",
                key="grid_search",
            ) from exc
    else:
        raise ConfigError(
            f"expected a dict of GridSearchCV arguments or a search object; got {grid_search!r}",
            key="grid_search",
        )

    search_scoring = search.get_params().get("scoring")
    scorers, multi = _scorers(search_scoring, search.estimator)
    if multi and persist_best and search.refit is True:
        search.set_params(refit=next(iter(scorers)))

    progress.stage("loading training data")
    X, y = dataset_loader_train()

    total = 0
    wrapped = "fit" in vars(search)  # e.g. fit.with_parallel_backend: scorers run elsewhere
    if not multi and search.get_params().get("n_jobs") in (None, 1) and not wrapped:
        total = _expected_scorer_calls(search, X, y)
    if total:
        search.set_params(scoring=_CountingScorer(next(iter(scorers.values())), progress))
        progress.start(total, "grid search")
    else:
        progress.stage("grid search")
    started = time.monotonic()
    try:
        search.fit(X, y)
    finally:
        if total:
            search.set_params(scoring=search_scoring)
            progress.finish()
    logger.info("Grid search finished in %.2f s", time.monotonic() - started)

    if save_results:
        import pandas as pd

        pd.DataFrame(search.cv_results_).to_csv(save_results, index=False)
        logger.info("Saved grid search results to %s", save_results)
    if persist_best and model_persister is not None:
        progress.stage("saving")
        best = search.best_estimator_
        info = training_info(best, X, getattr(search, "refit_time_", None))
        annotate(best, {**info, **safe_summary(X), "score_grid_search": float(search.best_score_)})
        version = model_persister.write(best)
        model_persister.activate(version)
        logger.info("Wrote model with version %s", version)
    return search
