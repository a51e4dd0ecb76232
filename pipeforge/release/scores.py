"""Scores kept as plain counters: online models' progressive validation and live scores.

One mechanism for both: an online model scores each prediction against the
ground truth its next learn brings (:mod:`pipeforge.online`), and a
predict service scores each logged prediction against the feedback that
joins it later (:mod:`.live_scores`). Either way the score is computed
from sums and counts (absolute errors, squared errors, confusion counts,
log losses), so its whole state is a small JSON-able dict, and what one
scored prediction adds to it (its :func:`delta`) is known without reading
the state. The online store appends each learn's delta in the same
transaction as the learn itself and folds them into the model's state at
each snapshot: two processes never lose each other's updates, a learn never
has to read the metrics, and no River is needed. The names are chantilly's
(River's class names) so its clients read them unchanged:

* regression: ``MAE``, ``RMSE``, ``R2``, ``SMAPE``;
* binary: ``Accuracy``, ``LogLoss``, ``Precision``, ``Recall``, ``F1``;
* multiclass: ``Accuracy``, ``CrossEntropy``, ``MacroPrecision``,
  ``MacroRecall``, ``MacroF1``, ``MicroPrecision``, ``MicroRecall``, ``MicroF1``.

Probability metrics (``LogLoss``, ``CrossEntropy``) count only predictions
that were probabilities; a sample without any prediction (a model that has
not learnt anything yet) is not counted at all.

:func:`scorer` maps a config's ``scoring`` (a scikit-learn scorer name such
as ``accuracy`` or ``neg_mean_absolute_error``, or one of the names above)
to the flavor and metric that stand for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "new_state",
    "delta",
    "merge",
    "update",
    "values",
    "count",
    "Scorer",
    "scorer",
    "LOWER_IS_BETTER",
]

_EPS = 1e-15


def new_state(flavor: str) -> dict[str, Any]:
    """The counters of a model that has been scored on nothing yet."""
    if flavor == "regression":
        return {"n": 0, "abs": 0.0, "sq": 0.0, "sy": 0.0, "syy": 0.0, "smape": 0.0}
    if flavor == "binary":
        return {"n": 0, "tp": 0, "fp": 0, "fn": 0, "tn": 0, "np": 0, "loss": 0.0}
    return {"n": 0, "ok": 0, "np": 0, "loss": 0.0, "tp": {}, "pred": {}, "true": {}}


def count(state: Mapping[str, Any]) -> int:
    """How many predictions the metrics were computed on."""
    return int(state.get("n", 0))


def _label(prediction: Any) -> Any:
    """The predicted label: the most probable class of a probability dict."""
    if isinstance(prediction, Mapping):
        if not prediction:
            return None
        return max(prediction, key=lambda k: prediction[k])
    return prediction


def _probability(prediction: Mapping[Any, Any], label: Any) -> float:
    p = prediction.get(label, 0.0)
    try:
        p = float(p)
    except (TypeError, ValueError):
        p = 0.0
    return min(max(p, _EPS), 1.0)


def delta(flavor: str, y_true: Any, prediction: Any, positive: Any = True) -> dict[str, Any] | None:
    """The counters one scored prediction adds (``None`` when there is no prediction to score)."""
    if prediction is None or (isinstance(prediction, Mapping) and not prediction):
        return None
    if flavor == "regression":
        try:
            y_pred = float(prediction)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(y_pred):
            return None
        y = float(y_true)
        err = y - y_pred
        denominator = abs(y) + abs(y_pred)
        return {
            "n": 1,
            "abs": abs(err),
            "sq": err * err,
            "sy": y,
            "syy": y * y,
            "smape": 2.0 * abs(err) / denominator if denominator else 0.0,
        }
    label = _label(prediction)
    change: dict[str, Any] = {"n": 1}
    if isinstance(prediction, Mapping):
        change["np"] = 1
        change["loss"] = -math.log(_probability(prediction, y_true))
    if flavor == "binary":
        truth = y_true == positive
        guess = label == positive
        change[("tp" if guess else "fn") if truth else ("fp" if guess else "tn")] = 1
        return change
    true_key, pred_key = json.dumps(y_true), json.dumps(label)
    if label == y_true:
        change["ok"] = 1
        change["tp"] = {true_key: 1}
    change["pred"] = {pred_key: 1}
    change["true"] = {true_key: 1}
    return change


def merge(state: Mapping[str, Any], change: Mapping[str, Any] | None) -> dict[str, Any]:
    """``state`` plus the counters of ``change`` (a :func:`delta` or another state); a new dict."""
    merged = dict(state)
    if not change:
        return merged
    for key, value in change.items():
        if isinstance(value, Mapping):
            counts = dict(merged.get(key) or {})
            for label, count in value.items():
                counts[label] = counts.get(label, 0) + count
            merged[key] = counts
        else:
            merged[key] = merged.get(key, 0) + value
    return merged


def update(
    state: Mapping[str, Any], flavor: str, y_true: Any, prediction: Any, positive: Any = True
) -> dict[str, Any]:
    """New counters after scoring ``prediction`` against ``y_true`` (the input is left alone)."""
    return merge(state, delta(flavor, y_true, prediction, positive))


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def values(state: Mapping[str, Any], flavor: str) -> dict[str, float]:
    """The metric values, by chantilly's names."""
    n = state.get("n", 0)
    if flavor == "regression":
        sst = state["syy"] - (state["sy"] ** 2 / n if n else 0.0)
        return {
            "MAE": _ratio(state["abs"], n),
            "RMSE": math.sqrt(_ratio(state["sq"], n)),
            "R2": 1.0 - state["sq"] / sst if n > 1 and sst > 0 else 0.0,
            "SMAPE": 100.0 * _ratio(state["smape"], n),
        }
    if flavor == "binary":
        tp, fp, fn, tn = state["tp"], state["fp"], state["fn"], state["tn"]
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        return {
            "Accuracy": _ratio(tp + tn, n),
            "LogLoss": _ratio(state["loss"], state["np"]),
            "Precision": precision,
            "Recall": recall,
            "F1": _f1(precision, recall),
        }
    accuracy = _ratio(state["ok"], n)
    labels = set(state["pred"]) | set(state["true"])
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = state["tp"].get(label, 0)
        precision = _ratio(tp, state["pred"].get(label, 0))
        recall = _ratio(tp, state["true"].get(label, 0))
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(_f1(precision, recall))
    k = len(labels)
    return {
        "Accuracy": accuracy,
        "CrossEntropy": _ratio(state["loss"], state["np"]),
        "MacroPrecision": _ratio(sum(precisions), k),
        "MacroRecall": _ratio(sum(recalls), k),
        "MacroF1": _ratio(sum(f1s), k),
        "MicroPrecision": accuracy,
        "MicroRecall": accuracy,
        "MicroF1": accuracy,
    }


