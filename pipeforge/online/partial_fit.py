"""scikit-learn estimators with ``partial_fit`` as online models (one dict of features at a time).

:class:`PartialFitModel` gives an estimator River's three methods. Features
arrive as a JSON object; the estimator needs a row of numbers in a fixed
order, taken from ``features`` when given, else from the sorted keys of the
first sample learnt (and kept with the model from then on). Classifiers
need all their ``classes`` up front, as ``partial_fit`` does. Before the
first ``learn_one`` there is nothing to predict with, and the predictions
are ``None`` (not counted by the metrics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PartialFitModel", "as_online_model"]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class PartialFitModel:
    """``learn_one``/``predict_one``/``predict_proba_one`` on top of ``estimator.partial_fit``."""

    def __init__(
        self,
        estimator: Any,
        classes: Sequence[Any] | None = None,
        features: Sequence[str] | None = None,
    ):
        self.estimator = estimator
        self.classes = None if classes is None else list(classes)
        self.features = None if features is None else list(features)

    # -- what the flavor checks read ----------------------------------------------------
    @property
    def online_kind(self) -> str:
        from sklearn.base import is_classifier

        return "classifier" if is_classifier(self.estimator) else "regressor"

    @property
    def positive_label(self) -> Any:
        """sklearn's convention: the greater of the two classes is the positive one."""
        return sorted(self.classes)[-1] if self.classes else True

    @property
    def _multiclass(self) -> bool:
        return True

    def problem(self) -> str | None:
        """What is wrong with the parameters, or ``None``."""
        name = type(self.estimator).__name__
        if not callable(getattr(self.estimator, "partial_fit", None)):
            return f"{name} has no partial_fit method"
        if self.online_kind == "classifier":
            if not self.classes or len(self.classes) < 2:
                return f"{name} is a classifier: give its 'classes' (two or more labels)"
            if any(not isinstance(c, str | int | bool) for c in self.classes):
                return f"the 'classes' of {name} must be strings, integers or booleans"
        if self.features is not None and not all(isinstance(f, str) for f in self.features):
            return "'features' must be a list of feature names (strings)"
        return None

    def known_feature_names(self) -> list[str]:
        """The features the estimator reads (others are ignored: learning never adds names)."""
        return list(self.__dict__.get("feature_names_") or self.features or ())

    def __repr__(self) -> str:
        return f"PartialFitModel({self.estimator!r}, classes={self.classes!r})"

    # -- the online interface -----------------------------------------------------------
    def _row(self, x: dict[str, Any], names: Sequence[str]) -> np.ndarray:
        import numpy as np

        row = []
        for name in names:
            if name not in x:
                raise ValueError(f"feature {name!r} is missing")
            value = x[name]
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"feature {name!r} must be a finite number; got {value!r}")
            row.append(float(value))
        return np.asarray([row], dtype=float)

    def _names(self) -> list[str] | None:
        """The feature order once the estimator can predict, else ``None``."""
        names = self.__dict__.get("feature_names_")
        if (
            names is None
            and self.features is not None
            and hasattr(self.estimator, "n_features_in_")
        ):
            names = self.features
        return names

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        names = self.features or self.__dict__.get("feature_names_") or sorted(x)
        row = self._row(x, names)
        if self.online_kind == "classifier":
            self.estimator.partial_fit(row, [y], classes=self.classes)
        else:
            self.estimator.partial_fit(row, [float(y)])
        self.feature_names_ = list(names)

    def predict_one(self, x: dict[str, Any]) -> Any:
        names = self._names()
        if names is None:
            return None
        return _plain(self.estimator.predict(self._row(x, names))[0])

    def __getattr__(self, name: str) -> Callable[[dict[str, Any]], dict[Any, float] | None]:
        # predict_proba_one exists only where the estimator can give probabilities,
        # so flavors pick predict_one for e.g. a hinge-loss SGDClassifier.
        if name == "predict_proba_one" and self.online_kind == "classifier":
            estimator = self.__dict__.get("estimator")
            if hasattr(estimator, "predict_proba"):
                return self._predict_proba_one
        raise AttributeError(name)

    def _predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float] | None:
        names = self._names()
        if names is None:
            return None
        proba = self.estimator.predict_proba(self._row(x, names))[0]
        return {_plain(c): float(p) for c, p in zip(self.estimator.classes_, proba, strict=True)}


def as_online_model(
    model: Any, classes: Sequence[Any] | None = None, features: Sequence[str] | None = None
) -> Any:
    """``model`` itself when it has ``learn_one``; a scikit-learn ``partial_fit`` estimator wrapped.

    Raises ``ValueError`` saying what is missing otherwise.
    """
    if callable(getattr(model, "learn_one", None)):
        if classes is not None and isinstance(model, PartialFitModel) and model.classes is None:
            model.classes = list(classes)
        return model
    if callable(getattr(model, "partial_fit", None)):
        if classes is None and hasattr(model, "classes_"):
            classes = [_plain(c) for c in model.classes_]
        wrapped = PartialFitModel(model, classes=classes, features=features)
        problem = wrapped.problem()
        if problem:
            raise ValueError(problem)
        if hasattr(model, "n_features_in_") and features is None:
            raise ValueError(
                f"{type(model).__name__} was fitted already; wrap it as "
                f"PartialFitModel(estimator, classes=..., features=[...]) to name its features"
            )
        return wrapped
    raise ValueError(
        f"{type(model).__name__} is not an online model: it needs learn_one (River) "
        f"or partial_fit (scikit-learn)"
    )
