"""Models and dataset loaders written in R, called through rpy2 (Palladium's ``palladium.R``).

An R script defines functions; :class:`DatasetLoader` calls one that
returns ``list(X, y)``, :class:`ClassificationModel` and
:class:`RegressionModel` call one that trains on ``(X, y)`` and use R's
``predict()`` on the object it returns. Needs R and the ``r`` extra
(``pip install 'pipeforge[r]'``, rpy2 < 3.6).

Conversions between Python and R (both ways, as Palladium documents them):

=====================================  =====================================
Python                                 R
=====================================  =====================================
pandas ``DataFrame`` (categoricals)    ``data.frame`` (factors)
pandas ``Series``, 1-d array           vector (numeric, integer, character)
2-d numeric array                      numeric ``matrix``
2-d array of mixed values              ``data.frame`` (numeric columns kept)
``Categorical`` / array of labels      ``factor`` (R → Python: its labels)
=====================================  =====================================

``encode_labels=True`` shows the model integer classes 0, 1, ... in place
of string labels (a scikit-learn ``LabelEncoder``) and turns its
predictions back into the labels.

R is one interpreter per process and single-threaded: every call into it
holds :data:`_LOCK`. A fitted model pickles with its R side: the R object
serialized by R's ``serialize()``, and the script's text, which is run again
(loading its libraries) before the model is first used after unpickling, so
a model read back from any model store predicts in any process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from typing import Any

from .config_files import path_base, resolve_path
from .errors import ConfigError, DataError, PipeforgeError, PredictError
from .interfaces import DatasetLoader as _DatasetLoader
from .interfaces import Model

__all__ = [
    "DatasetLoader",
    "AbstractModel",
    "ClassificationModel",
    "RegressionModel",
    "RObject",
    "Rpy2Transform",
    "to_r",
    "to_python",
]

logger = logging.getLogger(__name__)

_LOCK = threading.RLock()
_READY: list = []
# Runs a script's text in an environment of its own; library() banners are not news.
_RUN_SCRIPT = (
    "function(code, env) suppressPackageStartupMessages("
    "eval(parse(text = code, keep.source = FALSE), envir = env))"
)


def _rpy2():
    """``rpy2.robjects``, with R started and its console routed to the log (once)."""
    # Starting R puts R's library folders (and the system's) on LD_LIBRARY_PATH in
    # os.environ. This process has loaded what R needs by then; the programs it starts
    # later (gunicorn, pip, a worker) must not inherit the change: another libpython
    # found there breaks a Python that is not the system's.
    saved = os.environ.get("LD_LIBRARY_PATH")
    try:
        with warnings.catch_warnings():
            # R started outside the main thread (a server's model-cache thread) cannot take
            # over Ctrl-C; the server's own signal handling is what counts there.
            warnings.filterwarnings("ignore", "R is not initialized by the main thread")
            import rpy2.robjects as ro
        from rpy2.rinterface_lib import callbacks
    except ImportError as exc:
        raise ImportError(
            "R models need rpy2 and R: pip install 'pipeforge[r]' and install R "
            f"(Debian: apt-get install r-base-core) ({exc})"
        ) from exc
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
    if not _READY:
        # R's print() would otherwise write to stdout, where pf-stream answers.
        callbacks.consolewrite_print = lambda text: logger.info("R: %s", text.rstrip())
        callbacks.consolewrite_warnerror = lambda text: logger.warning("R: %s", text.rstrip())
        _READY.append(True)
    return ro


@contextlib.contextmanager
def _session():
    """Hold the R lock with rpy2's plain conversion rules (they are per thread)."""
    with _LOCK:
        ro = _rpy2()
        from rpy2.robjects.conversion import localconverter

        with localconverter(ro.default_converter):
            yield ro


def _r_error():
    from rpy2.rinterface_lib.embedded import RRuntimeError

    return RRuntimeError


# -- conversions ---------------------------------------------------------------------


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