#: metrics where a smaller value is the better score
LOWER_IS_BETTER = frozenset({"MAE", "RMSE", "SMAPE", "LogLoss", "CrossEntropy"})

#: scikit-learn scorer names -> (flavor, metric); flavor ``None``: what the data look like
_SKLEARN = {
    "accuracy": (None, "Accuracy"),
    "balanced_accuracy": ("multiclass", "MacroRecall"),
    "f1": ("binary", "F1"),
    "precision": ("binary", "Precision"),
    "recall": ("binary", "Recall"),
    "neg_log_loss": ("multiclass", "CrossEntropy"),
    "f1_macro": ("multiclass", "MacroF1"),
    "f1_micro": ("multiclass", "MicroF1"),
    "precision_macro": ("multiclass", "MacroPrecision"),
    "recall_macro": ("multiclass", "MacroRecall"),
    "neg_mean_absolute_error": ("regression", "MAE"),
    "neg_root_mean_squared_error": ("regression", "RMSE"),
    "r2": ("regression", "R2"),
}
_FLAVOR_OF_METRIC = {
    "MAE": "regression",
    "RMSE": "regression",
    "R2": "regression",
    "SMAPE": "regression",
    "LogLoss": "binary",
    "Precision": "binary",
    "Recall": "binary",
    "F1": "binary",
    "Accuracy": None,
    "CrossEntropy": "multiclass",
    "MacroPrecision": "multiclass",
    "MacroRecall": "multiclass",
    "MacroF1": "multiclass",
    "MicroPrecision": "multiclass",
    "MicroRecall": "multiclass",
    "MicroF1": "multiclass",
}


class Scorer(NamedTuple):
    """Which counters to keep and which of their values is the score."""

    flavor: str | None  #: ``regression``, ``binary``, ``multiclass``; ``None``: told by the data
    metric: str | None  #: the headline metric; ``None``: ``Accuracy`` or ``MAE`` by flavor

    def resolve(self, seen: str) -> tuple[str, str]:
        """``(flavor, metric)``, ``seen`` being what the data look like (``regression`` or
        ``multiclass``) when the scorer leaves the flavor open."""
        flavor = self.flavor or seen
        metric = self.metric or ("MAE" if flavor == "regression" else "Accuracy")
        return flavor, metric


def scorer(scoring: Any) -> Scorer | None:
    """The :class:`Scorer` standing for a config's ``scoring``; ``None`` if no counter can.

    ``scoring`` may be a scikit-learn scorer name (``accuracy``,
    ``neg_mean_absolute_error``, ``r2``, ``f1_macro``, ...), one of this
    module's metric names (``MAE``, ``MacroF1``, ...) or ``None`` (the flavor's
    first metric: ``Accuracy`` or ``MAE``). Anything else (a callable, a dict,
    another name) gives ``None``.
    """
    if scoring is None:
        return Scorer(None, None)
    if not isinstance(scoring, str):
        return None
    if scoring in _SKLEARN:
        return Scorer(*_SKLEARN[scoring])
    if scoring in _FLAVOR_OF_METRIC:
        return Scorer(_FLAVOR_OF_METRIC[scoring], scoring)
    return None
