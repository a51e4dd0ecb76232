"""A predict service as a model of the protocol: its metadata, readiness and inference.

An inference runs the service's own cycle: the model read from the store
(the active one, or the path's version through :mod:`.versions`) and
checked against the mapping (:meth:`PredictService.check_model`), the
inputs turned into the service's samples (:mod:`.samples`) and its model
input (:meth:`PredictService.matrix`), the request's ``parameters`` that
the service declares in ``params`` converted (:meth:`params_from_data`),
and the model called through :meth:`PredictService.call_model`, which
batches with concurrent requests and counts the call for ``/metrics``.

Outputs: ``predict`` (the labels the service answers; from the most
probable class when the service has ``predict_proba`` on) and
``predict_proba`` (one column per class, in the order of the model's
``classes_``), when asked for by name; without ``outputs``, ``predict``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ...errors import RequestError
from ..fields import describe, pairs
from ..predict_service import PredictService
from .metadata import OUTPUTS, service_model_metadata
from .samples import rows_of
from .tensors import output_tensor, read_inputs, read_outputs
from .versions import VersionReader

__all__ = ["ServiceModel", "request_id", "request_parameters"]


def request_id(body: Mapping[str, Any]) -> str:
    """The request's ``id`` (a string), or a new one: the answer carries it."""
    value = body.get("id")
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str):
        raise RequestError(f"'id' must be a string; got {describe(value)}")
    return value


def request_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's ``parameters`` object (empty when absent)."""
    value = body.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"'parameters' must be an object; got {describe(value)}")
    return value


class ServiceModel:
    """The protocol's view of one predict service (config key ``key``), named ``name``."""

    def __init__(
        self,
        name: str,
        key: str,
        service: PredictService,
        persister: Any,
        versions: VersionReader | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.service = service
        self.persister = persister
        #: shared by the app's models, so that a version read for one is kept for all
        self.version_reader = versions if versions is not None else VersionReader(persister)
        service.validate()
        self.fields = pairs(service.mapping, "mapping")

    @property
    def decorator_list_name(self) -> str:
        """The service's decorator list: it wraps the protocol routes of this model too."""
        return str(getattr(self.service, "decorator_list_name", None) or "predict_decorators")

    def model(self, version: str | None) -> Any:
        """The model that answers for ``version`` (the active one for ``None``), checked."""
        model = self.version_reader.read(version)
        self.service.check_model(model)
        return model

    def versions(self) -> list[str]:
        """The stored versions, oldest first."""
        return [str(entry["version"]) for entry in self.persister.list_models()]

    def metadata(self, version: str | None) -> dict[str, Any]:
        """The model metadata object (see :mod:`.metadata`)."""
        model = self.model(version)
        served = (getattr(model, "__metadata__", None) or {}).get("version")
        parameters = {"predict_service": self.key, "entry_point": self.service.entry_point}
        if served is not None:
            parameters["model_version"] = str(served)
        return service_model_metadata(self.name, self.fields, model, self.versions(), parameters)

    def infer(self, body: Mapping[str, Any], version: str | None) -> dict[str, Any]:
        """The inference response object for the request ``body``."""
        tensors = read_inputs(body)
        wanted = read_outputs(body, OUTPUTS) or ["predict"]
        answer_id = request_id(body)
        parameters = request_parameters(body)
        model = self.model(version)
        X = self.service.matrix(model, rows_of(self.fields, tensors))
        params = self.service.params_from_data(model, parameters)
        y = self.service.call_model(model, X, params)
        outputs = []
        for name in wanted:
            if name == "predict":
                outputs.append(output_tensor(name, self._labels(model, y)))
            else:
                outputs.append(output_tensor(name, self._proba(model, X, params, y)))
        answer: dict[str, Any] = {"model_name": self.name}
        served = (getattr(model, "__metadata__", None) or {}).get("version")
        if served is not None:
            answer["model_version"] = str(served)
        answer.update(id=answer_id, parameters={}, outputs=outputs)
        return answer

    def _labels(self, model: Any, y: Any) -> Any:
        if not self.service.predict_proba:
            return y
        import numpy as np

        classes = getattr(model, "classes_", None)
        best = np.asarray(y).argmax(axis=1)
        return best if classes is None else np.asarray(classes)[best]

    def _proba(self, model: Any, X: Any, params: dict[str, Any], y: Any) -> Any:
        if self.service.predict_proba:
            return y
        method = getattr(model, "predict_proba", None)
        if not callable(method):
            raise RequestError(
                f"model {self.name!r} answers no probabilities: it has no predict_proba method"
            )
        import numpy as np

        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            return method(X, **params)
