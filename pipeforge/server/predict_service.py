"""The ``/predict`` workhorse: request → samples → model → JSON response.

:class:`PredictService` is configured with a ``mapping`` of (name, type)
pairs and turns a GET query or a POSTed JSON list of samples into the array
the model expects. Every bad input becomes a :class:`~pipeforge.errors.RequestError`
(answered with 400 and the documented error body); only faults of the server
or the model become a 500, logged with their traceback and answered without
internals. Subclasses override the ``*_from_*`` hooks to change the formats.
"""

from __future__ import annotations

import functools
import logging
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import web
from ..errors import ConfigError, RequestError
from ..interfaces import PredictService as PredictServiceInterface
from ..lean import LeanRequest, json_answer
from ..web import error_body, json_response
from . import fields as field_rules
from .fields import CONVERTERS, NUMERIC_TYPES, describe, pairs
from .model_inputs import label_rows, mapping_misfit, needs_frame, stored_mapping

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.wrappers import Request

    from .batching import Batcher

#: ``callback(service, model, rows)``, called after each model call
Observer = Callable[["PredictService", Any, int], None]

__all__ = ["Inputs", "PredictService", "error_body", "json_response", "label_rows", "to_json"]

logger = logging.getLogger(__name__)


def to_json(value: Any) -> Any:
    """``json.dumps`` fallback for one value (kept for callers of the old name)."""
    return web.to_jsonable(value)