def to_r(obj):
    """A Python dataset value as the R object the table in the module docstring gives."""
    import numpy as np
    import pandas as pd

    ro = _rpy2()
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


def to_python(obj):
    """An R value as Python: data.frame → DataFrame, factor → array of labels, vector/matrix → array."""
    import numpy as np

    ro = _rpy2()
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


# -- the components ------------------------------------------------------------------


class RObject:
    """What every R component shares: ``funcname`` from the R script ``scriptname``.

    Extra keyword arguments are passed on to the R function. A relative
    ``scriptname`` resolves like every path of the config (see
    docs/configuration.md). The script runs once per process, in an
    environment of its own, at the component's first use.
    """

    def __init__(self, scriptname: str, funcname: str, **kwargs: Any):
        self.scriptname = scriptname
        self.funcname = funcname
        self.kwargs = kwargs
        self._base: str | None = None
        self._source: str | None = None
        self._env = None

    def initialize_component(self, config) -> None:
        """Remember where a relative ``scriptname`` resolves."""
        self._base = path_base(config)

    def _script_text(self) -> str:
        if self._source is None:
            if not isinstance(self.scriptname, (str, os.PathLike)):
                raise ConfigError(
                    f"parameter 'scriptname' of {type(self).__name__} must be the path of an "
                    f"R script; got {self.scriptname!r} instead"
                )
            path = resolve_path(os.fspath(self.scriptname), self._base)
            try:
                with open(path, encoding="utf-8") as handle:
                    self._source = handle.read()
            except OSError as exc:
                raise ConfigError(
                    f"parameter 'scriptname' of {type(self).__name__}: cannot read the R script "
                    f"{path}: {exc.strerror or exc}"
                ) from None
        return self._source

    def _function(self, ro):
        """The R function ``funcname`` (runs the script first if this process has not)."""
        if self._env is None:
            env = ro.r["new.env"](parent=ro.globalenv)
            run = ro.r(_RUN_SCRIPT)
            try:
                run(self._script_text(), env)
            except _r_error() as exc:
                raise PipeforgeError(
                    f"the R script {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            self._env = env
        try:
            return self._env.find(self.funcname)
        except LookupError:
            raise ConfigError(
                f"parameter 'funcname' of {type(self).__name__}: the R script "
                f"{self.scriptname} defines no function {self.funcname!r}"
            ) from None

    def _call(self, ro, *args):
        """Call the R function with ``args`` and the extra keyword arguments."""
        kwargs = {key: to_r(value) for key, value in self.kwargs.items()}
        return self._function(ro)(*args, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        with contextlib.suppress(ConfigError):  # an unreadable script fails at use, not here
            state["_source"] = self._script_text()
        state["_env"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scriptname={self.scriptname!r}, funcname={self.funcname!r})"


class DatasetLoader(RObject, _DatasetLoader):
    """Loads ``(X, y)`` by calling an R function that returns ``list(X, y)``."""

    def __call__(self):
        with _session() as ro:
            try:
                result = self._call(ro)
            except _r_error() as exc:
                raise DataError(
                    f"R function {self.funcname!r} of {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            if not isinstance(result, ro.vectors.ListVector) or len(result) != 2:
                raise DataError(
                    f"R function {self.funcname!r} of {self.scriptname} must return list(X, y)"
                )
            return to_python(result[0]), to_python(result[1])


class AbstractModel(RObject, Model):
    """An R model: ``funcname(X, y, ...)`` trains it, R's ``predict()`` applies it."""

    def __init__(self, scriptname: str, funcname: str, encode_labels: bool = False, **kwargs: Any):
        super().__init__(scriptname, funcname, **kwargs)
        self.encode_labels = encode_labels
        self._rmodel = None
        self._rmodel_raw: bytes | None = None

    @property
    def rmodel_(self):
        """The fitted R object (brought back from its serialized form after unpickling)."""
        if self._rmodel is None and self._rmodel_raw is not None:
            with _session() as ro:
                self._function(ro)  # the script loads the libraries the object needs
                raw = ro.vectors.ByteVector(self._rmodel_raw)
                self._rmodel = ro.r["unserialize"](raw)
        if self._rmodel is None:
            raise AttributeError(f"{type(self).__name__} is not fitted yet")
        return self._rmodel

    def _targets(self, y):
        import numpy as np

        y = np.asarray(y)
        if self.encode_labels:
            from sklearn.preprocessing import LabelEncoder

            self.enc_ = LabelEncoder()
            y = self.enc_.fit_transform(y)
        return y

    def fit(self, X, y=None):
        y = self._targets(y) if y is not None else None
        with _session() as ro:
            try:
                self._rmodel = self._call(ro, to_r(X), to_r(y))
            except _r_error() as exc:
                raise PipeforgeError(
                    f"R function {self.funcname!r} of {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            self._rmodel_raw = None
        return self

    def _predict_r(self, X, **options):
        model = self.rmodel_
        with _session() as ro:
            try:
                return ro.r["predict"](model, to_r(X), **options)
            except _r_error() as exc:
                raise PredictError(f"the R model failed to predict: {str(exc).strip()}") from None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if self._rmodel is not None:
            with _session() as ro:
                state["_rmodel_raw"] = bytes(ro.r["serialize"](self._rmodel, ro.NULL))
        state["_rmodel"] = None
        return state


class ClassificationModel(AbstractModel):
    """An R classifier; R's ``predict(model, X, type='prob')`` gives the class probabilities."""

    def fit(self, X, y=None):
        import numpy as np

        super().fit(X, y)
        seen = self.enc_.transform(self.enc_.classes_) if self.encode_labels else np.unique(y)
        self._levels = [str(v) for v in seen]  # the classes as R names them
        self.classes_ = self.enc_.classes_ if self.encode_labels else seen
        return self

    def predict_proba(self, X):
        import numpy as np

        probabilities = self._predict_r(X, type="prob")
        with _session() as ro:
            columns = list(ro.r["colnames"](probabilities) or [])
        matrix = np.asarray(probabilities, dtype=float)
        if sorted(columns) == sorted(self._levels):  # R's column order → classes_ order
            matrix = matrix[:, [columns.index(level) for level in self._levels]]
        return matrix

    def predict(self, X):
        import numpy as np

        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y) -> float:
        import numpy as np
        from sklearn.metrics import accuracy_score

        return accuracy_score(np.asarray(y), self.predict(X))


class RegressionModel(AbstractModel):
    """An R regression model; R's ``predict(model, X)`` gives the values."""

    def predict(self, X):
        import numpy as np

        return np.asarray(self._predict_r(X), dtype=float)

    def score(self, X, y) -> float:
        import numpy as np
        from sklearn.metrics import r2_score

        return r2_score(np.asarray(y, dtype=float), self.predict(X))


class Rpy2Transform:
    """First step of a pipeline in front of an R model: rows become the columns it was fitted on.

    ``fit`` remembers the column names, types and factor levels of a
    DataFrame; ``transform`` turns rows (as the web service sends them) back
    into such a DataFrame, which reaches R as a ``data.frame`` with factors.
    """

    def fit(self, X, y=None):
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            self.colnames_ = [str(c) for c in X.columns]
            self.dtypes_ = {str(c): X[c].dtype for c in X.columns}
        return self

    def transform(self, X):
        import pandas as pd

        if not hasattr(self, "colnames_"):
            return X
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(list(X) if not hasattr(X, "shape") else X, columns=self.colnames_)
        X = X.copy()
        X.columns = self.colnames_
        for name, dtype in self.dtypes_.items():
            if isinstance(dtype, pd.CategoricalDtype):
                X[name] = pd.Categorical(X[name].astype(str), categories=dtype.categories)
            else:
                X[name] = X[name].astype(dtype)
        return X

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)
