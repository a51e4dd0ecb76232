"""The ``/predict`` workhorse: request → samples → model → JSON response.

:class:`PredictService` is configured with a ``mapping`` of (name, type)
pairs and turns a GET query or a POSTed JSON list of samples into the array
the model expects. Every bad input becomes a :class:`~pipeforge.errors.RequestError`
(answered with 400 and the documented error body); only faults of the server
or the model become a 500, logged with their traceback and answered without
internals. Subclasses override the ``*_from_*`` hooks to change the formats.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError, NoModelError, PredictError, RequestError
from .interfaces import PredictService as PredictServiceInterface

__all__ = ["PredictService", "error_body", "json_response", "to_json"]

logger = logging.getLogger(__name__)

_INT_LIMIT = 2**63
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_float(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be a number; got {_describe(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise RequestError(f"value of {name!r} must be a number; got {_describe(value)}") from None
    if not math.isfinite(number):
        raise RequestError(f"value of {name!r} must be a finite number; got {_describe(value)}")
    return number


def _to_int(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be an integer; got {_describe(value)}")
    try:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        number = int(value)
    except (ValueError, OverflowError):
        raise RequestError(
            f"value of {name!r} must be an integer; got {_describe(value)}"
        ) from None
    if not -_INT_LIMIT <= number < _INT_LIMIT:
        raise RequestError(f"value of {name!r} is out of the 64-bit range; got {_describe(value)}")
    return number


def _to_str(name: str, value):
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RequestError(f"value of {name!r} must be a string; got {_describe(value)}")


def _to_bool(name: str, value):
    # A bool field takes its text form, in a query string and in JSON alike;
    # SPEC section 8 asks for a JSON true/false to be answered with 400.
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    hint = f' (send the string "{str(value).lower()}")' if isinstance(value, bool) else ""
    raise RequestError(
        f"value of {name!r} must be one of the strings true/false/1/0{hint}; got {_describe(value)}"
    )


_CONVERTERS = {"float": _to_float, "int": _to_int, "str": _to_str, "bool": _to_bool}
_NUMERIC = frozenset({"float", "int"})
_PLAIN_NUMBERS = frozenset({float, int})


def to_json(value) -> Any:
    """``json.dumps`` fallback: numpy scalars/arrays, dates and the rest as plain types."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def json_response(body, status: int = 200, headers=None):
    """A Flask response with ``body`` as JSON (plain :func:`json.dumps`, no jsonify overhead)."""
    from flask import Response

    return Response(
        json.dumps(body, default=to_json),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def error_body(service_metadata: Mapping | None, message: str, error_code: int = -1) -> dict:
    """The one error body shape every endpoint answers with."""
    metadata = {"service_name": None, "service_version": None}
    metadata.update(service_metadata or {})
    metadata.update(status="ERROR", error_code=error_code, error_message=message)
    return {"metadata": metadata}


def _pairs(value, what: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(
            f"parameter '{what}' of PredictService must be a list of (name, type) pairs; "
            f"got {_describe(value)} instead"
        )
    pairs = []
    for item in value:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in _CONVERTERS
        ):
            raise ConfigError(
                f"parameter '{what}' of PredictService must hold (name, type) pairs with type "
                f"one of {', '.join(_CONVERTERS)}; got {_describe(item)} instead"
            )
        pairs.append((item[0], item[1]))
    return pairs


class PredictService(PredictServiceInterface):
    """Answers ``/predict`` (or its ``entry_point``) for one mapping of request fields.

    ``mapping``: (name, type) pairs, type one of ``float``, ``int``, ``str``,
    ``bool``, in the column order the model was fitted on. ``params``: extra
    request fields passed to ``model.predict`` as keyword arguments, typed the
    same way (optional in a request). ``predict_proba``: answer class
    probabilities as ``{label: p}`` per sample. ``unwrap_sample``: a mapping
    with one field passes that value itself as the sample (e.g. a text for a
    text pipeline) instead of a one-column row. GET answers one result,
    POST (a JSON list of samples) a list of results.
    """

    def __init__(
        self,
        mapping=None,
        params=None,
        entry_point: str = "/predict",
        decorator_list_name: str = "predict_decorators",
        predict_proba: bool = False,
        unwrap_sample: bool = False,
    ):
        self.mapping = mapping
        self.params = params
        self.entry_point = entry_point
        self.decorator_list_name = decorator_list_name
        self.predict_proba = predict_proba
        self.unwrap_sample = unwrap_sample

    # -- setup (first use) -------------------------------------------------

    def initialize_component(self, config) -> None:
        """Remember the config's ``service_metadata`` for the response bodies."""
        self.service_metadata = dict(config.get("service_metadata") or {})
        self.validate()

    def validate(self) -> None:
        """Check the parameters once; raises :class:`ConfigError` naming the bad one."""
        if getattr(self, "_fields", None) is not None:
            return
        fields = _pairs(self.mapping, "mapping")
        if not fields:
            raise ConfigError(
                "parameter 'mapping' of PredictService must name at least one (name, type) pair; "
                f"got {_describe(self.mapping)} instead"
            )
        if self.unwrap_sample and len(fields) != 1:
            raise ConfigError(
                "parameter 'unwrap_sample' of PredictService needs a mapping with exactly one "
                f"field; got {len(fields)}"
            )
        if not isinstance(self.entry_point, str) or not self.entry_point.startswith("/"):
            raise ConfigError(
                "parameter 'entry_point' of PredictService must be a path starting with '/'; "
                f"got {_describe(self.entry_point)} instead"
            )
        self._param_fields = [(n, _CONVERTERS[t]) for n, t in _pairs(self.params, "params")]
        self._numeric = all(t in _NUMERIC for _, t in fields)
        # The bulk path skips sample_from_data, so only when no subclass changed it.
        self._bulk = (
            all(t == "float" for _, t in fields)
            and not self.unwrap_sample
            and type(self).sample_from_data is PredictService.sample_from_data
        )
        self._names = [n for n, _ in fields]
        self._fields = [(n, _CONVERTERS[t]) for n, t in fields]

    def _metadata(self) -> dict:
        return getattr(self, "service_metadata", None) or {}

    # -- the request cycle -------------------------------------------------

    def __call__(self, model, request):
        """Answer ``request`` with ``model``; never raises."""
        try:
            return self.do(model, request)
        except Exception as exc:
            return self.response_from_exception(exc)

    def do(self, model, request):
        """Parse the request, predict and build the response."""
        self.validate()
        if request.method == "POST":
            payload = self._posted(request)
            X = self._bulk_matrix(model, payload) if self._bulk else None
            if X is None:
                samples = [self._sample(model, data, i) for i, data in enumerate(payload)]
                X = self._matrix(model, samples)
            single = False
        else:
            X = self._matrix(model, [self.sample_from_data(model, request.args)])
            single = True
        params = self.params_from_data(model, request.args)
        y_pred = self.predict(model, X, **params)
        if self.predict_proba:
            y_pred = _label_rows(model, y_pred)
        return self.response_from_prediction(y_pred, single=single)

    def _bulk_matrix(self, model, payload):
        """All-float samples of plain JSON numbers in one numpy call; ``None`` if not that simple.

        Anything unusual (a missing key, a string, a bool, null, NaN) returns
        ``None`` and takes the per-value path, which says what is wrong.
        """
        import numpy as np

        names = self._names
        try:
            rows = [[sample[name] for name in names] for sample in payload]
        except (KeyError, TypeError, IndexError):
            return None
        if not {type(value) for row in rows for value in row} <= _PLAIN_NUMBERS:
            return None
        try:
            X = np.array(rows, dtype=float)
        except (OverflowError, ValueError):
            return None
        if not np.isfinite(X).all():
            return None
        if hasattr(model, "feature_names_in_"):
            import pandas as pd

            return pd.DataFrame(X, columns=names)
        return X

    def _posted(self, request) -> list:
        if not request.is_json:
            from werkzeug.exceptions import UnsupportedMediaType

            raise UnsupportedMediaType(
                "POST /predict expects a JSON list of samples with Content-Type: application/json; "
                f"got {request.mimetype or 'no content type'!r}"
            )
        try:
            payload = json.loads(request.get_data(cache=False))
        except (ValueError, RecursionError):
            raise RequestError("the request body is not valid JSON") from None
        if not isinstance(payload, list):
            raise RequestError(
                f"the request body must be a JSON list of samples; got a JSON {_json_kind(payload)}"
            )
        if not payload:
            raise RequestError("the request body is an empty list; send at least one sample")
        return payload

    def _sample(self, model, data, index: int):
        if not isinstance(data, dict):
            raise RequestError(
                f"sample {index} must be a JSON object of field values; got a JSON {_json_kind(data)}"
            )
        try:
            return self.sample_from_data(model, data)
        except RequestError as exc:
            raise RequestError(f"sample {index}: {exc}", exc.error_code) from None

    def sample_from_data(self, model, data) -> list:
        """One sample (the mapped values, converted) from a dict-like ``data``."""
        values = []
        for name, convert in self._fields:
            try:
                raw = data[name]
            except KeyError:
                raise RequestError(f"missing value for {name!r}") from None
            if raw is None:
                raise RequestError(f"value of {name!r} must not be null")
            values.append(convert(name, raw))
        return values

    def params_from_data(self, model, data) -> dict:
        """The ``params`` present in ``data``, converted, as keyword arguments for predict."""
        params = {}
        for name, convert in self._param_fields:
            if name in data:
                params[name] = convert(name, data[name])
        return params

    def _matrix(self, model, samples: list):
        import numpy as np

        if self.unwrap_sample:
            return np.array([s[0] for s in samples], dtype=float if self._numeric else object)
        if hasattr(model, "feature_names_in_"):
            # Fitted on a DataFrame: give it the same column names.
            import pandas as pd

            return pd.DataFrame(samples, columns=self._names)
        return np.array(samples, dtype=float if self._numeric else object)

    def predict(self, model, X, **params):
        """Call ``model.predict`` (or ``predict_proba``).

        Floating-point overflow inside the model (a finite but huge input such
        as 1e308) is the model's arithmetic, not a failed request: numpy's
        warnings are silenced for the call (``errstate`` is context-local).
        """
        import numpy as np

        method = model.predict_proba if self.predict_proba else model.predict
        sklearn = sys.modules.get("sklearn")
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            if sklearn is not None and self._numeric:
                # The converters let only finite numbers through: spare scikit-learn the check.
                with sklearn.config_context(assume_finite=True):
                    return method(X, **params)
            return method(X, **params)

    def response_from_prediction(self, y_pred, single: bool = True):
        """The 200 response: ``{"result": ..., "metadata": {...}}``."""
        result = y_pred.tolist() if hasattr(y_pred, "tolist") else list(y_pred)
        if single:
            result = result[0]
        metadata = dict(self._metadata())
        metadata.setdefault("service_name", None)
        metadata.setdefault("service_version", None)
        metadata.update(status="OK", error_code=0)
        return json_response({"result": result, "metadata": metadata})

    def response_from_exception(self, exc: BaseException):
        """The error response: 400 for bad input, 503 without a model, 500 otherwise."""
        from werkzeug.exceptions import HTTPException

        meta = self._metadata()
        if isinstance(exc, RequestError):
            return json_response(error_body(meta, str(exc), exc.error_code), 400)
        if isinstance(exc, HTTPException):
            return json_response(error_body(meta, exc.description or exc.name), exc.code or 500)
        if isinstance(exc, NoModelError):
            return json_response(error_body(meta, f"no model available yet: {exc}"), 503)
        if isinstance(exc, PredictError):
            return json_response(error_body(meta, exc.error_message, exc.error_code), 500)
        logger.error("prediction failed", exc_info=exc)
        return json_response(error_body(meta, "internal server error; see the server log"), 500)


def _label_rows(model, proba):
    """``predict_proba`` rows as ``{class label: probability}`` dicts."""
    rows = proba.tolist() if hasattr(proba, "tolist") else [list(row) for row in proba]
    classes = getattr(model, "classes_", None)
    if classes is None:
        return rows
    labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    return [dict(zip(labels, row, strict=False)) for row in rows]


def _json_kind(value) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
