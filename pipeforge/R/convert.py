"""Conversions between Python dataset values and R objects, both ways, as Palladium documents them.

=====================================  =====================================
Python                                 R
=====================================  =====================================
pandas ``DataFrame`` (categoricals)    ``data.frame`` (factors)
pandas ``Series``, 1-d array           vector (numeric, integer, character)
2-d numeric array                      numeric ``matrix``
2-d array of mixed values              ``data.frame`` (numeric columns kept)
``Categorical`` / array of labels      ``factor`` (R → Python: its labels)
=====================================  =====================================

rpy2's numpy and pandas converters do most of it; the rules here cover what
they leave out or get wrong for datasets (mixed rows, label arrays,
factors back as labels rather than codes).
"""

from __future__ import annotations

from typing import Any

from .session import start_r

__all__ = ["to_r", "to_python"]


def _converter(ro):
    from rpy2.robjects import numpy2ri, pandas2ri

    return ro.default_converter + numpy2ri.converter + pandas2ri.converter


def _frame_from_rows(X):
    """A 2-d array of mixed values as a DataFrame whose numeric columns are numbers."""
    import pandas as pd

    frame = pd.DataFrame(X)
    for column in frame.columns:
        converted = pd.to_numeric(frame[column], errors="coerce")
        if not converted.isna().any():
            frame[column] = converted
    return frame


def to_r(obj: Any) -> Any:
    """A Python dataset value as the R object the table in the module docstring gives."""
    import numpy as np
    import pandas as pd

    ro = start_r()
    from rpy2.rinterface_lib.sexp import Sexp
    from rpy2.robjects.conversion import localconverter

    if obj is None or isinstance(obj, Sexp):
        return ro.NULL if obj is None else obj
    if isinstance(obj, (str, bool, int, float, np.generic)):  # a length-1 vector
        with localconverter(ro.default_converter) as cv:
            return cv.py2rpy(obj.item() if isinstance(obj, np.generic) else obj)
    if isinstance(obj, pd.Series):
        obj = obj.array if isinstance(obj.dtype, pd.CategoricalDtype) else obj.to_numpy()
    if isinstance(obj, pd.Categorical):
        levels = ro.StrVector([str(c) for c in obj.categories])
        codes = ro.IntVector([int(c) + 1 if c >= 0 else ro.NA_Integer for c in obj.codes])
        return ro.r["structure"](codes, levels=levels, **{"class": "factor"})
    if not isinstance(obj, pd.DataFrame):
        obj = np.asarray(obj)
        if obj.dtype == object:
            if obj.ndim == 2:
                obj = _frame_from_rows(obj)
            elif all(isinstance(v, str) for v in obj.ravel()):
                obj = obj.astype(str)
            else:
                obj = pd.to_numeric(obj, errors="coerce") if obj.size else obj.astype(float)
    with localconverter(_converter(ro)) as cv:
        return cv.py2rpy(obj)


def to_python(obj: Any) -> Any:
    """An R value as Python: data.frame → DataFrame, factor → array of labels, vector/matrix → array."""
    import numpy as np

    ro = start_r()
    from rpy2.robjects.conversion import localconverter

    if obj is ro.NULL or obj is None:
        return None
    if isinstance(obj, ro.vectors.FactorVector):
        labels = np.asarray(list(ro.r["levels"](obj)), dtype=object)  # not .levels: deprecated
        codes = np.asarray(obj)
        return np.where(codes > 0, labels[np.clip(codes - 1, 0, None)], None)
    with localconverter(_converter(ro)) as cv:
        value = cv.rpy2py(obj)
    if isinstance(value, ro.vectors.ListVector):
        return [to_python(item) for item in value]
    return value
