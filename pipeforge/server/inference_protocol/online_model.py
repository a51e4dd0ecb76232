"""The online models as models of the protocol, each by its own name.

An online model takes named features, so each input is one feature: a
tensor named by the feature, of shape ``[rows]`` or ``[rows, 1]``, all with
the same rows. Each row is predicted by the online service's own
``/api/predict`` path (:meth:`OnlineService.predict`: the same checks of
the features, the same copy of the model and the same statistics), one
call per row. Outputs: ``predict`` (the label with the highest probability
for a classifier, the number for a regressor) and, for classifiers,
``predict_proba`` (one column per class label, sorted, a class a row
has no probability for counting 0). Online models have no stored versions
to choose: a path with a version is a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import RequestError
from .answers import NotFoundError
from .metadata import OUTPUTS, online_model_metadata
from .service_model import request_id, request_parameters
from .tensors import Tensor, output_tensor, read_inputs, read_outputs

if TYPE_CHECKING:
    from ...online.records import ModelInfo
    from ...online.service import OnlineService

__all__ = ["OnlineModels"]


class OnlineModels:
    """The online service's models, found by name when a request names one."""

    decorator_list_name = "online_decorators"

    def __init__(self, service: OnlineService) -> None:
        self.service = service

    def info(self, name: str, version: str | None) -> ModelInfo:
        """The record of the online model ``name``; 404 when there is none (or a version is named)."""
        self.service.ensure_ready()
        info = self.service.store.model(name)
        if info is None:
            raise NotFoundError(f"no model named {name!r}")
        if version is not None:
            raise NotFoundError(
                f"online model {name!r} has no stored versions to choose from; "
                f"leave '/versions/{version}' out of the path"
            )
        return info

    def names(self) -> list[str]:
        """The online models' names."""
        self.service.ensure_ready()
        return sorted(info.name for info in self.service.store.models())

    def metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The model metadata object of ``name``."""
        info = self.info(name, version)
        return online_model_metadata(info.name, info.flavor)

    def infer(self, name: str, body: Mapping[str, Any], version: str | None) -> dict[str, Any]:
        """The inference response object: each row predicted by the online service."""
        tensors = read_inputs(body)
        wanted = read_outputs(body, OUTPUTS) or ["predict"]
        answer_id = request_id(body)
        request_parameters(body)  # checked; an online model takes no parameters
        info = self.info(name, version)
        if "predict_proba" in wanted and info.flavor == "regression":
            raise RequestError(f"model {name!r} is a regression model: it answers no probabilities")
        predictions = [
            self.service.predict({"features": features, "model": name})[0]["prediction"]
            for features in _rows(tensors)
        ]
        outputs = []
        for output in wanted:
            if output == "predict":
                outputs.append(output_tensor(output, [_label(p) for p in predictions]))
            else:
                outputs.append(output_tensor(output, _proba(name, predictions)))
        return {"model_name": name, "id": answer_id, "parameters": {}, "outputs": outputs}


def _rows(tensors: list[Tensor]) -> list[dict[str, Any]]:
    rows = None
    for tensor in tensors:
        shape = list(tensor.shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(
                f"input {tensor.name!r}: an online model takes one tensor per feature, of shape "
                f"[rows] or [rows, 1]; got {shape}"
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise RequestError(
                f"input {tensor.name!r} has {shape[0]} rows but the inputs before it {rows}"
            )
    if not rows:
        raise RequestError("the inputs hold no rows; send at least one")
    return [{tensor.name: tensor.values[row] for tensor in tensors} for row in range(rows)]


def _label(prediction: Any) -> Any:
    if isinstance(prediction, dict):
        if not prediction:
            return None
        return max(prediction, key=lambda label: prediction[label] or 0.0)
    return prediction


def _proba(name: str, predictions: list[Any]) -> list[list[float]]:
    if not all(isinstance(p, dict) for p in predictions):
        raise RequestError(f"model {name!r} answers no probabilities")
    labels = sorted({label for p in predictions for label in p})
    return [[float(p.get(label) or 0.0) for label in labels] for p in predictions]
