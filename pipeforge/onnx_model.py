"""A scikit-learn model served through ONNX Runtime, with the original kept as a fallback.

:class:`OnnxModel` is a model the config names around an estimator::

    model:
      __factory__: pipeforge.onnx_model.OnnxModel
      estimator:
        __factory__: sklearn.ensemble.RandomForestClassifier
        n_estimators: 500
      check_data: {__copy__: dataset_loader_test}

``fit`` fits the estimator, compiles it with skl2onnx and checks that the
compiled copy predicts the same as the original on ``check_data`` (a
dataset loader; the training data without one): every label equal for a
classifier, values within ``rtol`` for a regressor, and probabilities within
``rtol`` too. Only then does ``predict`` go through ONNX Runtime. When
compiling fails, the check fails, or ONNX Runtime cannot run it where the
model is loaded, the original answers; :attr:`OnnxModel.onnx_status_` says
which (``pf-list`` shows it with the model's parameters). Both are stored
with the model (``pip install 'pipeforge[onnx]'``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sklearn.base import BaseEstimator

__all__ = ["OnnxModel"]

logger = logging.getLogger(__name__)


def _float32(X: Any) -> Any:
    import numpy as np

    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


class OnnxModel(BaseEstimator):
    """``estimator`` compiled to ONNX at fit time, served by ONNX Runtime when it predicts the same.

    ``check_data``: a dataset loader (``loader() -> (X, y)``) whose ``X``
    the compiled copy must predict as the original does; ``None``: the
    training data. ``rtol``: the relative tolerance for regression values
    and probabilities. ``target_opset``: passed to skl2onnx.
    """

    def __init__(
        self,
        estimator: Any,
        check_data: Any = None,
        rtol: float = 1e-4,
        target_opset: int | None = None,
    ):
        self.estimator = estimator
        self.check_data = check_data
        self.rtol = rtol
        self.target_opset = target_opset

    def __sklearn_tags__(self) -> Any:
        return self.estimator.__sklearn_tags__()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_ort", None)  # ONNX Runtime's session is built again where it is loaded
        state.pop("_ort_lock", None)
        return state

    @property
    def _is_classifier(self) -> bool:
        from sklearn.base import is_classifier

        return bool(is_classifier(self.estimator))

    @property
    def classes_(self) -> Any:
        return self.estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        return int(self.estimator_.n_features_in_)

    @property
    def feature_names_in_(self) -> Any:
        return self.estimator_.feature_names_in_

    # -- fit: compile and check --------------------------------------------------
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> OnnxModel:
        """Fit the estimator, then compile it and check the compiled copy."""
        from sklearn.base import clone

        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.onnx_: bytes | None = None
        check_X = X if self.check_data is None else self.check_data()[0]
        try:
            onnx_bytes = self._compile(X)
        except Exception as exc:  # skl2onnx raises many kinds for what it cannot convert
            why = (str(exc).strip().splitlines() or [""])[0]
            self.onnx_status_ = f"original: ONNX conversion failed ({type(exc).__name__}: {why})"
            logger.warning("%s; predictions come from the original model", self.onnx_status_)
            return self
        differ = self._compare(onnx_bytes, check_X)
        if differ:
            self.onnx_status_ = f"original: the ONNX copy {differ}"
            logger.warning("%s; predictions come from the original model", self.onnx_status_)
            return self
        self.onnx_ = onnx_bytes
        self.onnx_status_ = f"onnx: checked on {len(check_X)} rows"
        logger.info("the ONNX copy predicts as the original on %d rows", len(check_X))
        return self

    def _compile(self, X: Any) -> bytes:
        from skl2onnx import to_onnx

        options = {"zipmap": False} if self._is_classifier else None
        onx = to_onnx(
            self.estimator_,
            _float32(X)[:1],
            options=options,
            target_opset=self.target_opset,
        )
        return onx.SerializeToString()

    def _compare(self, onnx_bytes: bytes, X: Any) -> str | None:
        """What differs between the compiled copy and the original on ``X``; ``None``: nothing."""
        import numpy as np

        outputs = self._run(self._new_session(onnx_bytes), X)
        original = self.estimator_.predict(X)
        if self._is_classifier:
            wrong = int(np.sum(np.asarray(outputs[0]) != np.asarray(original)))
            if wrong:
                return f"predicts other labels for {wrong} of {len(original)} rows"
            if hasattr(self.estimator_, "predict_proba") and len(outputs) > 1:
                expected = self.estimator_.predict_proba(X)
                if not np.allclose(outputs[1], expected, rtol=self.rtol, atol=self.rtol):
                    return f"gives other probabilities (beyond rtol={self.rtol})"
        else:
            values = np.asarray(outputs[0]).reshape(np.shape(original))
            if not np.allclose(values, original, rtol=self.rtol, atol=self.rtol):
                return f"predicts other values (beyond rtol={self.rtol})"
        return None

    # -- serving -----------------------------------------------------------------------
    @staticmethod
    def _new_session(onnx_bytes: bytes) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )

    def _session(self) -> Any:
        """ONNX Runtime's session (built at first use); ``None``: serve the original."""
        compiled = getattr(self, "onnx_", None)
        if compiled is None:
            return None
        session = self.__dict__.get("_ort", False)
        if session is not False:
            return session
        lock = self.__dict__.setdefault("_ort_lock", threading.Lock())
        with lock:
            if "_ort" not in self.__dict__:
                try:
                    self.__dict__["_ort"] = self._new_session(compiled)
                except Exception as exc:  # onnxruntime missing or unable to run it here
                    logger.warning(
                        "the ONNX copy cannot run here (%s: %s); the original model answers",
                        type(exc).__name__,
                        exc,
                    )
                    self.__dict__["_ort"] = None
        return self.__dict__["_ort"]

    @staticmethod
    def _run(session: Any, X: Any) -> list[Any]:
        name = session.get_inputs()[0].name
        return list(session.run(None, {name: _float32(X)}))

    @property
    def uses_onnx(self) -> bool:
        """Whether predictions go through ONNX Runtime (checked and runnable here)."""
        return self._session() is not None

    def predict(self, X: Any) -> Any:
        session = self._session()
        if session is None:
            return self.estimator_.predict(X)
        return self._run(session, X)[0]

    def predict_proba(self, X: Any) -> Any:
        session = self._session()
        if session is None or not self._is_classifier:
            return self.estimator_.predict_proba(X)
        return self._run(session, X)[1]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy for a classifier, R² for a regressor, of :meth:`predict`."""
        from sklearn.metrics import accuracy_score, r2_score

        metric = accuracy_score if self._is_classifier else r2_score
        return float(metric(y, self.predict(X)))
