"""What a stored model version says about itself, for people comparing versions.

Training annotates each model with its estimator's parameters (flattened,
JSON-safe), how long fitting took and how much data it saw; scripts and the
dashboard read that back from the persister's metadata. :func:`compare`
lines several versions up key by key and marks where they differ.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "estimator_params",
    "training_info",
    "data_size",
    "flatten_metadata",
    "compare",
    "ComparedRow",
    "label_rows",
]

_MAX_ITEMS = 20
_MAX_TEXT = 200


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit") and not isinstance(value, type)


def _param_value(value: Any) -> Any:
    """A JSON-safe, short stand-in for a parameter value.

    Estimators become their class name (their own parameters are listed
    under ``name__param`` by a deep ``get_params``), functions and classes
    their dotted name, non-finite floats the strings ``"nan"``/``"inf"``,
    big arrays a note of their shape.
    """
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 3] + "..."
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if _is_estimator(value):
        return type(value).__name__
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        module = getattr(value, "__module__", None)
        return f"{module}.{value.__qualname__}" if module else value.__qualname__
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "tolist"):
        size = math.prod(shape) if shape else 1
        if size > _MAX_ITEMS:
            return f"<{type(value).__name__} of shape {tuple(int(s) for s in shape)}>"
        return _param_value(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _param_value(v) for k, v in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, Sequence | set | frozenset):
        items = list(value)
        if len(items) > _MAX_ITEMS:
            return f"<{type(value).__name__} of {len(items)} items>"
        return [_param_value(v) for v in items]
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def estimator_params(model: Any) -> dict[str, Any]:
    """``model.get_params()`` flattened and JSON-safe; ``{}`` for models without it.

    A scikit-learn pipeline's deep parameters are already flat
    (``clf__C``); its steps appear as ``[name, class name]`` pairs.
    """
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return {}
    try:
        params = get_params(deep=True)
    except TypeError:
        params = get_params()
    except Exception:  # a model's own get_params failing must not fail training
        return {}
    return {str(key): _param_value(value) for key, value in sorted(params.items())}


def data_size(X: Any) -> dict[str, int]:
    """``train_rows`` and ``train_features`` of a training matrix (what can be known)."""
    info: dict[str, int] = {}
    shape = getattr(X, "shape", None)
    try:
        if shape is not None and len(shape) >= 1:
            info["train_rows"] = int(shape[0])
            if len(shape) >= 2:
                info["train_features"] = int(shape[1])
        elif X is not None:
            info["train_rows"] = len(X)
            first = X[0] if info["train_rows"] else None
            if isinstance(first, Sequence) and not isinstance(first, str):
                info["train_features"] = len(first)
    except (TypeError, KeyError, IndexError):
        pass
    return info


def class_name(kind: type) -> str:
    """The dotted name users import ``kind`` by (``sklearn.linear_model.LogisticRegression``)."""
    import sys

    parts = kind.__module__.split(".")
    public = [p for p in parts if not p.startswith("_")]
    for size in range(1, len(public) + 1):  # the shortest public module exporting it
        module = sys.modules.get(".".join(public[:size]))
        if module is not None and getattr(module, kind.__qualname__, None) is kind:
            return f"{module.__name__}.{kind.__qualname__}"
    return f"{kind.__module__}.{kind.__qualname__}"


def training_info(model: Any, X: Any, fit_seconds: float | None) -> dict[str, Any]:
    """The metadata training adds to a model: estimator, params, fit time, data size."""
    info: dict[str, Any] = {
        "estimator": class_name(type(model)),
        "params": estimator_params(model),
    }
    if fit_seconds is not None:
        info["fit_seconds"] = round(float(fit_seconds), 6)
    info.update(data_size(X))
    return info


def flatten_metadata(metadata: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``params.C``, ``library_versions.python``)."""
    flat: dict[str, Any] = {}
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_metadata(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class ComparedRow:
    """One key across the compared versions: its values and whether they differ."""

    __slots__ = ("key", "values", "differs")

    def __init__(self, key: str, values: list[Any], differs: bool):
        self.key = key
        self.values = values
        self.differs = differs

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": self.values, "differs": self.differs}


_FIRST = ("active", "train_timestamp", "estimator", "fit_seconds", "train_rows", "train_features")


def _order(key: str) -> tuple:
    if key in _FIRST:
        return (0, _FIRST.index(key), key)
    if key.startswith("score_"):
        return (1, 0, key)
    if key.startswith("params."):
        return (2, 0, key)
    return (3, 0, key)


def compare(models: Sequence[Mapping[str, Any]], active: str | None = None) -> list[ComparedRow]:
    """Line ``models`` (metadata dicts) up key by key; missing keys are ``None``.

    ``active`` (the store's ``active-model``) adds an ``active`` row. Rows
    come in a fixed order: facts of the training, scores, parameters, rest.
    """
    flats = []
    for model in models:
        flat = flatten_metadata({k: v for k, v in model.items() if k != "version"})
        if active is not None:
            flat["active"] = str(model.get("version")) == str(active)
        flats.append(flat)
    keys = sorted({key for flat in flats for key in flat}, key=_order)
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        differs = any(value != values[0] for value in values[1:])
        rows.append(ComparedRow(key, values, differs))
    return rows


def label_rows(model: Any, proba: Any) -> list:
    """``predict_proba`` rows as ``{class label: probability}`` dicts."""
    rows = proba.tolist() if hasattr(proba, "tolist") else [list(row) for row in proba]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return rows
    labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    return [dict(zip(labels, row, strict=False)) for row in rows]