class PredictService(PredictServiceInterface):
    """Answers ``/predict`` (or its ``entry_point``) for one mapping of request fields.

    ``mapping``: (name, type) pairs, type one of ``float``, ``int``, ``str``,
    ``bool``, in the column order the model was fitted on. ``params``: extra
    request fields passed to ``model.predict`` as keyword arguments, typed the
    same way (optional in a request). ``predict_proba``: answer class
    probabilities as ``{label: p}`` per sample. ``unwrap_sample``: a mapping
    with one field passes that value itself as the sample (e.g. a text for a
    text pipeline) instead of a one-column row. GET answers one result,
    POST (a JSON list of samples) a list of results. ``batching``: merge
    concurrent requests into one model call (see :mod:`pipeforge.batching`;
    ``None`` takes the config's top-level ``batching`` entry, ``False`` is off).
    ``strict``: a request field the service does not know (a query parameter
    that is neither in ``mapping`` nor in ``params``, a sample key that is not
    in ``mapping``) is a 400 naming it, instead of being ignored.

    Releasing (:mod:`pipeforge.release`, docs/releasing.md): ``model_alias``
    serves the version an alias names instead of the active one;
    ``traffic`` splits requests between aliases by weight, the same caller
    always getting the same arm when its request carries ``sticky_key``;
    ``alias_from_request`` lets a request ask for an alias itself;
    ``shadow`` mirrors a fraction of requests to another alias after the
    answer; ``prediction_log`` keeps every answered prediction.
    """

    def __init__(
        self,
        mapping: Any = None,
        params: Any = None,
        entry_point: str = "/predict",
        decorator_list_name: str = "predict_decorators",
        predict_proba: bool = False,
        unwrap_sample: bool = False,
        batching: Mapping[str, Any] | bool | None = None,
        strict: bool = False,
        model_alias: str | None = None,
        traffic: Mapping[str, float] | None = None,
        sticky_key: str | None = None,
        alias_from_request: bool | list[str] = False,
        shadow: Mapping[str, Any] | None = None,
        prediction_log: Mapping[str, Any] | bool | None = None,
    ) -> None:
        self.mapping = mapping
        self.params = params
        self.entry_point = entry_point
        self.decorator_list_name = decorator_list_name
        self.predict_proba = predict_proba
        self.unwrap_sample = unwrap_sample
        self.batching = batching
        self.strict = strict
        self.model_alias = model_alias
        self.traffic = traffic
        self.sticky_key = sticky_key
        self.alias_from_request = alias_from_request
        self.shadow = shadow
        self.prediction_log = prediction_log

    # -- setup (first use) -------------------------------------------------

    def initialize_component(self, config: Mapping[str, Any]) -> None:
        """Remember the config's ``service_metadata``; set up batching if configured."""
        from .batching import batcher_from_settings

        self.service_metadata = dict(config.get("service_metadata") or {})
        if self.mapping is None:  # e.g. an MLflow model's signature (docs/migrating-from-mlflow.md)
            self.mapping = stored_mapping(config.get("model_persister"))
        self.validate()
        own = self.batching is not None
        self._batcher = batcher_from_settings(
            self.batching if own else config.get("batching"),
            key=f"{self.entry_point} batching" if own else "batching",
            config=config,
        )

    @property
    def batcher(self) -> Batcher | None:
        """The :class:`~pipeforge.batching.Batcher` merging this service's calls, or ``None``."""
        return getattr(self, "_batcher", None)

    def observe(self, callback: Observer) -> None:
        """Call ``callback(service, model, rows)`` after each model call (for ``/metrics``).

        With batching, one call may serve several requests. A callback must be
        quick and must not raise.
        """
        observers = getattr(self, "_observers", None)
        if observers is None:
            observers = []
            self._observers: list[Observer] = observers
        observers.append(callback)

    def validate(self) -> None:
        """Check the parameters once; raises :class:`ConfigError` naming the bad one."""
        if getattr(self, "_fields", None) is not None:
            return
        fields = pairs(self.mapping, "mapping")
        if not fields:
            raise ConfigError(
                "parameter 'mapping' of PredictService must name at least one (name, type) pair; "
                f"got {describe(self.mapping)} instead"
            )
        if self.unwrap_sample and len(fields) != 1:
            raise ConfigError(
                "parameter 'unwrap_sample' of PredictService needs a mapping with exactly one "
                f"field; got {len(fields)}"
            )
        if not isinstance(self.entry_point, str) or not self.entry_point.startswith("/"):
            raise ConfigError(
                "parameter 'entry_point' of PredictService must be a path starting with '/'; "
                f"got {describe(self.entry_point)} instead"
            )
        if not isinstance(self.strict, bool):
            raise ConfigError(
                "parameter 'strict' of PredictService must be true or false; "
                f"got {describe(self.strict)} instead"
            )
        self._param_fields = [(n, CONVERTERS[t]) for n, t in pairs(self.params, "params")]
        self._numeric = all(t in NUMERIC_TYPES for _, t in fields)
        # The bulk path skips sample_from_data, so only when no subclass changed it.
        self._bulk = (
            all(t == "float" for _, t in fields)
            and not self.unwrap_sample
            and type(self).sample_from_data is PredictService.sample_from_data
        )
        self._names = [n for n, _ in fields]
        self._fields = [(n, CONVERTERS[t]) for n, t in fields]
        self._known = field_rules.KnownFields(
            frozenset(self._names), frozenset(dict(self._param_fields))
        )

    def _metadata(self) -> dict:
        return getattr(self, "service_metadata", None) or {}

    # -- does the model fit the mapping? -------------------------------------

    def check_model(self, model: Any) -> None:
        """Raise a :class:`ConfigError` (answered 503) if ``model`` cannot take this mapping.

        Checked once per model object: the first request after a model is
        loaded pays for it and a misfit is logged once, then every request
        gets the same clear answer instead of a 500 from inside the model.
        """
        problem = self._facts(model)[0]
        if problem:
            raise _ModelMisfit(problem)

    def _facts(self, model) -> tuple[str | None, bool]:
        """``(misfit, needs a DataFrame)`` of ``model``, worked out once per model object."""
        facts = getattr(self, "_model_facts", None)
        if facts is None or facts[0]() is not model:
            self.validate()
            problem = self._misfit(model)
            if problem:
                logger.error("%s", problem)
            facts = self._model_facts = (_ref(model), problem, self._frame_needed(model))
        return facts[1], facts[2]

    def _misfit(self, model) -> str | None:
        """What makes ``model`` unusable with this service, or ``None``."""
        where = f"predict service {self.entry_point}"
        metadata = getattr(model, "__metadata__", None) or {}
        which = f"model version {metadata['version']}" if "version" in metadata else "the model"
        if self.predict_proba and not callable(getattr(model, "predict_proba", None)):
            return f"{where} has predict_proba on, but {which} has no predict_proba method"
        plain = all(
            getattr(type(self), hook) is getattr(PredictService, hook)
            for hook in ("do", "sample_from_data", "_matrix")
        )
        if self.unwrap_sample or not plain:
            return None  # the samples are shaped by code we cannot see through
        return mapping_misfit(where, which, self._names, model)

    # -- the request cycle -------------------------------------------------

    def __call__(self, model: Any, request: Request) -> Response:
        """Answer ``request`` with ``model``; never raises.

        With batching, the app's front door has announced the request to the
        batcher already (:mod:`pipeforge.server.front_door`).
        """
        try:
            return self.do(model, request)
        except Exception as exc:
            return self.response_from_exception(exc)

    def do(self, model: Any, request: Request) -> Response:
        """Parse the request, predict and build the response."""
        inputs = self.parse(model, request)
        y_pred = self.call_model(model, inputs.X, inputs.params)
        if self.predict_proba:
            y_pred = label_rows(model, y_pred)
        if type(request) is LeanRequest and type(self) is PredictService:
            # the front door's hot route: the answer's head is prebuilt (pipeforge.lean)
            body = self.answer_body(y_pred, inputs.single)
            return json_answer(body, numeric_arrays=True)
        return self.response_from_prediction(y_pred, single=inputs.single)

    def parse(self, model: Any, request: Request) -> Inputs:
        """The model input of ``request``: a GET's one sample or a POST's list.

        Raises :class:`~pipeforge.errors.RequestError` for anything the
        mapping does not accept. The release machinery (:mod:`pipeforge.release`)
        calls it apart from :meth:`do`, so that the same inputs can be logged
        and sent to a shadow model.
        """
        self.validate()
        if request.method == "POST":
            payload = self._posted(request)
            if self.strict:
                field_rules.check_fields(self._known, request.args, payload)
            X = self._bulk_matrix(model, payload) if self._bulk else None
            if X is None:
                samples = [self._sample(model, data, i) for i, data in enumerate(payload)]
                X = self._matrix(model, samples)
            single = False
        else:
            if self.strict:
                field_rules.check_fields(self._known, request.args)
            X = self._matrix(model, [self.sample_from_data(model, request.args)])
            single = True
        return Inputs(X, single, self.params_from_data(model, request.args))

    def _bulk_matrix(self, model, payload):
        """All-float samples in one numpy call (:func:`.fields.float_rows`), or ``None``."""
        X = field_rules.float_rows(self._names, payload)
        if X is not None and self._needs_frame(model):
            import pandas as pd

            return pd.DataFrame(X, columns=self._names)
        return X

    def _needs_frame(self, model) -> bool:
        return self._facts(model)[1]

    def _frame_needed(self, model) -> bool:
        """Whether ``model`` gets a ``DataFrame`` with the mapping's names (see :mod:`.model_inputs`).

        An array is given instead only for all-float mappings naming the
        model's columns in order, and models that merely check those names.
        """
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            return False
        if self._bulk and [str(n) for n in names] == self._names:
            return needs_frame(model)
        return True

    def _posted(self, request) -> list:
        payload = web.read_json(request)
        if not isinstance(payload, list):
            raise RequestError(
                "the request body must be a JSON list of samples; "
                f"got a JSON {web.json_kind(payload)}"
            )
        if not payload:
            raise RequestError("the request body is an empty list; send at least one sample")
        return payload

    def _sample(self, model, data, index: int):
        if not isinstance(data, dict):
            raise RequestError(
                f"sample {index} must be a JSON object of field values; "
                f"got a JSON {web.json_kind(data)}"
            )
        try:
            return self.sample_from_data(model, data)
        except RequestError as exc:
            raise RequestError(f"sample {index}: {exc}", exc.error_code) from None

    def sample_from_data(self, model: Any, data: Mapping[str, Any]) -> list[Any]:
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

    def params_from_data(self, model: Any, data: Mapping[str, Any]) -> dict[str, Any]:
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
        if self._needs_frame(model):
            # Fitted on a DataFrame and uses its names: give it the same columns.
            import pandas as pd

            return pd.DataFrame(samples, columns=self._names)
        return np.array(samples, dtype=float if self._numeric else object)

    def matrix(self, model: Any, samples: list) -> Any:
        """The model input (array or ``DataFrame``) of converted ``samples``."""
        return self._matrix(model, samples)

    def call_model(self, model: Any, X: Any, params: Mapping[str, Any] | None = None) -> Any:
        """:meth:`predict`, merged with concurrent requests when batching is on."""
        params = dict(params or {})
        batcher = getattr(self, "_batcher", None)
        if batcher is None or params:
            return self._predict_observed(model, X, **params)
        key: tuple[Any, ...]
        if hasattr(X, "columns"):
            key = (id(model), "frame", tuple(X.columns))
        else:
            key = (id(model), "array", getattr(X, "ndim", 0), getattr(X, "dtype", None))
        return batcher.run(key, X, functools.partial(self._predict_observed, model))

    def _predict_observed(self, model, X, **params):
        y_pred = self.predict(model, X, **params)
        for callback in getattr(self, "_observers", None) or ():
            try:
                callback(self, model, len(X))
            except Exception:
                logger.exception("a predict service observer failed")
        return y_pred

    def predict(self, model: Any, X: Any, **params: Any) -> Any:
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

    def response_from_prediction(self, y_pred: Any, single: bool = True) -> Response:
        """The 200 response: ``{"result": ..., "metadata": {...}}``."""
        return json_response(self.answer_body(y_pred, single))

    def answer_body(self, y_pred: Any, single: bool) -> dict[str, Any]:
        """The 200 answer's body: ``{"result": ..., "metadata": {...}}`` (numbers left as numpy)."""
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(y_pred, numpy.ndarray) and y_pred.dtype.kind in "biuf":
            result = y_pred[0] if single else y_pred  # numbers: the encoder writes them itself
        else:
            result = y_pred.tolist() if hasattr(y_pred, "tolist") else list(y_pred)
            if single:
                result = result[0]
        return {"result": result, "metadata": web.ok_metadata(self._metadata())}

    def response_from_exception(self, exc: BaseException) -> Response:
        """The error response, by :func:`pipeforge.web.error_response`'s table."""
        return web.error_response(exc, self._metadata())


class Inputs(NamedTuple):
    """One request's model input, as :meth:`PredictService.parse` read it."""

    X: Any  #: the samples as the model takes them (array or ``DataFrame``)
    single: bool  #: a GET's one sample (answered with one result, not a list)
    params: dict[str, Any]  #: the service's ``params`` present in the request


class _ModelMisfit(ConfigError):
    """The served model does not fit a predict service's mapping: 503 until fixed."""

    http_status = 503


def _same(model):
    return model


def _ref(model):
    """A weak reference to ``model`` (a strong one for objects that refuse weak references)."""
    try:
        return weakref.ref(model)
    except TypeError:
        return functools.partial(_same, model)
