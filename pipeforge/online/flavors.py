"""Flavors: what kind of answer an online model gives, and what it accepts to learn.

A flavor (``regression``, ``binary``, ``multiclass``, as in chantilly) decides
which methods a model must have, which of them answers ``/api/predict``,
which ground truths ``/api/learn`` takes and which metrics are kept. The
checks here run when the app starts (config models: a one-line config
error) and when a model is uploaded (a 400), so a model that cannot serve
its flavor is never stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from .bodies import MAX_TEXT, InputLimits, check_number, check_text

__all__ = [
    "FLAVORS",
    "check_flavor",
    "model_problem",
    "predict",
    "finite_answer",
    "ground_truth",
    "positive_label",
    "model_kind",
]

_DEFAULT_LIMITS = InputLimits()

FLAVORS = ("regression", "binary", "multiclass")


class BadGroundTruth(RequestError):
    """A ground truth that the model's flavor cannot learn from (400)."""


def check_flavor(flavor: Any) -> str:
    """``flavor`` if it is one of :data:`FLAVORS`, else a ``ValueError`` saying which are."""
    if isinstance(flavor, str) and flavor in FLAVORS:
        return flavor
    allowed = ", ".join(repr(f) for f in FLAVORS)
    raise ValueError(f"flavor must be one of {allowed}; got {flavor!r}")


def _unwrap(model: Any, depth: int = 0) -> Any:
    """The estimator that answers for ``model``: the last step of pipelines, wrapped models."""
    if depth > 20:
        return model
    for attribute in ("_last_step", "_wrapped_model"):
        try:
            inner = getattr(model, attribute, None)
        except Exception:  # a property that fails on an unfitted model
            inner = None
        if inner is not None and inner is not model:
            return _unwrap(inner, depth + 1)
    return model


def model_kind(model: Any) -> str | None:
    """``"regressor"``, ``"classifier"`` or ``None`` (unknown) for River and wrapped scikit-learn models."""
    kind = getattr(model, "online_kind", None)  # PartialFitModel says so itself
    if kind in ("regressor", "classifier"):
        return kind
    try:
        from river import base
    except ImportError:
        return None
    inner = _unwrap(model)
    if isinstance(inner, base.Regressor):
        return "regressor"
    if isinstance(inner, base.Classifier):
        return "classifier"
    return None


def _multiclass(model: Any) -> bool:
    try:
        return bool(getattr(model, "_multiclass", True))
    except Exception:
        return True


def model_problem(model: Any, flavor: str) -> str | None:
    """Why ``model`` cannot serve ``flavor``, or ``None`` when it can."""
    name = type(model).__name__
    if not callable(getattr(model, "learn_one", None)):
        return f"{name} has no learn_one method (an online model needs learn_one)"
    kind = model_kind(model)
    if flavor == "regression":
        if not callable(getattr(model, "predict_one", None)):
            return f"{name} has no predict_one method, which flavor 'regression' needs"
        if kind == "classifier":
            return f"{name} is a classifier; flavor 'regression' needs a regressor"
        return None
    if not (
        callable(getattr(model, "predict_proba_one", None))
        or callable(getattr(model, "predict_one", None))
    ):
        return (
            f"{name} has neither predict_proba_one nor predict_one, which flavor {flavor!r} needs"
        )
    if kind == "regressor":
        return f"{name} is a regressor; flavor {flavor!r} needs a classifier"
    if flavor == "multiclass" and kind == "classifier" and not _multiclass(model):
        return f"{name} is a binary classifier; flavor 'multiclass' needs a multi-class one"
    return None


def predict(model: Any, flavor: str, features: dict[str, Any]) -> Any:
    """The model's answer: probabilities by class where it has them, else its prediction."""
    if flavor != "regression":
        proba = getattr(model, "predict_proba_one", None)
        if callable(proba):
            return proba(features)
    return model.predict_one(features)


def finite_answer(prediction: Any) -> bool:
    """Whether a model's answer holds only finite numbers (a label, or probabilities by class).

    ``None`` counts as finite: a model that has learnt nothing may answer it.
    """
    if isinstance(prediction, Mapping):
        return all(finite_answer(p) for p in prediction.values())
    if isinstance(prediction, bool | str) or prediction is None:
        return True
    try:
        return math.isfinite(prediction)
    except (TypeError, ValueError, OverflowError):  # a label of another type; an int > 1e308
        return isinstance(prediction, int)


def positive_label(model: Any) -> Any:
    """The label counted as positive by binary metrics (River: ``True``)."""
    return getattr(model, "positive_label", True)


def _plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ground_truth(model: Any, flavor: str, value: Any, limits: InputLimits | None = None) -> Any:
    """``value`` as the model learns it, or :class:`BadGroundTruth` when it does not fit the flavor.

    Numbers must be within ``limits.max_magnitude`` (the defaults when ``None``).
    """
    limits = limits or _DEFAULT_LIMITS
    if value is None:
        raise BadGroundTruth("'ground_truth' must not be null")
    if flavor == "regression":
        if not _plain_number(value):
            raise BadGroundTruth(
                f"'ground_truth' of a regression model must be a finite number; got {_short(value)}"
            )
        return _bounded(value, limits)
    if not isinstance(value, str | int | float) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise BadGroundTruth(
            f"'ground_truth' of a {flavor} model must be a class label (a string, an integer "
            f"or true/false); got {_short(value)}"
        )
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise BadGroundTruth(f"'ground_truth': a class label has at most {MAX_TEXT} characters")
        check_text(value, "'ground_truth'")
    elif not isinstance(value, bool):
        _bounded(value, limits)
    classes = getattr(model, "classes", None)
    if classes is not None:
        for label in classes:
            if label == value and isinstance(label, bool) == isinstance(value, bool):
                return label
        raise BadGroundTruth(
            f"'ground_truth' must be one of the model's classes {list(classes)!r}; got {value!r}"
        )
    if flavor == "binary":
        if isinstance(value, bool):
            return value
        if value in (0, 1) and not isinstance(value, str):
            return bool(value)
        raise BadGroundTruth(
            f"'ground_truth' of a binary model must be true or false (or 1/0); got {value!r}"
        )
    return value


def _bounded(value: int | float, limits: InputLimits) -> int | float:
    try:
        return check_number(value, "'ground_truth'", limits)
    except RequestError as exc:
        raise BadGroundTruth(str(exc)) from None


def _short(value: Any) -> str:
    if isinstance(value, int) and not -(10**50) < value < 10**50:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
