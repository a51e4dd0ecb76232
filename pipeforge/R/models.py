"""R models: trained by an R function, applied with R's ``predict()``, pickled with their R side.

:class:`ClassificationModel` and :class:`RegressionModel` call a function of
an R script that trains on ``(X, y)`` and use R's ``predict()`` on the
object it returns. ``encode_labels=True`` shows the model integer classes
0, 1, ... in place of string labels (a scikit-learn ``LabelEncoder``) and
turns its predictions back into the labels.

A fitted model pickles with its R side: the R object serialized by R's
``serialize()``, and the script's text, which is run again (loading its
libraries) before the model is first used after unpickling, so a model
read back from any model store predicts in any process.
:class:`Rpy2Transform` is the pipeline step in front of such a model that
gives it the columns it was fitted on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import PipeforgeError, PredictError
from ..interfaces import Model
from .convert import to_r
from .script import RObject
from .session import r_runtime_error, r_session

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AbstractModel", "ClassificationModel", "RegressionModel", "Rpy2Transform"]


class AbstractModel(RObject, Model):
    """An R model: ``funcname(X, y, ...)`` trains it, R's ``predict()`` applies it."""

    def __init__(
        self, scriptname: str, funcname: str, encode_labels: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(scriptname, funcname, **kwargs)
        self.encode_labels = encode_labels
        self._rmodel = None
        self._rmodel_raw: bytes | None = None

    @property
    def rmodel_(self) -> Any:
        """The fitted R object (brought back from its serialized form after unpickling)."""
        if self._rmodel is None and self._rmodel_raw is not None:
            with r_session() as ro:
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

    def fit(self, X: Any, y: Any = None) -> Self:
        y = self._targets(y) if y is not None else None
        with r_session() as ro:
            try:
                self._rmodel = self._call(ro, to_r(X), to_r(y))
            except r_runtime_error() as exc:
                raise PipeforgeError(
                    f"R function {self.funcname!r} of {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            self._rmodel_raw = None
        return self

    def _predict_r(self, X, **options):
        model = self.rmodel_
        with r_session() as ro:
            try:
                return ro.r["predict"](model, to_r(X), **options)
            except r_runtime_error() as exc:
                raise PredictError(f"the R model failed to predict: {str(exc).strip()}") from None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if self._rmodel is not None:
            with r_session() as ro:
                state["_rmodel_raw"] = bytes(ro.r["serialize"](self._rmodel, ro.NULL))
        state["_rmodel"] = None
        return state


class ClassificationModel(AbstractModel):
    """An R classifier; R's ``predict(model, X, type='prob')`` gives the class probabilities."""

    def fit(self, X: Any, y: Any = None) -> Self:
        import numpy as np

        super().fit(X, y)
        seen = self.enc_.transform(self.enc_.classes_) if self.encode_labels else np.unique(y)
        self._levels = [str(v) for v in seen]  # the classes as R names them
        self.classes_ = self.enc_.classes_ if self.encode_labels else seen
        return self

    def predict_proba(self, X: Any) -> Any:  # type: ignore[override] # takes no options
        import numpy as np

        probabilities = self._predict_r(X, type="prob")
        with r_session() as ro:
            columns = list(ro.r["colnames"](probabilities) or [])
        matrix = np.asarray(probabilities, dtype=float)
        if sorted(columns) == sorted(self._levels):  # R's column order → classes_ order
            matrix = matrix[:, [columns.index(level) for level in self._levels]]
        return matrix

    def predict(self, X: Any) -> Any:  # type: ignore[override] # takes no options
        import numpy as np

        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X: Any, y: Any) -> float:
        import numpy as np
        from sklearn.metrics import accuracy_score

        return accuracy_score(np.asarray(y), self.predict(X))


class RegressionModel(AbstractModel):
    """An R regression model; R's ``predict(model, X)`` gives the values."""

    def predict(self, X: Any) -> Any:  # type: ignore[override] # takes no options
        import numpy as np

        return np.asarray(self._predict_r(X), dtype=float)

    def score(self, X: Any, y: Any) -> float:
        import numpy as np
        from sklearn.metrics import r2_score

        return r2_score(np.asarray(y, dtype=float), self.predict(X))


class Rpy2Transform:
    """First step of a pipeline in front of an R model: rows become the columns it was fitted on.

    ``fit`` remembers the column names, types and factor levels of a
    DataFrame; ``transform`` turns rows (as the web service sends them) back
    into such a DataFrame, which reaches R as a ``data.frame`` with factors.
    """

    def fit(self, X: Any, y: Any = None) -> Self:
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            self.colnames_ = [str(c) for c in X.columns]
            self.dtypes_ = {str(c): X[c].dtype for c in X.columns}
        return self

    def transform(self, X: Any) -> Any:
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

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X, y).transform(X)
