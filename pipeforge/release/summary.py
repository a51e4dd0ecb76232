"""A small summary of a model's training inputs, stored with each fitted version.

:func:`summarize` describes each input column of the training data in a few
hundred bytes: for a numeric column its range, mean and the edges of ten
bins holding about equal shares of the training rows (deciles), with those
shares; for any other column (text, booleans, categories) the share of each
of its most frequent values. Training stores the result in the version's
metadata under ``training_summary`` (:data:`SUMMARY_KEY`), and
:mod:`pipeforge.release.drift` compares what a service is asked later with
it. A version fitted before pipeforge kept summaries simply has none.

Shape of a summary::

    {"rows": 150, "by": "name",            # or "position" for unnamed columns
     "features": [
       {"name": "sepal length", "kind": "numeric", "count": 150, "missing": 0,
        "min": 4.3, "max": 7.9, "mean": 5.84,
        "edges": [4.8, 5.0, ...],          # bin i holds edges[i-1] < x <= edges[i]
        "shares": [0.11, 0.09, ...]},      # len(edges) + 1 shares, summing to 1
       {"name": "colour", "kind": "categorical", "count": 150, "missing": 0,
        "shares": {"red": 0.5, "blue": 0.5}, "complete": true}]}

``complete`` is false when rare values were left out (only the
:data:`MAX_CATEGORIES` most frequent are kept). At most :data:`MAX_FEATURES`
columns are summarized; wider data keeps its first ones.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SUMMARY_KEY",
    "MAX_FEATURES",
    "MAX_CATEGORIES",
    "BINS",
    "summarize",
    "summary_of",
    "safe_summary",
    "category",
]

logger = logging.getLogger(__name__)

#: the metadata key a version's training summary is stored under
SUMMARY_KEY = "training_summary"
#: columns summarized at most (the first ones of wider data)
MAX_FEATURES = 200
#: values of a non-numeric column kept (the most frequent)
MAX_CATEGORIES = 20
#: bins of a numeric column (equal shares of the training rows)
BINS = 10


def _columns(X: Any) -> tuple[list[str], list[Any], str] | None:
    """``(names, columns, by)`` of a table, or ``None`` for what is not one (sparse, 3-D)."""
    import numpy as np

    columns_attr = getattr(X, "columns", None)
    if columns_attr is not None and hasattr(X, "iloc"):  # a pandas DataFrame
        names = [str(c) for c in list(columns_attr)[:MAX_FEATURES]]
        return names, [X.iloc[:, i].to_numpy() for i in range(len(names))], "name"
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):  # sparse: left alone
        return None
    try:
        array = np.asarray(X, dtype=object) if not hasattr(X, "dtype") else np.asarray(X)
    except (TypeError, ValueError):
        return None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        return None
    width = min(array.shape[1], MAX_FEATURES)
    return [str(i) for i in range(width)], [array[:, i] for i in range(width)], "position"


def _numbers(column: Any) -> Any | None:
    """The column as floats (NaN for missing), or ``None`` when it is not numeric."""
    import numpy as np

    if column.dtype.kind == "b":
        return None
    if column.dtype.kind in "iuf":
        return column.astype(float)
    values = []
    for value in column:
        if value is None:
            values.append(math.nan)
        elif isinstance(value, bool | str | bytes):
            return None
        else:
            try:
                values.append(float(value))
            except (TypeError, ValueError):
                return None
    return np.asarray(values, dtype=float)


def _numeric(name: str, numbers: Any) -> dict[str, Any]:
    import numpy as np

    finite = numbers[np.isfinite(numbers)]
    entry: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "count": int(finite.size),
        "missing": int(numbers.size - finite.size),
    }
    if not finite.size:
        return {**entry, "edges": [], "shares": [1.0]}
    inner = np.quantile(finite, [i / BINS for i in range(1, BINS)])
    edges = sorted({float(e) for e in inner})
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return {
        **entry,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "edges": edges,
        "shares": [round(float(c) / finite.size, 6) for c in counts],
    }


def category(value: Any) -> str:
    """How a non-numeric value is named in a summary (JSON keys are text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _categorical(name: str, column: Any) -> dict[str, Any]:
    present = [v for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))]
    counts = Counter(category(v) for v in present)
    kept = counts.most_common(MAX_CATEGORIES)
    total = len(present)
    return {
        "name": name,
        "kind": "categorical",
        "count": total,
        "missing": len(column) - total,
        "shares": {value: round(n / total, 6) for value, n in kept} if total else {},
        "complete": len(kept) == len(counts),
    }


def summarize(X: Any) -> dict[str, Any] | None:
    """The summary of training inputs ``X`` (DataFrame or 2-D array); ``None`` if not a table."""
    found = _columns(X)
    if found is None:
        return None
    names, columns, by = found
    features = []
    for name, column in zip(names, columns, strict=True):
        numbers = _numbers(column)
        features.append(_categorical(name, column) if numbers is None else _numeric(name, numbers))
    rows = len(columns[0]) if columns else 0
    return {"rows": int(rows), "by": by, "features": features}


def summary_of(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The training summary stored in a version's metadata, or ``None`` (fitted before them)."""
    summary = (metadata or {}).get(SUMMARY_KEY)
    if isinstance(summary, Mapping) and isinstance(summary.get("features"), list):
        return dict(summary)
    return None


def safe_summary(X: Any) -> dict[str, Any]:
    """``{SUMMARY_KEY: summary}`` to annotate a fitted model with; ``{}`` if it cannot be made.

    A summary is a convenience: data it cannot describe never fails a fit.
    """
    try:
        summary = summarize(X)
    except Exception as exc:  # noqa: BLE001 (any odd input: the fit goes on without)
        logger.warning("no training summary for this version: %s: %s", type(exc).__name__, exc)
        return {}
    return {SUMMARY_KEY: summary} if summary is not None else {}
